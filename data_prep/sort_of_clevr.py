"""Generate Sort-of-CLEVR (Santoro et al. 2017, supplement D) in the prepared-dataset format.

    python -m data_prep.sort_of_clevr --out data/sort-of-clevr [--images 10000] [--seed 0]

75x75 PNG images on white, each with six objects, one per colour (red, green, blue,
orange, yellow, gray), each a 10x10 square or a circle of diameter 10, none overlapping.
Per image 10 non-relational questions (shape, left?, top?) and 10 relational ones
(shape of the closest object, shape of the furthest object, how many objects share the
shape). The last 10% of the images are the test split. The same seed gives a
byte-identical directory; the questions carry a `question_group` column
("relational" / "non_relational"), the split the paper reports accuracy on.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from data_prep.balance import format_table, question_only_table
from data_prep.common import add_generator_arguments, command_line, report
from data_prep.generated import check_generator_arguments, generated_image_ids, write_generated
from vqa.data.dataset import QUESTION_COLUMNS, PreparedDataset

IMAGE_SIZE = 75
OBJECT_SIZE = 10  # square side and circle diameter, in pixels
GAP = 1  # at least one white pixel between the bounding boxes of two objects
BACKGROUND = (255, 255, 255)
COLORS = {
    "red": (220, 30, 30),
    "green": (30, 160, 50),
    "blue": (30, 60, 220),
    "orange": (245, 140, 20),
    "yellow": (235, 215, 20),
    "gray": (128, 128, 128),
}
SHAPES = ("square", "circle")
QUESTIONS_PER_GROUP = 10  # per image, of each group
MIN_IMAGES = 10  # the test split is the last images // 10
_FAR = 2 * IMAGE_SIZE**2  # more than any squared distance inside the image

# kind -> (group, question template, answer_type); the first three are non-relational.
KINDS = {
    "shape": ("non_relational", "What is the shape of the {} object?", "other"),
    "horizontal position": ("non_relational", "Is the {} object on the left?", "yes/no"),
    "vertical position": ("non_relational", "Is the {} object on the top?", "yes/no"),
    "closest shape": (
        "relational",
        "What is the shape of the object closest to the {} object?",
        "other",
    ),
    "furthest shape": (
        "relational",
        "What is the shape of the object furthest from the {} object?",
        "other",
    ),
    "count same shape": (
        "relational",
        "How many objects have the shape of the {} object?",
        "number",
    ),
}


def make_scenes(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n scenes: the top-left corner of each object's box [n, 6, 2] (x, y) and its shape [n, 6].

    Object k has colour k. Whole scenes are drawn at once and rejected when two boxes
    overlap or when a closest/furthest question would have a tie, so every scene is
    uniform among the valid ones and every answer is unambiguous.
    """
    k, span = len(COLORS), IMAGE_SIZE - OBJECT_SIZE + 1
    kept: list[np.ndarray] = []
    have = 0
    while have < n:
        # About a quarter of random layouts are valid; draw enough to finish in one go.
        corners = rng.integers(0, span, size=(max(256, 5 * (n - have)), k, 2))
        valid = _separated(corners) & ~_distance_ties(corners)
        kept.append(corners[valid])
        have += int(valid.sum())
    corners = np.concatenate(kept)[:n]
    shapes = rng.integers(0, len(SHAPES), size=(n, k))
    return corners, shapes


def _separated(corners: np.ndarray) -> np.ndarray:
    """Per scene: every two boxes are at least GAP pixels apart in x or in y."""
    delta = np.abs(corners[:, :, None, :] - corners[:, None, :, :]).max(-1)  # [m, 6, 6]
    apart = (delta >= OBJECT_SIZE + GAP) | np.eye(corners.shape[1], dtype=bool)
    return apart.all((1, 2))


def _distance_ties(corners: np.ndarray) -> np.ndarray:
    """Per scene: some object has two others at the same nearest or furthest distance."""
    d = _squared_distances(corners, itself=_FAR)  # integers, so equality is exact
    ranked = np.sort(d, axis=-1)[..., :-1]  # drop the object itself (sorted last)
    return ((ranked[..., 0] == ranked[..., 1]) | (ranked[..., -1] == ranked[..., -2])).any(-1)


def _squared_distances(corners: np.ndarray, itself: int) -> np.ndarray:
    """[m, 6, 6] squared centre distances, with `itself` as an object's distance to itself."""
    diff = corners[:, :, None, :].astype(np.int64) - corners[:, None, :, :]
    d = (diff**2).sum(-1)
    return np.where(np.eye(corners.shape[1], dtype=bool), itself, d)


def object_answers(corners: np.ndarray, shapes: np.ndarray) -> dict[str, np.ndarray]:
    """Per kind, the answer about each object of each scene: [n, 6] strings.

    Centres are in continuous pixel coordinates (pixel i covers [i, i+1)), so a box at
    corner x has its centre at x + 5, never exactly on the 37.5 midline.
    """
    centres = corners + OBJECT_SIZE / 2
    # No ties by construction; were there any, argmin/argmax take the first colour.
    closest = _squared_distances(corners, itself=_FAR).argmin(-1)
    furthest = _squared_distances(corners, itself=-1).argmax(-1)
    rows = np.arange(len(shapes))[:, None]
    shape_names = np.array(SHAPES)
    yes_no = np.array(["no", "yes"])
    count = (shapes[:, :, None] == shapes[:, None, :]).sum(-1)  # includes the object itself
    return {
        "shape": shape_names[shapes],
        "horizontal position": yes_no[(centres[..., 0] < IMAGE_SIZE / 2).astype(int)],
        "vertical position": yes_no[(centres[..., 1] < IMAGE_SIZE / 2).astype(int)],
        "closest shape": shape_names[shapes[rows, closest]],
        "furthest shape": shape_names[shapes[rows, furthest]],
        "count same shape": count.astype(str),
    }


def make_questions(
    rng: np.random.Generator,
    corners: np.ndarray,
    shapes: np.ndarray,
    image_ids: list[str],
    splits: list[str],
) -> pd.DataFrame:
    """10 non-relational and 10 relational questions per image, in the contract's columns.

    Within a group an image's questions are distinct (colour, kind) pairs drawn without
    replacement from the 18 possible, so no image is asked the same question twice.
    """
    n, k = shapes.shape
    kinds = list(KINDS)
    answers = object_answers(corners, shapes)
    by_kind = np.stack([answers[kind] for kind in kinds])  # [6 kinds, n, 6 colours]
    colour_names = list(COLORS)
    picks = []
    for offset in (0, 3):  # non-relational kinds 0-2, relational kinds 3-5
        pairs = np.argsort(rng.random((n, 3 * k)), axis=1)[:, :QUESTIONS_PER_GROUP]
        picks.append((offset + pairs // k, pairs % k))
    kind = np.concatenate([p[0] for p in picks], axis=1).ravel()  # [n * 20]
    colour = np.concatenate([p[1] for p in picks], axis=1).ravel()
    image = np.repeat(np.arange(n), 2 * QUESTIONS_PER_GROUP)
    answer = by_kind[kind, image, colour]
    kind_names = [kinds[i] for i in kind]
    questions = pd.DataFrame(
        {
            "question_id": np.arange(len(kind), dtype=np.int64),
            "image_id": [image_ids[i] for i in image],
            "split": [splits[i] for i in image],
            "question": [
                KINDS[name][1].format(colour_names[c]) for name, c in zip(kind_names, colour)
            ],
            "answers": [[a] for a in answer.tolist()],
            "answer": answer.tolist(),
            "question_type": kind_names,
            "answer_type": [KINDS[name][2] for name in kind_names],
            "question_group": [KINDS[name][0] for name in kind_names],
        }
    )
    return questions[list(QUESTION_COLUMNS) + ["question_group"]]


def draw_scene(corners: np.ndarray, shapes: np.ndarray) -> Image.Image:
    """One scene as a 75x75 RGB image: object k in colour k at its box [x, x+10) x [y, y+10)."""
    image = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), BACKGROUND)
    draw = ImageDraw.Draw(image)
    for (x, y), shape, colour in zip(corners.tolist(), shapes.tolist(), COLORS.values()):
        box = (x, y, x + OBJECT_SIZE - 1, y + OBJECT_SIZE - 1)  # PIL boxes are inclusive
        (draw.rectangle if SHAPES[shape] == "square" else draw.ellipse)(box, fill=colour)
    return image


def prepare(
    out: str | Path, *, images: int = 10000, seed: int = 0, overwrite: bool = False
) -> PreparedDataset:
    """Generate `images` scenes from `seed`, write them to `out` and return the loaded dataset."""
    images, seed = check_generator_arguments(images, seed, MIN_IMAGES)
    rng = np.random.default_rng(seed)
    corners, shapes = make_scenes(rng, images)
    image_ids, splits = generated_image_ids(images)
    return write_generated(
        out,
        name="sort-of-clevr",
        module="sort_of_clevr",
        seed=seed,
        image_ids=image_ids,
        size=IMAGE_SIZE,
        draw=lambda i: draw_scene(corners[i], shapes[i]),
        questions=make_questions(rng, corners, shapes, image_ids, splits),
        overwrite=overwrite,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_generator_arguments(parser)


def run(args: argparse.Namespace) -> str:
    dataset = prepare(args.out, images=args.images, seed=args.seed, overwrite=args.overwrite)
    return "\n".join(
        [
            report(dataset),
            "question-only balance (test split, per question type):",
            format_table(question_only_table(dataset.questions)),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    return command_line("python -m data_prep.sort_of_clevr", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
