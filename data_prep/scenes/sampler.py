"""Balanced question sampling: for each template the target answer is drawn first
(the one given least so far), then a question that gives it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from data_prep.scenes.geometry import ATTRIBUTES, COLOR_NAMES, RELATIONS, VALUES, SceneRandom
from data_prep.scenes.programs import (
    FAMILIES,
    FAMILY_FORMS,
    YES_NO,
    Description,
    ProgramError,
    answer_text,
    build_question,
    run_program,
)

KINDS = tuple(
    k
    for k in (
        (),
        ("size",),
        ("color",),
        ("shape",),
        ("size", "color"),
        ("size", "shape"),
        ("color", "shape"),
        ATTRIBUTES,
    )
)
# The answers a count template asks for, by the attributes its description names: a
# range every answer of which the scenes give often enough to balance.
COUNT_ANSWERS = {
    (): range(3, 11),
    ("size",): range(1, 6),
    ("color",): range(0, 4),
    ("shape",): range(0, 5),
    ("size", "color"): range(0, 3),
    ("size", "shape"): range(0, 4),
    ("color", "shape"): range(0, 3),
    ATTRIBUTES: range(0, 2),
}


def _other_kinds(attr: str, empty: bool = False) -> list[tuple]:
    """Descriptions of one object that do not name `attr` (it would give the answer
    away). Not by size alone: "the small object" is rarely one object."""
    return [k for k in KINDS if attr not in k and k != ("size",) and (k or empty)]


# What each description of a form is for, which decides how it is drawn: "free" may
# match any number of objects, "ref" must match exactly one, "answer" is the only
# object it matches and has the answer as its attribute, "related" has the answer as
# its attribute and is the only one it matches among the objects in some relation.
ROLES = {
    "exist": ("free",),
    "count": ("free",),
    "more": ("free", "free"),
    "fewer": ("free", "free"),
    "as many": ("free", "free"),
    "query": ("answer",),
    "same": ("ref", "ref"),
    "relate exist": ("free", "ref"),
    "relate query": ("related", "ref"),
    "closest query": ("ref",),
}


class Sampler:
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

    def __init__(self, rnd: SceneRandom) -> None:
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
            kinds = (
                pick((form, attr, 0), _other_kinds(attr)),
                pick((form, attr, 1), _other_kinds(attr)),
            )
        elif form == "relate exist":
            kinds = (pick((form, 0), KINDS), pick((form, 1), KINDS[1:]))
        elif form == "relate query":
            # Neither object is named by the queried attribute: "the object left of the
            # red circle" is less often red, which a question-only model would learn.
            kinds = (
                pick((form, attr, 0), _other_kinds(attr, empty=True)),
                pick((form, attr, 1), _other_kinds(attr)),
            )
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
                    pool = [
                        o
                        for o in pool
                        if o is not sources[0]
                        and (o[attr] == sources[0][attr]) == (target == "yes")
                    ]
                if role == "free" and (not pool or rnd.random() < 0.5):
                    sources.append(None)  # uniform values, so that "no"/0 are found
                elif pool:
                    sources.append(rnd.choice(pool))
                else:
                    break
            else:
                ds = tuple(
                    self._describe(kind, size, source)
                    for kind, size, source in zip(kinds, sizes, sources)
                )
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
    def _check(
        scene: dict,
        form: str,
        ds: tuple,
        attr: str | None,
        rel: str | None,
        target: str,
        asked: set[str],
    ) -> tuple[str, list[dict]] | None:
        """The question's text and program, when it is valid and its answer the target."""
        if form in ("more", "fewer", "as many") and ds[0] == ds[1]:
            return None
        if form in ("relate exist", "relate query") and _implies(ds[0], ds[1]):
            return None  # "a red circle left of the red object": always no
        text, program = build_question(form, ds, attr, rel)
        if text in asked:
            return None
        try:
            outputs = run_program(program, scene)
        except ProgramError:
            return None
        if form == "same" and _unique_outputs(program, outputs) != 2:
            return None  # the two descriptions must be two objects
        return (text, program) if answer_text(outputs[-1]) == target else None


def _implies(a: Description, b: Description) -> bool:
    """Whether every object matching a also matches b."""
    return all(vb is None or va == vb for va, vb in zip(a, b))


def _unique_outputs(program: Sequence[dict], outputs: Sequence) -> int:
    return len({out for step, out in zip(program, outputs) if step["function"] == "unique"})
