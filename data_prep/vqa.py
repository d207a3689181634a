"""Prepare VQA v1 or v2 (the official JSON files with COCO images).

    python -m data_prep.vqa --root DIR --out data/vqa-v2
    vqa prepare vqa --root DIR --out data/vqa-v2 [--answers 3000] [--skip-bad]

DIR is laid out as the official downloads unpack:

    v2_OpenEnded_mscoco_{split}_questions.json   v2_mscoco_{split}_annotations.json   (v2)
    OpenEnded_mscoco_{split}_questions.json      mscoco_{split}_annotations.json      (v1)
    {split}/ or images/{split}/                  COCO_{split}_000000xxxxxx.jpg or 000000xxxxxx.jpg

for split in train2014, val2014, test2015 and test-dev2015 (whose images are in the
test2015 folder). Whatever splits are present are prepared, under their own names;
test splits have no annotations and are kept unannotated. All ten human answers are
kept; `answer`, the label a model learns, is the normalised multiple_choice_answer, or
the human answer that scores higher by the default VQA evaluator. Images stay where they are:
image_root is DIR, so moving DIR means preparing again.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from data_prep.common import (
    BadRecords,
    add_record_arguments,
    check_answers_size,
    check_output,
    command_line,
    is_int,
    read_json,
    readable_images,
    report,
    write_prepared,
)
from vqa.data.dataset import ANSWER_TYPES, MAX_HUMAN_ANSWERS, PreparedDataset
from vqa.errors import DatasetError
from vqa.metrics import best_answer, single_form

log = logging.getLogger(__name__)
SPLITS = ("train2014", "val2014", "test2015", "test-dev2015")
FILES = {
    2: ("v2_OpenEnded_mscoco_{}_questions.json", "v2_mscoco_{}_annotations.json"),
    1: ("OpenEnded_mscoco_{}_questions.json", "mscoco_{}_annotations.json"),
}
IMAGE_NAME = re.compile(r"^(?:COCO_[A-Za-z0-9-]+_)?(\d+)\.(?:jpg|jpeg|png)$", re.IGNORECASE)
DEFAULT_ANSWERS = 3000


def detect_version(root: Path) -> int:
    found = {v for v, (q, _) in FILES.items() for s in SPLITS if (root / q.format(s)).is_file()}
    if not found:
        raise DatasetError(
            f"No VQA questions found in {root}: expected e.g. "
            f"{FILES[2][0].format('train2014')} (v2) or {FILES[1][0].format('train2014')} (v1)."
        )
    if len(found) > 1:
        raise DatasetError(f"{root} holds both VQA v1 and v2 files; pass --version 1 or 2.")
    return found.pop()


def image_folder(root: Path, split: str) -> tuple[Path, str]:
    """The folder of a split's images, and its path relative to root."""
    folder = "test2015" if split == "test-dev2015" else split
    for rel in (folder, f"images/{folder}"):
        if (root / rel).is_dir():
            return root / rel, rel
    raise DatasetError(
        f"No images for split {split}: expected {root / folder}/ or "
        f"{root / 'images' / folder}/ (COCO's {folder}.zip unpacked). Unpack "
        "them there, or leave the split out with --splits."
    )


def index_images(folder: Path) -> dict[int, str]:
    """COCO image id -> file name, from one listing of the folder (both namings)."""
    out = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            match = IMAGE_NAME.match(entry.name)
            if match:
                out[int(match.group(1))] = entry.name
    return out


def read_questions(path: Path, bad: BadRecords) -> tuple[pd.DataFrame, set]:
    """The usable questions, and every question_id the file holds (usable or not)."""
    rows, all_ids = [], set()
    for i, q in enumerate(read_json(path, "questions")):
        qid = q.get("question_id") if isinstance(q, dict) else None
        if is_int(qid):
            all_ids.add(qid)
        record = f"question_id={qid}" if qid is not None else f"question #{i}"
        if not (is_int(qid) and is_int(q.get("image_id"))):
            bad(path, record, "question_id and image_id must be integers")
        elif not isinstance(q.get("question"), str) or not q["question"].strip():
            bad(path, record, "empty question")
        else:
            rows.append((qid, q["image_id"], q["question"].strip()))
    df = pd.DataFrame(rows, columns=["question_id", "coco_id", "question"])
    dup = df["question_id"].duplicated(keep=False)
    for qid in df.loc[dup, "question_id"].unique():
        bad(path, f"question_id={qid}", "duplicate question_id")
    return df[~dup].reset_index(drop=True), all_ids


class _Annotations:
    """json object_hook that keeps only what we need of each annotation, as a tuple.

    An answer dict becomes its (interned) answer string and an annotation a tuple, so
    VQA v2 train's 4.4 M answers do not live as 4.4 M dicts (several GB).
    """

    def __init__(self) -> None:
        self.strings: dict[str, str] = {}

    def __call__(self, obj: dict) -> object:
        if "answer_id" in obj or ("answer" in obj and "answer_confidence" in obj):
            answer = obj.get("answer")
            return self.strings.setdefault(answer, answer) if isinstance(answer, str) else None
        if "question_id" in obj and "answers" in obj:
            answers = obj["answers"]
            return (
                obj["question_id"],
                obj.get("image_id"),
                self._intern(obj.get("question_type")),
                self._intern(obj.get("answer_type")),
                obj.get("multiple_choice_answer"),
                tuple(answers) if isinstance(answers, list) else None,
            )
        return obj

    def _intern(self, value: object) -> object:
        return self.strings.setdefault(value, value) if isinstance(value, str) else value


def read_annotations(path: Path, bad: BadRecords) -> tuple[pd.DataFrame, set]:
    """The usable annotations, and the ids of questions annotated more than once."""
    rows = []
    for i, a in enumerate(read_json(path, "annotations", _Annotations())):
        if not isinstance(a, tuple):
            bad(path, f"annotation #{i}", "not an annotation (needs question_id and answers)")
            continue
        qid, coco_id, qtype, atype, mc, answers = a
        record = f"question_id={qid}"
        if not (is_int(qid) and is_int(coco_id)):
            bad(path, record, "question_id and image_id must be integers")
        elif (
            answers is None
            or not 1 <= len(answers) <= MAX_HUMAN_ANSWERS
            or not all(isinstance(x, str) for x in answers)
        ):
            bad(
                path,
                record,
                f"answers must be 1 to {MAX_HUMAN_ANSWERS} {{'answer': str, ...}} objects",
            )
        elif atype not in ANSWER_TYPES or not isinstance(qtype, str) or not isinstance(mc, str):
            bad(
                path,
                record,
                "question_type, answer_type (yes/no | number | other) and "
                "multiple_choice_answer must be strings",
            )
        else:
            rows.append(a)
    df = pd.DataFrame(
        rows,
        columns=[
            "question_id",
            "coco_id",
            "question_type",
            "answer_type",
            "multiple_choice_answer",
            "answers",
        ],
    )
    dup = df["question_id"].duplicated(keep=False)
    for qid in df.loc[dup, "question_id"].unique():
        bad(path, f"question_id={qid}", "more than one annotation for the question")
    return df[~dup], set(df.loc[dup, "question_id"])


def load_split(root: Path, version: int, split: str, bad: BadRecords) -> pd.DataFrame:
    """One split's questions (with answers when it is annotated) and image file names."""
    q_path = root / FILES[version][0].format(split)
    a_path = root / FILES[version][1].format(split)
    log.info("reading %s", q_path)
    questions, ids_in_file = read_questions(q_path, bad)
    if a_path.is_file():
        log.info("reading %s", a_path)
        annotations, ambiguous = read_annotations(a_path, bad)
        unknown = ~annotations["question_id"].isin(ids_in_file)
        for qid in annotations.loc[unknown, "question_id"]:
            bad(a_path, f"question_id={qid}", f"annotation for a question not in {q_path.name}")
        # In the annotations file's order: the official evaluator sums in that order.
        annotations = annotations.assign(annotation_order=range(len(annotations)))
        questions = questions.merge(
            annotations[~unknown],
            on="question_id",
            how="left",
            suffixes=("", "_annotated"),
            validate="one_to_one",
        )
        questions = questions.sort_values(
            "annotation_order", kind="stable", na_position="last"
        ).drop(columns="annotation_order")
        missing = questions["answers"].isna()
        for qid in questions.loc[missing, "question_id"]:
            if qid not in ambiguous:  # already reported, with its reason
                bad(q_path, f"question_id={qid}", f"no annotation in {a_path.name}")
        mismatch = ~missing & (questions["coco_id_annotated"] != questions["coco_id"])
        for qid in questions.loc[mismatch, "question_id"]:
            bad(a_path, f"question_id={qid}", f"image_id differs from {q_path.name}")
        questions = questions[~missing & ~mismatch].drop(columns="coco_id_annotated")
        questions["answers"] = questions["answers"].map(list)
        # A majority answer such as "a" normalises to nothing: keep it as typed.
        majority = _normalize_all(questions.pop("multiple_choice_answer"))
        # The label to learn is the majority answer unless another scores higher by the
        # default evaluator (it matches ten identical "two" with "two" alone, not "2").
        answers = pd.Series(
            [
                best_answer(humans, prefer=m) or m
                for humans, m in zip(questions["answers"], majority)
            ],
            index=majority.index,
        )
        empty = answers == ""
        for qid in questions.loc[empty, "question_id"]:
            bad(a_path, f"question_id={qid}", "empty multiple_choice_answer")
        questions = questions[~empty]
        questions["answer"] = answers[~empty].to_numpy()
    else:
        if not split.startswith("test"):
            log.warning(
                "%s has no annotations file (%s): its questions are kept unanswered",
                split,
                a_path.name,
            )
        questions["answers"] = [[] for _ in range(len(questions))]
        questions["answer"] = questions["question_type"] = questions["answer_type"] = ""
    folder, rel = image_folder(root, split)
    files = index_images(folder)
    found = questions["coco_id"].isin(files.keys())
    for qid, coco_id in questions.loc[~found, ["question_id", "coco_id"]].itertuples(index=False):
        bad(q_path, f"question_id={qid}", f"image {coco_id} not found in {folder}")
    questions = questions[found].copy()
    questions["path"] = [f"{rel}/{files[i]}" for i in questions["coco_id"]]
    # Keyed by folder too: an id is one image only within one folder.
    questions["image_id"] = [f"{rel.rsplit('/', 1)[-1]}/{i}" for i in questions["coco_id"]]
    questions["split"] = split
    if questions.empty and bad.skip:
        bad(q_path, f"split {split}", "every question of the split was left out")
    return questions.reset_index(drop=True)


def _normalize_all(answers: pd.Series) -> pd.Series:
    """Official normalisation, once per distinct answer; an answer it would empty (an
    article such as "a", or punctuation) is kept stripped and lower-cased instead."""
    cache = {a: single_form(a) for a in answers.unique()}
    return answers.map(cache)


def prepare(
    root: str | Path,
    out: str | Path,
    *,
    version: int | None = None,
    max_answers: int | None = DEFAULT_ANSWERS,
    splits: Sequence[str] | None = None,
    skip_bad: bool = False,
    overwrite: bool = False,
) -> PreparedDataset:
    """Write the VQA splits found under `root` (or only `splits`) to `out`; return the
    loaded dataset."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"VQA root not found: {root}")
    check_output(out, overwrite)
    check_answers_size(max_answers)
    version = version or detect_version(root)
    if version not in FILES:
        raise DatasetError(f"--version must be 1 or 2. Received: {version}")
    present = [s for s in SPLITS if (root / FILES[version][0].format(s)).is_file()]
    if splits:
        absent = [s for s in splits if s not in present]
        if absent:
            raise DatasetError(
                f"No VQA v{version} questions for split(s) {absent} in {root}; found {present}."
            )
        present = [s for s in present if s in splits]
    splits = present
    if not splits:
        raise DatasetError(f"No VQA v{version} questions in {root}.")
    bad = BadRecords(skip_bad)
    questions = pd.concat([load_split(root, version, s, bad) for s in splits], ignore_index=True)
    # One image row per image (test-dev2015 shares test2015's images).
    images = questions.drop_duplicates("image_id")[["image_id", "path"]].reset_index(drop=True)
    paths = list(images["path"])
    images = readable_images(
        images,
        [root / p for p in paths],
        lambda row, reason: bad(root / paths[row], f"image {paths[row]}", reason),
    )
    questions = questions[questions["image_id"].isin(images["image_id"])]
    return write_prepared(
        out,
        name=f"vqa-v{version}",
        source=f"VQA v{version} official JSON in {root.resolve()}",
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
        image_root=root.resolve(),
        answer_vocabulary_size=max_answers,
        skipped=bad,
        overwrite=overwrite,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", required=True, help="folder with the official VQA files")
    parser.add_argument("--out", required=True, help="directory to create")
    parser.add_argument(
        "--version",
        type=int,
        choices=(1, 2),
        help="VQA version (default: detected from the file names)",
    )
    parser.add_argument(
        "--answers",
        type=int,
        default=DEFAULT_ANSWERS,
        help=f"answer vocabulary: the top K training answers (default {DEFAULT_ANSWERS})",
    )
    parser.add_argument(
        "--splits",
        type=lambda v: [s for s in v.split(",") if s],
        help="comma-separated splits to prepare, e.g. train2014,val2014 "
        "(default: every split whose questions file is there)",
    )
    add_record_arguments(parser)


def run(args: argparse.Namespace) -> str:
    return report(
        prepare(
            args.root,
            args.out,
            version=args.version,
            max_answers=args.answers,
            splits=args.splits,
            skip_bad=args.skip_bad,
            overwrite=args.overwrite,
        )
    )


def main(argv: list[str] | None = None) -> int:
    return command_line("python -m data_prep.vqa", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
