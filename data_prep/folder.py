"""Prepare your own images and questions: a folder in Hugging Face's `imagefolder` layout.

    python -m data_prep.folder --root DIR --out data/mine
    vqa prepare folder --root DIR --out data/mine [--skip-bad] [--copy-images] [--answers K]

Either split folders, each with its metadata file (any subset of splits, any names):

    DIR/train/metadata.csv        DIR/train/photos/cat 1.jpg ...
    DIR/validation/metadata.jsonl
    DIR/test/metadata.csv

or one metadata file at DIR/ with a `split` column (without one, every row is train).
Columns: `file_name` (the image, relative to the metadata file's folder, any nesting),
`question`, and `answer` (one string) or `answers` (a list of human answers, up to ten
as in VQA; in a CSV a JSON list such as ["red", "red", "dark red"]); optionally
`question_id`, `question_type`, `answer_type`, `image_id`. A question without an answer
is kept unannotated (a split to predict). Without `question_type` a question's type is
the longest of the official VQA question-type prefixes it starts with ("what color is
the", "how many", ... or "none of the above"); without `answer_type` it is VQA's
(yes/no, number, other) of the answer. Images stay where they are (image_root is DIR)
unless --copy-images copies them into the dataset.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import re
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
    readable_images,
    report,
    write_prepared,
)
from data_prep.question_types import question_type
from vqa.data.dataset import ANSWER_TYPES, MAX_HUMAN_ANSWERS, PreparedDataset
from vqa.errors import DatasetError
from vqa.metrics import best_answer, single_form

log = logging.getLogger(__name__)
METADATA = ("metadata.csv", "metadata.jsonl")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def find_metadata(root: Path) -> list[tuple[str | None, Path]]:
    """(split, metadata file) pairs: one at the root (split None: from its column), or one
    per split folder."""

    def one(folder: Path) -> Path | None:
        found = [folder / name for name in METADATA if (folder / name).is_file()]
        if len(found) > 1:
            raise DatasetError(f"{folder} holds both metadata.csv and metadata.jsonl; keep one.")
        return found[0] if found else None

    at_root = one(root)
    folders = [(d, one(d)) for d in sorted(root.iterdir()) if d.is_dir()]
    per_split = [(d.name, path) for d, path in folders if path is not None]
    if per_split:  # split folders: one without its metadata file would be dropped unseen
        for folder, path in folders:
            if path is None and _looks_like_a_split(folder):
                raise DatasetError(
                    f"{folder} has no metadata.csv or metadata.jsonl, so its images would be "
                    f"left out: add one, or move the folder out of {root}."
                )
    if at_root and per_split:
        raise DatasetError(
            f"{at_root} and {per_split[0][1]} are both metadata files: use one "
            "at the root (with a split column) or one per split folder."
        )
    if at_root:
        return [(None, at_root)]
    if not per_split:
        raise DatasetError(
            f"No metadata file in {root}: put a metadata.csv or metadata.jsonl "
            "in it (with a split column) or in each split folder "
            "(train/, validation/, test/)."
        )
    return per_split


def _looks_like_a_split(folder: Path) -> bool:
    """A folder named as a split is (train*, val*, test*), or one with images in it."""
    if folder.name.lower().startswith(("train", "val", "test")):
        return True
    return any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir() if p.is_file())


class _NumberedLines:
    """A file's lines for csv, noting where each record starts: the first line after the
    last record that is not blank (csv skips blank lines; a quoted value spans several)."""

    def __init__(self, f):
        self.f, self.line, self.record_start, self.done = f, 0, 1, True

    def __iter__(self):
        return self

    def __next__(self) -> str:
        text = next(self.f)
        self.line += 1
        if self.done and text.strip("\r\n"):
            self.record_start, self.done = self.line, False
        return text

    def record_done(self) -> None:
        self.done = True


def read_rows(path: Path) -> list[tuple[int, dict]]:
    """(line number, row) for every record of a metadata file; a malformed file is one
    error naming the line."""
    rows = []
    try:
        if path.suffix == ".jsonl":
            with open(path, encoding="utf-8-sig") as f:
                for line_no, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise DatasetError(
                            f"{path}, line {line_no}: not valid JSON ({exc.msg})."
                        ) from None
                    if not isinstance(row, dict):
                        raise DatasetError(
                            f"{path}, line {line_no}: expected a JSON object "
                            f"per line. Received: {line.strip()[:60]}"
                        )
                    rows.append((line_no, row))
            return rows
        with open(path, encoding="utf-8-sig", newline="") as f:
            lines = _NumberedLines(f)
            reader = csv.DictReader(lines, strict=True)
            if reader.fieldnames is not None:  # reads the header: records start after it
                lines.record_done()
            for row in reader:
                if None in row or None in row.values():
                    raise DatasetError(
                        f"{path}, line {lines.record_start}: {len(reader.fieldnames)} "
                        "columns in the header but another number in this row (quote "
                        "a value that holds a comma)."
                    )
                rows.append((lines.record_start, row))
                lines.record_done()
    except csv.Error as exc:
        raise DatasetError(f"{path}, line {lines.record_start}: malformed CSV ({exc}).") from None
    except UnicodeDecodeError as exc:
        raise DatasetError(
            f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})."
        ) from None
    return rows


def _answers(row: dict, is_csv: bool) -> list[str] | str:
    """The human answers of a row, or the reason they cannot be read."""
    if row.get("answers") not in (None, ""):
        answers = row["answers"]
        if is_csv and isinstance(answers, str):
            try:
                answers = json.loads(answers)
            except json.JSONDecodeError:
                return 'answers must be a JSON list of strings, e.g. ["red", "dark red"]'
        if (
            not isinstance(answers, list)
            or not 1 <= len(answers) <= MAX_HUMAN_ANSWERS
            or not all(isinstance(a, str) and a.strip() for a in answers)
        ):
            return f"answers must be a list of 1 to {MAX_HUMAN_ANSWERS} non-empty strings"
        return answers
    answer = row.get("answer")
    if answer in (None, ""):
        return []
    if not isinstance(answer, str):
        return "answer must be a string (a list goes in the answers column)"
    return [answer]


def label(answers: list[str]) -> str:
    """The answer a model learns: the normalised majority, or one that scores higher."""
    normalised = [single_form(a) for a in answers]
    majority = max(sorted(set(normalised)), key=normalised.count)
    return best_answer(answers, prefer=majority) or majority


def load_rows(root: Path, bad: BadRecords) -> pd.DataFrame:
    """Every usable question row of every metadata file, with its image's path."""
    records, seen_ids = [], {}
    next_id = 0
    for split, path in find_metadata(root):
        folder, is_csv = path.parent, path.suffix == ".csv"
        for line, row in read_rows(path):
            record = f"line {line}"
            name, question = row.get("file_name"), row.get("question")
            row_split = split if split is not None else (row.get("split") or "train")
            answers = _answers(row, is_csv)
            qid = row.get("question_id")
            if qid in (None, ""):
                qid, next_id = next_id, next_id + 1
            elif isinstance(qid, str) and re.fullmatch(r"-?\d+", qid.strip()):
                qid = int(qid)
            atype = row.get("answer_type") or ""
            qtype = row.get("question_type") or ""
            if not isinstance(name, str) or not name.strip():
                bad(path, record, "no file_name")
            elif escapes_root(name):
                bad(path, record, f"file_name {name!r} is absolute or escapes {folder}")
            elif not isinstance(question, str) or not question.strip():
                bad(path, record, "empty question")
            elif not isinstance(row_split, str) or not row_split.strip():
                bad(path, record, "empty split")
            elif isinstance(answers, str):
                bad(path, record, answers)
            elif not isinstance(qid, int) or isinstance(qid, bool):
                bad(path, record, f"question_id must be an integer. Received: {qid!r}")
            elif (row_split, qid) in seen_ids:
                bad(
                    path,
                    record,
                    f"duplicate question_id {qid} (first at {seen_ids[(row_split, qid)]})",
                )
            elif not isinstance(qtype, str):
                bad(path, record, f"question_type must be a string. Received: {qtype!r}")
            elif atype and (atype not in ANSWER_TYPES or not answers):
                bad(
                    path,
                    record,
                    f"answer_type must be one of {list(ANSWER_TYPES)}, for a "
                    f"question with answers. Received: {atype!r}",
                )
            else:
                seen_ids[(row_split, qid)] = f"{path.name}, {record}"
                rel = (folder / name.strip()).relative_to(root).as_posix()
                answer = label(answers) if answers else ""
                records.append(
                    {
                        "question_id": qid,
                        "split": row_split.strip(),
                        "question": question.strip(),
                        "answers": answers,
                        "answer": answer,
                        "question_type": qtype or question_type(question),
                        "answer_type": atype or (answer_type(answer) if answer else ""),
                        "image_id": str(row.get("image_id") or rel),
                        "path": rel,
                        "source_file": str(path),
                        "source_record": record,
                    }
                )
    if not records:
        raise DatasetError(f"No usable question in the metadata files of {root}.")
    return pd.DataFrame(records)


def prepare(
    root: str | Path,
    out: str | Path,
    *,
    max_answers: int | None = 3000,
    skip_bad: bool = False,
    copy_images: bool = False,
    overwrite: bool = False,
) -> PreparedDataset:
    """Write the folder's splits to `out`; return the loaded dataset."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"Folder not found: {root}")
    check_output(out, overwrite)
    check_answers_size(max_answers)
    bad = BadRecords(skip_bad)
    questions = load_rows(root, bad)
    # One image_id is one file.
    files = questions.groupby("image_id")["path"].nunique()
    for image_id in files[files > 1].index:
        rows = questions[questions["image_id"] == image_id]
        first, other = rows["path"].unique()[:2]
        reason = f"image_id {image_id!r} names two files ({first!r} and {other!r})"
        clash = rows["path"] != first  # reported first; then the rest, lost with them
        for _, q in pd.concat([rows[clash], rows[~clash]]).iterrows():
            bad(q["source_file"], q["source_record"], reason)
        questions = questions[questions["image_id"] != image_id]
    images = questions.drop_duplicates("image_id")[
        ["image_id", "path", "source_file", "source_record"]
    ].reset_index(drop=True)

    def on_bad(row: int, reason: str) -> None:  # every question of the image is lost
        for _, q in questions[questions["image_id"] == images["image_id"][row]].iterrows():
            bad(q["source_file"], f"{q['source_record']}, file_name {q['path']!r}", reason)

    images = readable_images(images, [root / p for p in images["path"]], on_bad)
    questions = questions[questions["image_id"].isin(images["image_id"])]
    if questions.empty:
        raise DatasetError(f"No question of {root} has a readable image.")

    def fill(tmp: Path) -> None:
        copy_from(root, images["path"], tmp / "images")

    return write_prepared(
        out,
        name=root.resolve().name,
        source=f"image folder {root.resolve()}",
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
        image_root="images" if copy_images else root.resolve(),
        fill=fill if copy_images else None,
        answer_vocabulary_size=max_answers,
        skipped=bad,
        overwrite=overwrite,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--root",
        required=True,
        help="the folder: split folders with metadata files, or one "
        "metadata file with a split column",
    )
    parser.add_argument("--out", required=True, help="directory to create")
    parser.add_argument(
        "--answers",
        type=int,
        default=3000,
        help="answer vocabulary: the top K training answers (default 3000)",
    )
    parser.add_argument(
        "--copy-images",
        action="store_true",
        help="copy the images into the dataset (default: point at --root)",
    )
    add_record_arguments(parser)


def run(args: argparse.Namespace) -> str:
    return report(
        prepare(
            args.root,
            args.out,
            max_answers=args.answers,
            skip_bad=args.skip_bad,
            copy_images=args.copy_images,
            overwrite=args.overwrite,
        )
    )


def main(argv: list[str] | None = None) -> int:
    return command_line("python -m data_prep.folder", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
