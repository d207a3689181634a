"""Generate long questions whose answer is their first word: the memory test of the
lecture's vanishing-gradient argument, in the prepared-dataset format.

    python -m data_prep.long_questions --out data/long-questions [--images 10000] [--seed 0]

Each question opens with a colour, then runs on with 19-39 words drawn from fillers and
the same colours, and ends "which colour came first": "blue the of red and ... which
colour came first" -> "blue". Every colour can appear later too, so counting words does
not answer it: the question encoder has to carry the first word through 20-40 steps,
and the training signal has to travel back as far (vanilla RNN against LSTM and GRU,
with and without clipping: experiments/gradient_flow.py). The images are 32x32 grey
noise and carry no information. Question types are the length buckets (20-26, 27-33,
34-40 words), so accuracy by type is accuracy by distance. Ten questions an image; the
last 10% of the images are the test split; the same seed gives the same directory.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from data_prep.common import add_generator_arguments, command_line, report
from data_prep.generated import check_generator_arguments, generated_image_ids, write_generated
from vqa.data.dataset import QUESTION_COLUMNS, PreparedDataset

COLOURS = ("red", "green", "blue", "orange", "yellow", "grey", "purple", "white")
FILLERS = (
    "the of and a to in is it that was for on are as with his they at be this from "
    "have or by one had not but what all were when we there can an"
).split()
ENDING = ("which", "colour", "came", "first")
MIN_WORDS, MAX_WORDS = 20, 40  # the whole question, ending included
BUCKETS = ((20, 26), (27, 33), (34, 40))
COLOUR_RATE = 0.25  # of the middle words: a colour, so the first one must be remembered
IMAGE_SIZE = 32
QUESTIONS_PER_IMAGE = 10
MIN_IMAGES = 10  # the test split is the last images // 10


def make_questions(
    rng: np.random.Generator, image_ids: list[str], splits: list[str]
) -> pd.DataFrame:
    """QUESTIONS_PER_IMAGE questions an image, in the contract's columns."""
    n = len(image_ids) * QUESTIONS_PER_IMAGE
    lengths = rng.integers(MIN_WORDS, MAX_WORDS + 1, n)
    first = rng.integers(0, len(COLOURS), n)
    texts = []
    for length, key in zip(lengths.tolist(), first.tolist()):
        middle = length - 1 - len(ENDING)
        colour = rng.random(middle) < COLOUR_RATE
        words = np.where(
            colour,
            np.asarray(COLOURS)[rng.integers(0, len(COLOURS), middle)],
            np.asarray(FILLERS)[rng.integers(0, len(FILLERS), middle)],
        )
        texts.append(" ".join([COLOURS[key], *words.tolist(), *ENDING]))
    answers = [COLOURS[k] for k in first.tolist()]
    image = np.repeat(np.arange(len(image_ids)), QUESTIONS_PER_IMAGE)
    bucket = [next(f"{lo}-{hi} words" for lo, hi in BUCKETS if lo <= n <= hi) for n in lengths]
    return pd.DataFrame(
        {
            "question_id": np.arange(n, dtype=np.int64),
            "image_id": [image_ids[i] for i in image],
            "split": [splits[i] for i in image],
            "question": texts,
            "answers": [[a] for a in answers],
            "answer": answers,
            "question_type": bucket,
            "answer_type": "other",
        }
    )[list(QUESTION_COLUMNS)]


def prepare(
    out: str | Path, *, images: int = 10000, seed: int = 0, overwrite: bool = False
) -> PreparedDataset:
    """Generate `images` noise images with ten long questions each from `seed`, write them
    to `out` and return the loaded dataset."""
    images, seed = check_generator_arguments(images, seed, MIN_IMAGES)
    rng = np.random.default_rng(seed)
    image_ids, splits = generated_image_ids(images)
    questions = make_questions(rng, image_ids, splits)
    noise = rng.integers(0, 256, (images, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    return write_generated(
        out,
        name="long-questions",
        module="long_questions",
        seed=seed,
        image_ids=image_ids,
        size=IMAGE_SIZE,
        draw=lambda i: Image.fromarray(noise[i]).convert("RGB"),
        questions=questions,
        overwrite=overwrite,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_generator_arguments(parser)


def run(args: argparse.Namespace) -> str:
    return report(prepare(args.out, images=args.images, seed=args.seed, overwrite=args.overwrite))


def main(argv: list[str] | None = None) -> int:
    return command_line("python -m data_prep.long_questions", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
