"""Reference captions of a generated scene: several wordings, each true of the scene.

Every caption is built from the scene's own objects (a colour, shape and size named
is one that is there, a count is the count, a relation holds), in at most 16 words, so
a small decoder can learn them. They are drawn from a random stream of their own,
seeded by (seed, split, image): the images and questions a seed gives are unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

CAPTIONS_PER_IMAGE = 5
STREAM = 28  # the captions' stream, apart from the scenes' (issue 28)
NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def _name(obj: dict, size: bool) -> str:
    """ "large red circle" or "red circle"."""
    words = [obj["size"]] if size else []
    return " ".join(words + [obj["color"], obj["shape"]])


def _pick(objects: Sequence[dict], rng: np.random.Generator, n: int) -> list[dict]:
    return [objects[i] for i in rng.choice(len(objects), size=n, replace=False)]


def _a(obj: dict, rng: np.random.Generator) -> str:
    return "a " + _name(obj, size=bool(rng.random() < 0.5))


def _listing(objects: list[dict], rng: np.random.Generator) -> str:
    a, b = (_a(o, rng) for o in _pick(objects, rng, 2))
    return f"{a} and {b}"


def _three(objects: list[dict], rng: np.random.Generator) -> str:
    a, b, c = (_a(o, rng) for o in _pick(objects, rng, 3))
    return f"{a}, {b} and {c}"


def _count_list(objects: list[dict], rng: np.random.Generator) -> str:
    n = NUMBERS[len(objects)]
    if len(objects) == 3:  # all of them, without sizes to stay short
        a, b, c = ("a " + _name(o, size=False) for o in _pick(objects, rng, 3))
        return f"there are three objects: {a}, {b} and {c}"
    a, b = (_a(o, rng) for o in _pick(objects, rng, 2))
    return f"there are {n} objects, among them {a} and {b}"


def _picture(objects: list[dict], rng: np.random.Generator) -> str:
    first = _pick(objects, rng, 1)[0]
    key = (first["color"], first["shape"])
    same = sum((o["color"], o["shape"]) == key for o in objects)
    group = (
        f"a {_name(first, False)}"
        if same == 1
        else f"{NUMBERS[same]} {first['color']} {first['shape']}s"
    )
    others = [o for o in objects if (o["color"], o["shape"]) != key]
    if not others:
        return f"a picture of {group}"
    return f"a picture of {group} and {_a(_pick(others, rng, 1)[0], rng)}"


def _relation(objects: list[dict], rng: np.random.Generator) -> str:
    a, b = _pick(objects, rng, 2)
    (ax, ay, _), (bx, by, _) = a["pixel_coords"], b["pixel_coords"]
    # Centres never share an x or a y (geometry.MIN_DELTA): one of each pair holds.
    if rng.random() < 0.5:
        relation = "left of" if ax < bx else "right of"
    else:
        relation = "above" if ay < by else "below"  # y grows downwards
    return f"{_a(a, rng)} {relation} {_a(b, rng)}"


def _attribute_count(objects: list[dict], rng: np.random.Generator) -> str:
    obj = _pick(objects, rng, 1)[0]
    attr = "color" if rng.random() < 0.5 else "shape"
    k = sum(o[attr] == obj[attr] for o in objects)
    if attr == "color":
        what = obj["color"]
    else:
        what = f"a {obj['shape']}" if k == 1 else f"{obj['shape']}s"
    return f"{NUMBERS[len(objects)]} objects, {NUMBERS[k]} of them {what}"


def _sizes(objects: list[dict], rng: np.random.Generator) -> str:
    large = sum(o["size"] == "large" for o in objects)
    small = len(objects) - large
    if large and small:
        return f"{NUMBERS[large]} large and {NUMBERS[small]} small objects"
    return f"{NUMBERS[len(objects)]} {'large' if large else 'small'} objects"


TEMPLATES: tuple[Callable[[list[dict], np.random.Generator], str], ...] = (
    _listing,
    _three,
    _count_list,
    _picture,
    _relation,
    _attribute_count,
    _sizes,
)


def describe(scene: dict, seed: int, n: int = CAPTIONS_PER_IMAGE) -> list[str]:
    """Up to n distinct captions of one scene (CLEVR form: split, image_index,
    objects), each from another template; the same for the same seed and scene."""
    entropy = [STREAM, seed, scene["image_index"], *scene["split"].encode()]
    rng = np.random.default_rng(entropy)
    objects = scene["objects"]
    captions: list[str] = []
    for t in rng.permutation(len(TEMPLATES)):
        caption = TEMPLATES[t](objects, rng)
        if caption not in captions:
            captions.append(caption)
        if len(captions) == n:
            break
    return captions


def caption_table(root: str | Path, seed: int, splits: Sequence[str]) -> pd.DataFrame:
    """caption_id, image_id, split, caption for the scenes `generate` wrote under root
    (image_id as the CLEVR loader names images: "{split}/{image_filename}")."""
    rows = []
    for split in splits:
        path = Path(root) / "scenes" / f"CLEVR_{split}_scenes.json"
        for scene in json.loads(path.read_text())["scenes"]:
            image_id = f"{split}/{scene['image_filename']}"
            rows += [(image_id, split, c) for c in describe(scene, seed)]
    table = pd.DataFrame(rows, columns=["image_id", "split", "caption"])
    table.insert(0, "caption_id", range(len(table)))
    return table
