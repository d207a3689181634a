"""The scenes themselves: objects placed without overlap, their spatial relations,
and the drawn image."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from PIL import Image, ImageDraw

IMAGE_SIZE = 128
BACKGROUND = (236, 236, 232)
COLORS = {  # far apart in RGB, none close to the background
    "gray": (128, 128, 128),
    "red": (210, 40, 40),
    "blue": (40, 70, 215),
    "green": (40, 160, 60),
    "brown": (130, 80, 35),
    "purple": (130, 50, 180),
    "cyan": (40, 200, 210),
    "yellow": (235, 200, 30),
}
SHAPES = ("circle", "square", "triangle")
SIZES = {"small": 14, "large": 26}  # pixels across (the drawn box is one more)
ATTRIBUTES = ("size", "color", "shape")  # the order of words in a description
COLOR_NAMES = tuple(COLORS)
VALUES = {"size": tuple(SIZES), "color": COLOR_NAMES, "shape": SHAPES}
RELATIONS = {"left": "left of", "right": "right of", "above": "above", "below": "below"}

EDGE = 2  # free pixels between an object and the image border
GAP = 4  # free pixels between two objects
MIN_DELTA = 3  # centres differ by this much in x and in y: left/above are never a toss-up


class SceneRandom:
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


def _place(halves: list[int], rnd: SceneRandom) -> list[tuple[int, int]] | None:
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
    return all(
        (abs(x - px) >= h + ph + GAP or abs(y - py) >= h + ph + GAP)
        and abs(x - px) >= MIN_DELTA
        and abs(y - py) >= MIN_DELTA
        for px, py, ph in placed
    )


def make_scene(rnd: SceneRandom) -> list[dict]:
    """3-10 objects with independent, uniform attributes at random free places."""
    n = 3 + rnd.below(8)
    objects = [
        {
            "color": rnd.choice(VALUES["color"]),
            "shape": rnd.choice(SHAPES),
            "size": rnd.choice(VALUES["size"]),
        }
        for _ in range(n)
    ]
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
    return {
        "left": [[j for j in idx if xy[j][0] < x] for x, _ in xy],
        "right": [[j for j in idx if xy[j][0] > x] for x, _ in xy],
        "above": [[j for j in idx if xy[j][1] < y] for _, y in xy],
        "below": [[j for j in idx if xy[j][1] > y] for _, y in xy],
    }


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
