"""Prepare CLEVR v1.0 (or anything written in its format) as a prepared dataset.

    python -m data_prep.clevr --root CLEVR_v1.0 --out data/clevr
    vqa prepare clevr --root CLEVR_v1.0 --out data/clevr [--skip-bad] [--copy-images]

Reads every `ROOT/questions/CLEVR_{split}_questions.json` with its images in
`ROOT/images/{split}/`; the split names are CLEVR's own (train, val, test). A
question's type comes from the last function of its program:

    count -> count             exist -> exist
    equal_integer, greater_than, less_than -> compare numbers
    query_* -> query attribute  equal_* -> compare attribute

Files we generate ourselves (data_prep.scenes) may name the type instead, in a
`question_family` field. CLEVR's test questions have no answers and no programs:
they are kept, unannotated. Images stay where they are (image_root is ROOT/images)
unless --copy-images copies them into the dataset.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from pathlib import Path

import pandas as pd

from data_prep.common import (
    BadRecords,
    add_record_arguments,
    answer_type,
    check_answers_size,
    check_output,
    command_line,
    copy_from,
    escapes_root,
    is_int,
    progress,
    read_json,
    readable_images,
    report,
    write_prepared,
)
from vqa.data.dataset import PreparedDataset
from vqa.errors import DatasetError
from vqa.metrics import normalize_answer

log = logging.getLogger(__name__)
QUESTION_TYPES = {
    "count": "count",
    "exist": "exist",
    "equal_integer": "compare numbers",
    "greater_than": "compare numbers",
    "less_than": "compare numbers",
}


def question_type(last_function: str) -> str | None:
    """CLEVR's question type from the last function of a program; None if unknown."""
    if last_function in QUESTION_TYPES:
        return QUESTION_TYPES[last_function]
    if last_function.startswith("query_"):
        return "query attribute"
    if last_function.startswith("equal_"):
        return "compare attribute"
    return None


def _step_to_function(step: dict) -> object:
    """json object_hook: a program step becomes its function name, so that a 700k-question
    file does not keep ten million small dicts in memory."""
    if "inputs" in step and ("function" in step or "type" in step):
        return sys.intern(str(step.get("function", step.get("type"))))
    return step


def load_split(root: Path, split: str, bad: BadRecords) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Questions and images of one split; bad records go to `bad`."""
    path = root / "questions" / f"CLEVR_{split}_questions.json"
    records = read_json(path, "questions", _step_to_function)
    image_dir = root / "images" / split
    if not image_dir.is_dir():
        raise DatasetError(
            f"{path}: the images of split '{split}' should be in {image_dir}, which does not exist."
        )
    rows, seen = [], set()
    for i, q in enumerate(progress(records, f"reading {split} questions")):
        if not isinstance(q, dict):
            bad(path, f"question #{i}", "not a JSON object")
            continue
        record = f"question_index={q.get('question_index', i)}"
        text, filename, index = (
            q.get("question"),
            q.get("image_filename"),
            q.get("question_index", i),
        )
        if not is_int(index):
            bad(path, record, "question_index is not an integer")
        elif index in seen:
            bad(path, record, "duplicate question_index")
        elif not isinstance(text, str) or not text.strip():
            bad(path, record, "empty question")
        elif not isinstance(filename, str) or not filename:
            bad(path, record, "no image_filename")
        elif escapes_root(filename):
            bad(path, record, f"image path {filename!r} escapes the image folder {image_dir}")
        else:
            kind = _question_type(q)
            if kind is None or ("answer" in q and not isinstance(q["answer"], (str, int))):
                bad(
                    path,
                    record,
                    "unknown program (its last function is not a CLEVR "
                    "question type) or malformed answer",
                )
                continue
            seen.add(index)
            raw = str(q["answer"]) if "answer" in q else None
            answer = normalize_answer(raw) if raw is not None else ""
            rows.append(
                {
                    "question_id": index,
                    "image_id": f"{split}/{filename}",
                    "split": split,
                    "question": text.strip(),
                    "answers": [raw] if raw is not None else [],
                    "answer": answer,
                    "question_type": kind,
                    "answer_type": answer_type(answer) if raw is not None else "",
                    "filename": filename,
                }
            )
    questions = pd.DataFrame(
        rows,
        columns=[
            "question_id",
            "image_id",
            "split",
            "question",
            "answers",
            "answer",
            "question_type",
            "answer_type",
            "filename",
        ],
    )
    images = questions.drop_duplicates("image_id")[["image_id", "filename"]].reset_index(drop=True)
    images["path"] = split + "/" + images["filename"]
    names = list(images["filename"])
    images = readable_images(
        images,
        [image_dir / f for f in names],
        lambda row, reason: bad(
            path, f"image_filename={names[row]!r}", f"{reason}: {image_dir / names[row]}"
        ),
        f"checking {split} images",
    )
    questions = questions[questions["image_id"].isin(images["image_id"])]
    if questions.empty and bad.skip:
        bad(path, f"split {split}", "every question of the split was left out")
    return questions.drop(columns="filename"), images.drop(columns="filename")


def _question_type(q: dict) -> str | None:
    """The record's own question_family, else from its program; None when the program
    is malformed or ends in a function that is not a CLEVR question type."""
    family = q.get("question_family")
    if isinstance(family, str) and family:
        return family
    program = q.get("program")
    if program is None:  # CLEVR's test split; CLEVR-Humans has answers but no programs
        return "other" if "answer" in q else ""
    if not isinstance(program, list) or not program or not isinstance(program[-1], str):
        return None
    return question_type(program[-1])


def find_splits(root: Path) -> list[str]:
    files = sorted((root / "questions").glob("CLEVR_*_questions.json"))
    if not files:
        raise DatasetError(
            f"No CLEVR questions found: expected {root}/questions/"
            "CLEVR_{split}_questions.json (the layout of CLEVR_v1.0.zip)."
        )
    return [f.name[len("CLEVR_") : -len("_questions.json")] for f in files]


def prepare(
    root: str | Path,
    out: str | Path,
    *,
    overwrite: bool = False,
    skip_bad: bool = False,
    copy_images: bool = False,
    keep_json: bool = False,
    max_answers: int | None = None,
    name: str = "clevr",
    source: str | None = None,
) -> PreparedDataset:
    """Write the CLEVR-format data under `root` to `out` and return the loaded dataset.

    Args:
        copy_images: copy the images into the dataset instead of pointing at root/images.
        keep_json: also copy the questions/ and scenes/ JSON into OUT/clevr/.
        max_answers: the answer vocabulary size recorded for training (None: all).
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"CLEVR root not found: {root}")
    check_output(out, overwrite)
    check_answers_size(max_answers)
    bad = BadRecords(skip_bad)
    parts = [load_split(root, split, bad) for split in find_splits(root)]
    questions = pd.concat([q for q, _ in parts], ignore_index=True)
    images = pd.concat([i for _, i in parts], ignore_index=True)

    def fill(tmp: Path) -> None:
        if copy_images:
            copy_from(root / "images", images["path"], tmp / "images")
        if keep_json:
            for folder in ("questions", "scenes"):
                if (root / folder).is_dir():
                    shutil.copytree(root / folder, tmp / "clevr" / folder)

    return write_prepared(
        out,
        name=name,
        source=source or f"CLEVR-format files in {root.resolve()}",
        questions=questions,
        images=images,
        image_root="images" if copy_images else (root / "images").resolve(),
        fill=fill,
        answer_vocabulary_size=max_answers,
        skipped=bad,
        overwrite=overwrite,
    )


def main(argv: list[str] | None = None) -> int:
    return command_line("python -m data_prep.clevr", __doc__, add_arguments, run, argv)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", required=True, help="the CLEVR_v1.0 directory")
    parser.add_argument("--out", required=True, help="directory to create")
    parser.add_argument(
        "--copy-images",
        action="store_true",
        help="copy the images into OUT instead of pointing at ROOT/images",
    )
    parser.add_argument("--answers", type=int, help="answer vocabulary size (default: all)")
    add_record_arguments(parser)


def run(args: argparse.Namespace) -> str:
    return report(
        prepare(
            args.root,
            args.out,
            overwrite=args.overwrite,
            skip_bad=args.skip_bad,
            copy_images=args.copy_images,
            max_answers=args.answers,
        )
    )


if __name__ == "__main__":
    sys.exit(main())
