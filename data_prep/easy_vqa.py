"""Prepare easy-VQA (the `easy-vqa` PyPI package) in the prepared-dataset format.

    python -m data_prep.easy_vqa --out data/easy-vqa
    vqa prepare easy-vqa --out data/easy-vqa

4,000 train / 1,000 test images (64x64 PNG), 38,575 / 9,673 questions, 13 answers.
Images are copied into the dataset, so it does not depend on the package afterwards.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from pathlib import Path

import pandas as pd
from PIL import Image

from data_prep.common import command_line, report, write_prepared
from vqa.data.dataset import PreparedDataset
from vqa.errors import DatasetError
from vqa.metrics import normalize_answer

EXPECTED = {"train": (4000, 38575), "test": (1000, 9673)}  # images, questions
log = logging.getLogger(__name__)


def question_type(question: str) -> str:
    """easy-VQA has four kinds of question; negated yes/no ones are the hard part."""
    words = question.lower().rstrip("?").split()
    if words[0] == "what":
        return "color" if "color" in words else "shape"
    return "yes/no negated" if {"not", "no"} & set(words) else "yes/no"


def load_split(split: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Questions and images of one split, read from the installed package."""
    try:
        import easy_vqa
    except ImportError:
        raise DatasetError("The easy-vqa package is not installed: pip install easy-vqa") from None
    getters = {
        "train": (easy_vqa.get_train_questions, easy_vqa.get_train_image_paths),
        "test": (easy_vqa.get_test_questions, easy_vqa.get_test_image_paths),
    }
    get_questions, get_paths = getters[split]
    texts, answers, image_ids = get_questions()
    paths = get_paths()
    questions = pd.DataFrame({"question": texts, "raw_answer": answers, "image": image_ids})
    questions["image_id"] = split + "/" + questions["image"].astype(str)
    questions["split"] = split
    questions["answers"] = questions["raw_answer"].map(lambda a: [a])
    questions["answer"] = questions["raw_answer"].map(normalize_answer)
    questions["question_type"] = questions["question"].map(question_type)
    questions["answer_type"] = questions["answer"].map(
        lambda a: "yes/no" if a in ("yes", "no") else "other"
    )
    images = pd.DataFrame({"image": sorted(paths)})
    images["image_id"] = split + "/" + images["image"].astype(str)
    images["path"] = split + "/" + images["image"].astype(str) + ".png"
    images["source_path"] = images["image"].map(paths)
    sizes = [Image.open(p).size for p in images["source_path"]]
    images["width"] = [w for w, _ in sizes]
    images["height"] = [h for _, h in sizes]
    n_images, n_questions = EXPECTED[split]
    if len(images) != n_images or len(questions) != n_questions:
        raise DatasetError(
            f"easy-vqa {split}: expected {n_images} images and {n_questions} "
            f"questions, found {len(images)} and {len(questions)}. "
            "Is the installed easy-vqa package complete (version 1.0)?"
        )
    return questions, images


def prepare(out: str | Path, overwrite: bool = False) -> PreparedDataset:
    """Write easy-VQA to `out` and return the loaded dataset."""
    parts = [load_split(split) for split in ("train", "test")]
    questions = pd.concat([q for q, _ in parts], ignore_index=True)
    images = pd.concat([i for _, i in parts], ignore_index=True)
    questions["question_id"] = range(len(questions))

    def copy_images(tmp: Path) -> None:
        for split in ("train", "test"):
            (tmp / "images" / split).mkdir(parents=True)
        for src, rel in zip(images["source_path"], images["path"]):
            shutil.copyfile(src, tmp / "images" / rel)

    return write_prepared(
        out,
        name="easy-vqa",
        source="easy-vqa PyPI package 1.0",
        questions=questions[
            [
                "question_id",
                "image_id",
                "split",
                "question",
                "answers",
                "answer",
                "question_type",
                "answer_type",
            ]
        ],
        images=images[["image_id", "path", "width", "height"]],
        image_root="images",
        fill=copy_images,
        overwrite=overwrite,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="directory to create")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")


def run(args: argparse.Namespace) -> str:
    return report(prepare(args.out, overwrite=args.overwrite))


def main(argv: list[str] | None = None) -> int:
    return command_line("python -m data_prep.easy_vqa", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
