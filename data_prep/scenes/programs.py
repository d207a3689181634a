"""Functional programs in CLEVR's form: building a question's program and text for a
template, and executing a program on a scene to get its answer."""

from __future__ import annotations

from collections.abc import Sequence

from data_prep.scenes.geometry import ATTRIBUTES, RELATIONS

FAMILIES = (
    "exist",
    "count",
    "compare numbers",
    "query attribute",
    "compare attribute",
    "spatial relation",
)
# Question templates ("forms"); question_family_index is the index in this tuple.
FORMS = (
    "exist",
    "count",
    "more",
    "fewer",
    "as many",
    "query",
    "same",
    "relate exist",
    "relate query",
    "closest query",
)
FAMILY_FORMS = {
    "exist": ("exist",),
    "count": ("count",),
    "compare numbers": ("more", "fewer", "as many"),
    "query attribute": ("query",),
    "compare attribute": ("same",),
    "spatial relation": ("relate exist", "relate query", "closest query"),
}
YES_NO = ("yes", "no")

Description = tuple  # (size, color, shape), None where the description does not say


class ProgramError(ValueError):
    """A program cannot be executed on a scene (e.g. `unique` of two objects)."""


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
            attr = fn[len("filter_") :]
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
            out = objects[args[0]][fn[len("query_") :]]
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
    return answer_text(run_program(program, scene)[-1])


def answer_text(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _closest(objects: Sequence[dict], ref: int) -> int:
    x, y = objects[ref]["pixel_coords"][:2]
    dist = sorted(
        ((o["pixel_coords"][0] - x) ** 2 + (o["pixel_coords"][1] - y) ** 2, i)
        for i, o in enumerate(objects)
        if i != ref
    )
    if len(dist) > 1 and dist[0][0] == dist[1][0]:
        raise ProgramError("closest: two objects are equally close")
    return dist[0][1]


def step(function: str, inputs: Sequence[int] = (), value: str | None = None) -> dict:
    return {
        "function": function,
        "inputs": list(inputs),
        "value_inputs": [] if value is None else [value],
    }


def _filter(program: list[dict], d: Description, start: int) -> int:
    """Append the filters of a description after step `start`; the index of the last."""
    last = start
    for attr, value in zip(ATTRIBUTES, d):
        if value is not None:
            program.append(step(f"filter_{attr}", [last], value))
            last = len(program) - 1
    return last


def _objects(program: list[dict], d: Description) -> int:
    program.append(step("scene"))
    return _filter(program, d, len(program) - 1)


def _unique(program: list[dict], d: Description) -> int:
    program.append(step("unique", [_objects(program, d)]))
    return len(program) - 1


def _words(d: Description, plural: bool = False) -> str:
    size, color, shape = d
    noun = shape or "object"
    return " ".join(w for w in (size, color, noun + ("s" if plural else "")) if w)


def _a(d: Description) -> str:
    words = _words(d)
    return ("an " if words[0] in "aeiou" else "a ") + words


def build_question(
    form: str, d: Sequence[Description], attr: str | None, rel: str | None
) -> tuple[str, list[dict]]:
    """A question's text and program."""
    p: list[dict] = []
    if form == "exist":
        p.append(step("exist", [_objects(p, d[0])]))
        return f"Is there {_a(d[0])}?", p
    if form == "count":
        p.append(step("count", [_objects(p, d[0])]))
        return f"How many {_words(d[0], True)} are there?", p
    if form in ("more", "fewer", "as many"):
        p.append(step("count", [_objects(p, d[0])]))
        first = len(p) - 1
        p.append(step("count", [_objects(p, d[1])]))
        fn = {"more": "greater_than", "fewer": "less_than", "as many": "equal_integer"}[form]
        p.append(step(fn, [first, len(p) - 1]))
        a, b = _words(d[0], True), _words(d[1], True)
        text = (
            f"Are there as many {a} as {b}?"
            if form == "as many"
            else f"Are there {form} {a} than {b}?"
        )
        return text, p
    if form == "query":
        p.append(step(f"query_{attr}", [_unique(p, d[0])]))
        return f"What {attr} is the {_words(d[0])}?", p
    if form == "same":
        p.append(step(f"query_{attr}", [_unique(p, d[0])]))
        first = len(p) - 1
        p.append(step(f"query_{attr}", [_unique(p, d[1])]))
        p.append(step(f"equal_{attr}", [first, len(p) - 1]))
        return f"Does the {_words(d[0])} have the same {attr} as the {_words(d[1])}?", p
    if form in ("relate exist", "relate query"):
        p.append(step("relate", [_unique(p, d[1])], rel))
        last = _filter(p, d[0], len(p) - 1)
        where = f"{RELATIONS[rel]} the {_words(d[1])}"
        if form == "relate exist":
            p.append(step("exist", [last]))
            return f"Is there {_a(d[0])} {where}?", p
        p.append(step("unique", [last]))
        p.append(step(f"query_{attr}", [len(p) - 1]))
        return f"What {attr} is the {_words(d[0])} {where}?", p
    if form == "closest query":
        p.append(step("closest", [_unique(p, d[0])]))
        p.append(step(f"query_{attr}", [len(p) - 1]))
        return f"What {attr} is the object closest to the {_words(d[0])}?", p
    raise ValueError(f"unknown form {form!r}")
