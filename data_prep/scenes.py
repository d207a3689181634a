"""Generate our own 2D scenes with CLEVR-style questions, and prepare them.

    python -m data_prep.scenes --out data/scenes [--images 10000] [--seed 0]

Each image is 128x128 with 3-10 non-overlapping objects: 8 colours, 3 shapes
(circle, square, triangle) and 2 sizes. About 10 questions per image, in six
families: exist, count, compare numbers, query attribute, compare attribute and
spatial relation (left of, right of, above, below, closest to).

The generator writes CLEVR v1.0's layout and JSON format, so the data goes through
the CLEVR loader (data_prep.clevr):

```
ROOT/images/{split}/CLEVR_{split}_{index:06d}.png
ROOT/scenes/CLEVR_{split}_scenes.json        objects, pixel_coords, relationships
ROOT/questions/CLEVR_{split}_questions.json  question, answer, program, question_family
```

Every answer is computed by executing the question's functional program on the
scene (`execute`). Answers are balanced: for each question template the target
answer is drawn first (the one given least so far) and a question giving it is then
sampled, so a model that sees only the question does no better than the majority
answer of its family and answer space (`balance_table`; "query attribute / color",
"spatial relation / yes/no", ...).

The same seed gives byte-identical files wherever they are written.

    generate(root, images=N, seed=S)        the CLEVR-format tree above
    prepare(out, images=N, seed=S)          a prepared dataset, via data_prep.clevr
    balance_table(root_or_dataset)          question-only accuracy per family / space
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from data_prep import clevr
from data_prep.balance import format_table, question_only_table
from data_prep.common import (add_generator_arguments, check_output, command_line, progress,
                              report)
from vqa.data.dataset import PreparedDataset
from vqa.errors import DatasetError

IMAGE_SIZE = 128
BACKGROUND = (236, 236, 232)
COLORS = {  # far apart in RGB, none close to the background
    "gray": (128, 128, 128), "red": (210, 40, 40), "blue": (40, 70, 215),
    "green": (40, 160, 60), "brown": (130, 80, 35), "purple": (130, 50, 180),
    "cyan": (40, 200, 210), "yellow": (235, 200, 30)}
SHAPES = ("circle", "square", "triangle")
SIZES = {"small": 14, "large": 26}  # pixels across (the drawn box is one more)
ATTRIBUTES = ("size", "color", "shape")  # the order of words in a description
COLOR_NAMES = tuple(COLORS)
VALUES = {"size": tuple(SIZES), "color": COLOR_NAMES, "shape": SHAPES}
RELATIONS = {"left": "left of", "right": "right of", "above": "above", "below": "below"}
FAMILIES = ("exist", "count", "compare numbers", "query attribute", "compare attribute",
            "spatial relation")
# Question templates ("forms"); question_family_index is the index in this tuple.
FORMS = ("exist", "count", "more", "fewer", "as many", "query", "same", "relate exist",
         "relate query", "closest query")
FAMILY_FORMS = {
    "exist": ("exist",), "count": ("count",), "compare numbers": ("more", "fewer", "as many"),
    "query attribute": ("query",), "compare attribute": ("same",),
    "spatial relation": ("relate exist", "relate query", "closest query")}
YES_NO = ("yes", "no")
QUESTIONS_PER_IMAGE = 10
TEST_FRACTION = 10  # the last images // 10 images are the test split

EDGE = 2  # free pixels between an object and the image border
GAP = 4  # free pixels between two objects
MIN_DELTA = 3  # centres differ by this much in x and in y: left/above are never a toss-up

Description = tuple  # (size, color, shape), None where the description does not say
KINDS = tuple(k for k in ((), ("size",), ("color",), ("shape",), ("size", "color"),
                          ("size", "shape"), ("color", "shape"), ATTRIBUTES))
# The answers a count template asks for, by the attributes its description names: a
# range every answer of which the scenes give often enough to balance.
COUNT_ANSWERS = {
    (): range(3, 11), ("size",): range(1, 6), ("color",): range(0, 4),
    ("shape",): range(0, 5), ("size", "color"): range(0, 3), ("size", "shape"): range(0, 4),
    ("color", "shape"): range(0, 3), ATTRIBUTES: range(0, 2)}


class ProgramError(ValueError):
    """A program cannot be executed on a scene (e.g. `unique` of two objects)."""


# --- scenes --------------------------------------------------------------------------

class _Random:
    """Scalar draws from a numpy Generator, fetched 4,096 at a time (one call per draw
    would dominate the run time)."""

    def __init__(self, seed: int) -> None:
        self._generator = np.random.default_rng(seed)
        self._buffer: list[float] = []

    def random(self) -> float:
        if not self._buffer:
            self._buffer = self._generator.random(4096).tolist()[::-1]
        return self._buffer.pop()

    def below(self, n: int) -> int:
        return int(self.random() * n)

    def choice(self, items: Sequence):
        return items[int(self.random() * len(items))]

    def shuffled(self, items: Iterable) -> list:
        items = list(items)
        for i in range(len(items) - 1, 0, -1):
            j = self.below(i + 1)
            items[i], items[j] = items[j], items[i]
        return items


def _place(halves: list[int], rnd: _Random) -> list[tuple[int, int]] | None:
    """Centres for objects of these half-sizes, each uniform over the places still
    free; None when one finds no free place."""
    placed: list[tuple[int, int, int]] = []
    for h in halves:
        lo, hi = h + EDGE, IMAGE_SIZE - 1 - h - EDGE
        for _ in range(30):  # cheap while the image is still empty
            x, y = lo + rnd.below(hi - lo + 1), lo + rnd.below(hi - lo + 1)
            if _free(x, y, h, placed):
                break
        else:  # crowded: draw from all free places (the same distribution, slower)
            xs = np.arange(lo, hi + 1)
            taken = np.zeros((len(xs), len(xs)), dtype=bool)  # [x, y]
            for px, py, ph in placed:
                dx, dy = np.abs(xs - px), np.abs(xs - py)
                reach = h + ph + GAP
                taken |= np.outer(dx < reach, dy < reach)
                taken[dx < MIN_DELTA, :] = True
                taken[:, dy < MIN_DELTA] = True
            free = np.flatnonzero(~taken)
            if not len(free):
                return None
            i, j = divmod(int(free[rnd.below(len(free))]), len(xs))
            x, y = lo + i, lo + j
        placed.append((x, y, h))
    return [(x, y) for x, y, _ in placed]


def _free(x: int, y: int, h: int, placed: list[tuple[int, int, int]]) -> bool:
    return all((abs(x - px) >= h + ph + GAP or abs(y - py) >= h + ph + GAP)
               and abs(x - px) >= MIN_DELTA and abs(y - py) >= MIN_DELTA
               for px, py, ph in placed)


def make_scene(rnd: _Random) -> list[dict]:
    """3-10 objects with independent, uniform attributes at random free places."""
    n = 3 + rnd.below(8)
    objects = [{"color": rnd.choice(VALUES["color"]), "shape": rnd.choice(SHAPES),
                "size": rnd.choice(VALUES["size"])} for _ in range(n)]
    # Large objects first: they are the hard ones to fit in at the end.
    order = sorted(range(n), key=lambda i: -SIZES[objects[i]["size"]])
    # Only the places are drawn again when they do not fit: redrawing the attributes
    # would make large objects rarer than small ones, which a question could reveal.
    for _ in range(1000):
        centres = _place([SIZES[objects[i]["size"]] // 2 for i in order], rnd)
        if centres is not None:
            break
    else:  # ten large objects fit in one try out of a few; this is a bug, not bad luck
        raise RuntimeError(f"could not place {n} objects")
    for i, (x, y) in zip(order, centres):
        objects[i]["pixel_coords"] = [x, y, 0]
    return objects


def relationships(objects: Sequence[dict]) -> dict[str, list[list[int]]]:
    """CLEVR's relationships: `rel[name][i]` are the objects that are `name` of object i
    (by centre; y grows downwards, so "above" is a smaller y)."""
    xy = [o["pixel_coords"][:2] for o in objects]
    idx = range(len(xy))
    return {"left": [[j for j in idx if xy[j][0] < x] for x, _ in xy],
            "right": [[j for j in idx if xy[j][0] > x] for x, _ in xy],
            "above": [[j for j in idx if xy[j][1] < y] for _, y in xy],
            "below": [[j for j in idx if xy[j][1] > y] for _, y in xy]}


def render(scene: dict) -> Image.Image:
    """The scene's image: flat colours, no anti-aliasing, so pixels can be checked."""
    image = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), BACKGROUND)
    draw = ImageDraw.Draw(image)
    for obj in scene["objects"]:
        x, y, _ = obj["pixel_coords"]
        h = SIZES[obj["size"]] // 2
        fill = COLORS[obj["color"]]
        if obj["shape"] == "circle":
            draw.ellipse((x - h, y - h, x + h, y + h), fill=fill)
        elif obj["shape"] == "square":
            draw.rectangle((x - h, y - h, x + h, y + h), fill=fill)
        else:
            draw.polygon([(x, y - h), (x + h, y + h), (x - h, y + h)], fill=fill)
    return image


# --- programs ------------------------------------------------------------------------

def run_program(program: Sequence[dict], scene: dict) -> list:
    """The output of every step of a CLEVR-style program on a scene.

    Object sets are tuples of object indices, a unique object is its index. Raises
    ProgramError when a step cannot be executed (unique of not exactly one object,
    closest with a tie, an unknown function).
    """
    objects = scene["objects"]
    outputs: list = []
    for step in program:
        fn = step["function"]
        args = [outputs[i] for i in step["inputs"]]
        value = step["value_inputs"][0] if step["value_inputs"] else None
        if fn == "scene":
            out = tuple(range(len(objects)))
        elif fn in ("filter_color", "filter_shape", "filter_size"):
            attr = fn[len("filter_"):]
            out = tuple(i for i in args[0] if objects[i][attr] == value)
        elif fn == "unique":
            if len(args[0]) != 1:
                raise ProgramError(f"unique: {len(args[0])} objects")
            out = args[0][0]
        elif fn == "relate":
            out = tuple(scene["relationships"][value][args[0]])
        elif fn == "closest":
            out = _closest(objects, args[0])
        elif fn == "count":
            out = len(args[0])
        elif fn == "exist":
            out = len(args[0]) > 0
        elif fn in ("query_color", "query_shape", "query_size"):
            out = objects[args[0]][fn[len("query_"):]]
        elif fn in ("equal_integer", "equal_color", "equal_shape", "equal_size"):
            out = args[0] == args[1]
        elif fn == "greater_than":
            out = args[0] > args[1]
        elif fn == "less_than":
            out = args[0] < args[1]
        else:
            raise ProgramError(f"unknown function {fn!r}")
        outputs.append(out)
    return outputs


def execute(program: Sequence[dict], scene: dict) -> str:
    """The answer a program gives on a scene: "yes"/"no", a number, or a word."""
    return _answer_text(run_program(program, scene)[-1])


def _answer_text(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _closest(objects: Sequence[dict], ref: int) -> int:
    x, y = objects[ref]["pixel_coords"][:2]
    dist = sorted(((o["pixel_coords"][0] - x) ** 2 + (o["pixel_coords"][1] - y) ** 2, i)
                  for i, o in enumerate(objects) if i != ref)
    if len(dist) > 1 and dist[0][0] == dist[1][0]:
        raise ProgramError("closest: two objects are equally close")
    return dist[0][1]


def _step(function: str, inputs: Sequence[int] = (), value: str | None = None) -> dict:
    return {"function": function, "inputs": list(inputs),
            "value_inputs": [] if value is None else [value]}


def _filter(program: list[dict], d: Description, start: int) -> int:
    """Append the filters of a description after step `start`; the index of the last."""
    last = start
    for attr, value in zip(ATTRIBUTES, d):
        if value is not None:
            program.append(_step(f"filter_{attr}", [last], value))
            last = len(program) - 1
    return last


def _objects(program: list[dict], d: Description) -> int:
    program.append(_step("scene"))
    return _filter(program, d, len(program) - 1)


def _unique(program: list[dict], d: Description) -> int:
    program.append(_step("unique", [_objects(program, d)]))
    return len(program) - 1


def _words(d: Description, plural: bool = False) -> str:
    size, color, shape = d
    noun = shape or "object"
    return " ".join(w for w in (size, color, noun + ("s" if plural else "")) if w)


def _a(d: Description) -> str:
    words = _words(d)
    return ("an " if words[0] in "aeiou" else "a ") + words


def _build(form: str, d: Sequence[Description], attr: str | None,
           rel: str | None) -> tuple[str, list[dict]]:
    """A question's text and program."""
    p: list[dict] = []
    if form == "exist":
        p.append(_step("exist", [_objects(p, d[0])]))
        return f"Is there {_a(d[0])}?", p
    if form == "count":
        p.append(_step("count", [_objects(p, d[0])]))
        return f"How many {_words(d[0], True)} are there?", p
    if form in ("more", "fewer", "as many"):
        p.append(_step("count", [_objects(p, d[0])]))
        first = len(p) - 1
        p.append(_step("count", [_objects(p, d[1])]))
        fn = {"more": "greater_than", "fewer": "less_than", "as many": "equal_integer"}[form]
        p.append(_step(fn, [first, len(p) - 1]))
        a, b = _words(d[0], True), _words(d[1], True)
        text = (f"Are there as many {a} as {b}?" if form == "as many"
                else f"Are there {form} {a} than {b}?")
        return text, p
    if form == "query":
        p.append(_step(f"query_{attr}", [_unique(p, d[0])]))
        return f"What {attr} is the {_words(d[0])}?", p
    if form == "same":
        p.append(_step(f"query_{attr}", [_unique(p, d[0])]))
        first = len(p) - 1
        p.append(_step(f"query_{attr}", [_unique(p, d[1])]))
        p.append(_step(f"equal_{attr}", [first, len(p) - 1]))
        return f"Does the {_words(d[0])} have the same {attr} as the {_words(d[1])}?", p
    if form in ("relate exist", "relate query"):
        p.append(_step("relate", [_unique(p, d[1])], rel))
        last = _filter(p, d[0], len(p) - 1)
        where = f"{RELATIONS[rel]} the {_words(d[1])}"
        if form == "relate exist":
            p.append(_step("exist", [last]))
            return f"Is there {_a(d[0])} {where}?", p
        p.append(_step("unique", [last]))
        p.append(_step(f"query_{attr}", [len(p) - 1]))
        return f"What {attr} is the {_words(d[0])} {where}?", p
    if form == "closest query":
        p.append(_step("closest", [_unique(p, d[0])]))
        p.append(_step(f"query_{attr}", [len(p) - 1]))
        return f"What {attr} is the object closest to the {_words(d[0])}?", p
    raise ValueError(f"unknown form {form!r}")


# --- balanced question sampling ------------------------------------------------------

def _other_kinds(attr: str, empty: bool = False) -> list[tuple]:
    """Descriptions of one object that do not name `attr` (it would give the answer
    away). Not by size alone: "the small object" is rarely one object."""
    return [k for k in KINDS if attr not in k and k != ("size",) and (k or empty)]


# What each description of a form is for, which decides how it is drawn: "free" may
# match any number of objects, "ref" must match exactly one, "answer" is the only
# object it matches and has the answer as its attribute, "related" has the answer as
# its attribute and is the only one it matches among the objects in some relation.
ROLES = {"exist": ("free",), "count": ("free",), "more": ("free", "free"),
         "fewer": ("free", "free"), "as many": ("free", "free"), "query": ("answer",),
         "same": ("ref", "ref"), "relate exist": ("free", "ref"),
         "relate query": ("related", "ref"), "closest query": ("ref",)}


class _Sampler:
    """Draws balanced questions about one scene after another.

    A template is a form with its queried attribute, relation, which attributes each
    description names, and the sizes it names (sizes change where objects can be,
    so "small" and "large" questions are balanced apart). For a template the target
    answer is the one given least often so far in this split; then descriptions are
    drawn until the program's answer on this scene is the target.

    Why that balances every question, not only every template: colours and shapes
    are exchangeable in the scenes and every choice here treats them alike, and a
    question never names the attribute it asks about. So all questions of a template
    have the same answer distribution, and their words do not reveal the answer.
    """

    TEMPLATE_TRIES = 6  # templates tried per family before the next family
    TRIES = 8  # description draws per target answer

    def __init__(self, rnd: _Random) -> None:
        self.rnd = rnd
        self.answers: dict[tuple, Counter] = {}  # per template: answers given
        self.used: Counter = Counter()  # per family, form, attribute...: questions asked

    def new_split(self) -> None:
        self.answers.clear()  # each split balanced on its own
        self.used.clear()

    def questions(self, scene: dict, n: int) -> list[tuple[str, str, str, list[dict]]]:
        """Up to n distinct (family, form, text, program) for the scene."""
        asked: set[str] = set()
        out = []
        for _ in range(n):
            q = self._one(scene, asked)
            if q is not None:
                asked.add(q[2])
                out.append(q)
        return out

    def _one(self, scene: dict, asked: set[str]):
        rnd = self.rnd
        families = sorted(FAMILIES, key=lambda f: (self.used[f], rnd.random()))
        for family in families:
            for _ in range(self.TEMPLATE_TRIES):
                choices: list = [family]
                template = self._template(family, choices)
                counts = self.answers.setdefault(template, Counter())
                space = self._space(template)
                # Colours are exchangeable, so one may run ahead of the least-given one
                # by one without favouring any (and eight are hard to give in turn).
                low = min(counts[a] for a in space) + (space is COLOR_NAMES)
                for target in rnd.shuffled(a for a in space if counts[a] <= low):
                    q = self._find(scene, template, target, asked)
                    if q is not None:
                        counts[target] += 1
                        self.used.update(choices)
                        return (family, template[0]) + q
        return None

    def _pick(self, choices: list, key: tuple, options: Sequence):
        """One of the options: the less used of two drawn at random, so that those
        whose questions are hard to find still get a fair share (and those that are
        rarely possible do not take every try)."""
        a, b = self.rnd.choice(options), self.rnd.choice(options)
        pick = b if self.used[key + (b,)] < self.used[key + (a,)] else a
        choices.append(key + (pick,))
        return pick

    def _template(self, family: str, choices: list) -> tuple:
        pick = lambda key, options: self._pick(choices, key, options)  # noqa: E731
        form = pick((family,), FAMILY_FORMS[family])
        attr = rel = None
        if form in ("query", "same", "relate query", "closest query"):
            attr = pick((form,), ATTRIBUTES)
        if form in ("relate exist", "relate query"):
            rel = pick((form, "rel"), tuple(RELATIONS))
        if form == "exist":
            kinds = (pick((form,), KINDS[1:]),)
        elif form == "count":
            kinds = (pick((form,), KINDS),)
        elif form in ("more", "fewer", "as many"):
            kinds = (pick((form,), KINDS[1:]),) * 2  # like with like: circles vs squares
        elif form == "query":
            kinds = (pick((form, attr), _other_kinds(attr)),)
        elif form == "same":
            kinds = (pick((form, attr, 0), _other_kinds(attr)),
                     pick((form, attr, 1), _other_kinds(attr)))
        elif form == "relate exist":
            kinds = (pick((form, 0), KINDS), pick((form, 1), KINDS[1:]))
        elif form == "relate query":
            # Neither object is named by the queried attribute: "the object left of the
            # red circle" is less often red, which a question-only model would learn.
            kinds = (pick((form, attr, 0), _other_kinds(attr, empty=True)),
                     pick((form, attr, 1), _other_kinds(attr)))
        else:  # closest query
            kinds = (pick((form, attr), _other_kinds(attr)),)
        sizes = [self.rnd.choice(VALUES["size"]) if "size" in k else None for k in kinds]
        if form in ("more", "fewer", "as many") and kinds[0] == ("size",):
            sizes[1] = "large" if sizes[0] == "small" else "small"
        return form, attr, rel, kinds, tuple(sizes)

    @staticmethod
    def _space(template: tuple) -> Sequence[str]:
        form, attr, _, kinds, _ = template
        if form == "count":
            return [str(n) for n in COUNT_ANSWERS[kinds[0]]]
        if form in ("query", "relate query", "closest query"):
            return VALUES[attr]
        return YES_NO

    def _find(self, scene: dict, template: tuple, target: str, asked: set[str]):
        form, attr, rel, kinds, sizes = template
        rnd = self.rnd
        objects = scene["objects"]
        pools = []  # the objects each description may be drawn from
        for kind, size, role in zip(kinds, sizes, ROLES[form]):
            pool = [o for o in objects if size is None or o["size"] == size]
            if role in ("answer", "related"):
                pool = [o for o in pool if o[attr] == target]
            if role in ("answer", "ref"):  # those the kind's words single out
                words = Counter(tuple(o[a] for a in kind) for o in objects)
                pool = [o for o in pool if words[tuple(o[a] for a in kind)] == 1]
            if not pool and role != "free":
                return None  # e.g. no small red object to ask the shape of
            pools.append(pool)
        tried = set()
        for _ in range(self.TRIES if any(kinds) else 1):  # "How many objects": one try
            sources = []
            for i, (pool, role) in enumerate(zip(pools, ROLES[form])):
                if form == "same" and i == 1:
                    # The second object of a "same colour" question: one that has the
                    # answer's relation to the first, so "yes" is not a rare find.
                    pool = [o for o in pool if o is not sources[0]
                            and (o[attr] == sources[0][attr]) == (target == "yes")]
                if role == "free" and (not pool or rnd.random() < 0.5):
                    sources.append(None)  # uniform values, so that "no"/0 are found
                elif pool:
                    sources.append(rnd.choice(pool))
                else:
                    break
            else:
                ds = tuple(self._describe(kind, size, source)
                           for kind, size, source in zip(kinds, sizes, sources))
                if ds in tried:
                    continue
                tried.add(ds)
                q = self._check(scene, form, ds, attr, rel, target, asked)
                if q is not None:
                    return q
        return None

    def _describe(self, kind: tuple, size: str | None, source: dict | None) -> Description:
        """Values for the attributes `kind` names: those of `source`, else uniform."""
        values = []
        for a in ATTRIBUTES:
            if a not in kind:
                values.append(None)
            elif a == "size":
                values.append(size)
            else:
                values.append(source[a] if source else self.rnd.choice(VALUES[a]))
        return tuple(values)

    @staticmethod
    def _check(scene: dict, form: str, ds: tuple, attr: str | None, rel: str | None,
               target: str, asked: set[str]) -> tuple[str, list[dict]] | None:
        """The question's text and program, when it is valid and its answer the target."""
        if form in ("more", "fewer", "as many") and ds[0] == ds[1]:
            return None
        if form in ("relate exist", "relate query") and _implies(ds[0], ds[1]):
            return None  # "a red circle left of the red object": always no
        text, program = _build(form, ds, attr, rel)
        if text in asked:
            return None
        try:
            outputs = run_program(program, scene)
        except ProgramError:
            return None
        if form == "same" and _unique_outputs(program, outputs) != 2:
            return None  # the two descriptions must be two objects
        return (text, program) if _answer_text(outputs[-1]) == target else None


def _implies(a: Description, b: Description) -> bool:
    """Whether every object matching a also matches b."""
    return all(vb is None or va == vb for va, vb in zip(a, b))


def _unique_outputs(program: Sequence[dict], outputs: Sequence) -> int:
    return len({out for step, out in zip(program, outputs) if step["function"] == "unique"})


# --- writing -------------------------------------------------------------------------

def _split_sizes(images: int) -> dict[str, int]:
    test = images // TEST_FRACTION
    return {"train": images - test, "test": test}


def records(images: int, seed: int) -> Iterator[tuple[dict, list[dict]]]:
    """(scene, questions) per image, in CLEVR's JSON form, train split first.

    Images are not rendered here: they are a function of the scene (`render`).
    """
    _check_args(images, seed)
    rnd = _Random(seed)
    sampler = _Sampler(rnd)
    for split, count in _split_sizes(images).items():
        sampler.new_split()
        question_index = 0
        for image_index in range(count):
            objects = make_scene(rnd)
            filename = f"CLEVR_{split}_{image_index:06d}.png"
            scene = {"split": split, "image_index": image_index, "image_filename": filename,
                     "objects": objects, "relationships": relationships(objects)}
            questions = []
            for family, form, text, program in sampler.questions(scene, QUESTIONS_PER_IMAGE):
                questions.append({
                    "split": split, "image_index": image_index, "image_filename": filename,
                    "question_index": question_index, "question": text,
                    "answer": execute(program, scene), "question_family_index": FORMS.index(form),
                    "question_family": family, "program": program})
                question_index += 1
            yield scene, questions


SEPARATORS = (",", ":")  # compact: 100,000 programs add up


class _JsonList:
    """Writes {"info": ..., key: [records...]} one record at a time, so that the
    100,000 questions of a run are never all in memory."""

    def __init__(self, path: Path, info: dict, key: str) -> None:
        self.file = open(path, "w", encoding="utf-8")
        self.file.write(json.dumps({"info": info}, separators=SEPARATORS)[:-1]
                        + f',"{key}":[')
        self.first = True

    def add(self, record: dict) -> None:
        text = json.dumps(record, separators=SEPARATORS)
        self.file.write(text if self.first else "," + text)
        self.first = False

    def close(self) -> None:
        if not self.file.closed:
            self.file.write("]}")
            self.file.close()


def generate(root: str | Path, *, images: int = 10000, seed: int = 0) -> None:
    """Write `images` scenes (the last tenth the test split) in CLEVR's format to root."""
    _check_args(images, seed)
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise DatasetError(f"{root} is a file, not a directory. Choose another output.")
    sizes = _split_sizes(images)
    for sub in ("questions", "scenes", *(f"images/{s}" for s in sizes)):
        (root / sub).mkdir(parents=True, exist_ok=True)
    writers: list[_JsonList] = []  # those of the split being written
    try:
        for scene, questions in progress(records(images, seed), "generating scenes", images):
            split = scene["split"]
            if scene["image_index"] == 0:
                for w in writers:
                    w.close()
                info = {"split": split, "version": "1.0", "generator": "data_prep.scenes",
                        "seed": seed, "images": sizes[split],
                        "license": "Creative Commons Attribution (CC BY 4.0)"}
                writers = [
                    _JsonList(root / "scenes" / f"CLEVR_{split}_scenes.json", info, "scenes"),
                    _JsonList(root / "questions" / f"CLEVR_{split}_questions.json", info,
                              "questions")]
            render(scene).save(root / "images" / split / scene["image_filename"])
            writers[0].add(scene)
            for q in questions:
                writers[1].add(q)
    finally:
        for w in writers:
            w.close()


def _check_args(images: int, seed: int) -> None:
    if not isinstance(images, int) or isinstance(images, bool) or images < TEST_FRACTION:
        raise DatasetError(f"--images must be an integer of at least {TEST_FRACTION} (the "
                           f"last tenth is the test split). Received: images={images!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise DatasetError(f"--seed must be a non-negative integer. Received: seed={seed!r}")


# --- preparing and measuring ---------------------------------------------------------

def prepare(out: str | Path, *, images: int = 10000, seed: int = 0,
            overwrite: bool = False) -> PreparedDataset:
    """Generate scenes and write them to `out` as a prepared dataset (via the CLEVR
    loader, images copied in, the CLEVR JSON kept under clevr/)."""
    _check_args(images, seed)
    out = Path(out)
    check_output(out, overwrite)  # fail now, not after generating
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.scenes.", dir=out.parent))
    try:
        generate(tmp, images=images, seed=seed)
        return clevr.prepare(tmp, out, overwrite=overwrite, copy_images=True, keep_json=True,
                             name="scenes", source=f"generated by data_prep.scenes: "
                                                   f"{images} images, seed {seed}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)



def read_split(data: str | Path, split: str = "test") -> tuple[list[dict], dict[int, dict]]:
    """The CLEVR-format questions of one split of a prepared scenes dataset (`prepare`
    keeps what `generate` wrote under DATA/clevr/), and its scenes by image index."""
    clevr_json = Path(data) / "clevr"
    asked = json.loads((clevr_json / "questions" / f"CLEVR_{split}_questions.json")
                       .read_text())["questions"]
    scenes = json.loads((clevr_json / "scenes" / f"CLEVR_{split}_scenes.json").read_text())
    return asked, {s["image_index"]: s for s in scenes["scenes"]}

def answer_space(answer: str) -> str:
    """Which kind of answer: yes/no, number, color, shape, size (else other)."""
    if answer in YES_NO:
        return "yes/no"
    if answer.isdigit():
        return "number"
    return next((attr for attr, values in VALUES.items() if answer in values), "other")


def question_table(source: str | Path | PreparedDataset | Iterable[dict]) -> pd.DataFrame:
    """split, question, answer and family ("family / answer space") of every question.

    source: a directory written by `generate`, a prepared dataset (or its directory),
    or CLEVR-format question records.
    """
    if isinstance(source, (str, Path)):
        root = Path(source)
        if (root / "meta.json").is_file():
            source = PreparedDataset.load(root)
        else:
            files = sorted((root / "questions").glob("CLEVR_*_questions.json"))
            if not files:
                raise DatasetError(f"No questions/CLEVR_*_questions.json under {root}. "
                                   "Pass a directory written by data_prep.scenes.generate "
                                   "or a prepared dataset.")
            source = [q for f in files for q in json.loads(f.read_text())["questions"]]
    if isinstance(source, PreparedDataset):
        table = source.questions[["split", "question", "answer"]].copy()
        family = source.questions["question_type"]
    else:
        rows = list(source)
        table = pd.DataFrame({"split": [q["split"] for q in rows],
                              "question": [q["question"] for q in rows],
                              "answer": [q["answer"] for q in rows]})
        family = pd.Series([q["question_family"] for q in rows])
    table["family"] = family.to_numpy() + " / " + table["answer"].map(answer_space)
    return table


def balance_table(source: str | Path | PreparedDataset | Iterable[dict],
                  train: str = "train", test: str = "test") -> pd.DataFrame:
    """Question-only accuracy against the majority answer, per family and answer space
    (data_prep.balance.question_only_table)."""
    return question_only_table(question_table(source), family="family", train=train,
                               test=test)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_generator_arguments(parser)


def run(args: argparse.Namespace) -> str:
    dataset = prepare(args.out, images=args.images, seed=args.seed, overwrite=args.overwrite)
    return "\n".join([report(dataset),
                      "question-only balance (test split, per family / answer space):",
                      format_table(balance_table(dataset))])


def main(argv: list[str] | None = None) -> int:
    return command_line("python -m data_prep.scenes", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
