"""What every source shares: writing the prepared dataset atomically, bad-record
handling (`--skip-bad`), progress bars, and the report."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TypeVar

import pandas as pd
from PIL import Image
from tqdm import tqdm

from vqa.data.dataset import (
    CAPTION_COLUMNS,
    FORMAT_VERSION,
    IMAGE_COLUMNS,
    QUESTION_COLUMNS,
    PreparedDataset,
    train_split_of,
)
from vqa.data.text import Vocabulary
from vqa.errors import DatasetError, VQAError

log = logging.getLogger(__name__)
T = TypeVar("T")
SKIPPED = "skipped.csv"  # the records --skip-bad left out, and why


class BadRecords:
    """Where each source reports an input record it cannot use.

    Without `skip` the first one stops the preparation with an error naming the file
    and the record; with it, the records are collected and written to skipped.csv.
    """

    def __init__(self, skip: bool = False) -> None:
        self.skip = skip
        self.rows: list[dict] = []

    def __call__(self, file: str | Path, record: str, reason: str) -> None:
        if not self.skip:
            raise DatasetError(
                f"{file}, {record}: {reason}. Fix the input, or pass "
                "--skip-bad to leave such records out."
            )
        self.rows.append({"file": str(file), "record": record, "reason": reason})

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=["file", "record", "reason"])


def progress(items: Iterable[T], desc: str, total: int | None = None) -> Iterator[T]:
    """A progress bar on a terminal, nothing in logs and tests."""
    return iter(
        tqdm(items, desc=desc, total=total, unit="", disable=None, leave=False, dynamic_ncols=True)
    )


def read_json(path: Path, key: str, object_hook: Callable | None = None) -> list:
    """The list under `key` of a JSON file, or one clear error."""
    return read_json_lists(path, (key,), object_hook)[0]


def read_json_lists(
    path: Path, keys: Sequence[str], object_hook: Callable | None = None
) -> list[list]:
    """The lists under `keys` of one JSON object (the file parsed once)."""
    try:
        with open(path, "rb") as f:
            data = json.load(f, object_hook=object_hook)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path} is not valid JSON: {exc}") from None
    for key in keys:
        if not isinstance(data, dict) or not isinstance(data.get(key), list):
            raise DatasetError(f"{path}: expected a JSON object with a '{key}' list.")
    return [data[key] for key in keys]


def is_int(value: object) -> bool:
    """An integer id from JSON (not a bool, which Python counts as one)."""
    return isinstance(value, int) and not isinstance(value, bool)


def readable_images(
    images: pd.DataFrame,
    paths: Sequence[Path],
    on_bad: Callable[[int, str], None],
    desc: str = "checking images",
) -> pd.DataFrame:
    """The rows of `images` whose file (`paths`, row by row) decodes, with their width
    and height added; `on_bad(row, reason)` is told of every other one.

    Every image is decoded once, so that an unreadable one is found now, not in
    training; JPEGs at 1/8 scale (enough to reach the end of the data, 10x faster).
    """

    def size(path: Path) -> tuple[int, int] | str:
        try:
            with Image.open(path) as img:
                size = img.size
                img.draft("RGB", (max(1, size[0] // 8), max(1, size[1] // 8)))
                img.load()
            return size
        except FileNotFoundError:
            return "image file not found"
        except Exception as exc:  # decoders raise many types; any of them means unreadable
            return f"unreadable image ({type(exc).__name__}: {exc})"

    # Pillow releases the GIL while decoding, so threads use every core.
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        sizes = list(progress(pool.map(size, paths), desc, total=len(paths)))
    ok = [isinstance(s, tuple) for s in sizes]
    for row, (readable, reason) in enumerate(zip(ok, sizes)):
        if not readable:
            on_bad(row, reason)
    kept = images[pd.Series(ok, index=images.index, dtype=bool)].copy()
    kept["width"] = [s[0] for s in sizes if isinstance(s, tuple)]
    kept["height"] = [s[1] for s in sizes if isinstance(s, tuple)]
    return kept.reset_index(drop=True)


def escapes_root(relative: str) -> bool:
    """Whether a path from an input file is absolute or climbs out of its root (..)."""
    for pure in (PurePosixPath(relative), PureWindowsPath(relative)):
        if pure.is_absolute() or pure.drive or ".." in pure.parts:
            return True
    return False


def answer_type(answer: str) -> str:
    """yes/no, number or other, for sources that do not say."""
    if answer in ("yes", "no"):
        return "yes/no"
    return "number" if answer.isdigit() else "other"


def check_answers_size(k: int | None) -> None:
    if k is not None and k < 1:
        raise DatasetError(f"The answer vocabulary size must be at least 1. Received: {k}")


def empty_questions() -> pd.DataFrame:
    """A questions table with no rows (a captions-only dataset), typed as the contract."""
    return pd.DataFrame(
        {c: pd.Series(dtype="int64" if c == "question_id" else object) for c in QUESTION_COLUMNS}
    )


def write_prepared(
    out: str | Path,
    *,
    name: str,
    source: str,
    questions: pd.DataFrame | None = None,
    images: pd.DataFrame,
    captions: pd.DataFrame | None = None,
    image_root: str | Path = "images",
    fill: Callable[[Path], None] | None = None,
    answer_vocabulary_size: int | None = None,
    skipped: BadRecords | None = None,
    overwrite: bool = False,
) -> PreparedDataset:
    """Write a prepared dataset to `out`, all or nothing.

    Everything is written into a temporary sibling directory, validated by reading it
    back, and only then renamed to `out`; a crash leaves either the old dataset or the
    new one, never a half-written one.

    Args:
        questions, images: tables with the contract's columns; questions None: none (a
            captions-only source, which must give `captions`).
        captions: caption_id, image_id, split, caption; None: no captions.parquet.
        image_root: where image paths are relative to; a relative root is inside `out`.
        fill: called with the temporary directory to put files in it (e.g. images).
        answer_vocabulary_size: the K of the top-K training answers (None: all).
        skipped: the bad records left out, written to skipped.csv when there are any.
        overwrite: replace an existing prepared dataset at `out` instead of failing.
    """
    out = Path(out)
    check_output(out, overwrite)
    if questions is None:
        questions = empty_questions()
    for table, columns, file in (
        (questions, QUESTION_COLUMNS, "questions.parquet"),
        (images, IMAGE_COLUMNS, "images.parquet"),
        (captions, CAPTION_COLUMNS, "captions.parquet"),
    ):
        if table is None:
            continue
        missing = [c for c in columns if c not in table.columns]
        if missing:
            raise DatasetError(f"{out / file}: missing column(s) {missing}.")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    old = tmp.with_name(tmp.name + ".old")
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it private; a dataset is not
        if fill is not None:
            fill(tmp)
        questions.to_parquet(tmp / "questions.parquet", index=False)
        images.to_parquet(tmp / "images.parquet", index=False)
        counts = {
            split: {"questions": int(len(group)), "images": int(group["image_id"].nunique())}
            for split, group in questions.groupby("split", sort=True)
        }
        meta = {
            "name": name,
            "source": source,
            "format_version": FORMAT_VERSION,
            "image_root": str(image_root),
            "counts": counts,
            # What training will keep, not what was asked for: 9 answers, not 3,000.
            "answer_vocabulary_size": _kept_answers(questions, answer_vocabulary_size),
        }
        if captions is not None:
            captions.to_parquet(tmp / "captions.parquet", index=False)
            meta["caption_counts"] = {
                split: {"captions": int(len(group)), "images": int(group["image_id"].nunique())}
                for split, group in captions.groupby("split", sort=True)
            }
        if skipped is not None and skipped.rows:
            skipped.table().to_csv(tmp / SKIPPED, index=False)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
        try:
            dataset = PreparedDataset.load(tmp)  # the reader's validation is the contract
        except DatasetError as exc:  # name the files where they were meant to be
            raise DatasetError(str(exc).replace(str(tmp), str(out))) from None
        if out.exists():
            os.replace(out, old)  # set the old one aside; removed once the new one is in
        os.replace(tmp, out)
    except BaseException:
        if old.exists() and not out.exists():
            os.replace(old, out)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return dataclasses.replace(dataset, root=out)


def check_output(out: str | Path, overwrite: bool) -> None:
    """Fail early, before minutes of reading, if `out` cannot be written."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise DatasetError(
            f"Output directory already exists: {out}. Choose another --out or pass --overwrite."
        )
    if out.exists() and (
        not out.is_dir() or (any(out.iterdir()) and not (out / "meta.json").is_file())
    ):
        raise DatasetError(
            f"Refusing to overwrite {out}: it is not a prepared dataset "
            "(no meta.json). Choose another --out."
        )


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _kept_answers(questions: pd.DataFrame, k: int | None) -> int | None:
    """min(k, the training split's distinct answers); k (None: all) where there is no
    training split to count."""
    train = train_split_of(sorted(questions["split"].unique()))
    if k is None or train is None:
        return k
    answers = questions.loc[(questions["split"] == train) & (questions["answer"] != ""), "answer"]
    return max(1, min(k, answers.nunique()))


def report(dataset: PreparedDataset, examples: int = 5) -> str:
    """Counts per split (questions, captions), answer-vocabulary coverage, and the records
    left out."""
    q = dataset.questions
    train = dataset.train_split
    k = dataset.answer_vocabulary_size
    # The ranking training uses (most frequent first, ties alphabetical), over the whole
    # training split.
    answered = q[(q["split"] == train) & (q["answer"] != "")]
    vocab = set(Vocabulary.for_answers(answered["answer"], k).tokens) if train else set()
    lines = [f"prepared {dataset.name} at {dataset.root}"]
    for split, counts in dataset.meta["counts"].items():
        rows = q[q["split"] == split]
        answered = rows[rows["answer"] != ""]
        line = f"  {split:<14} {counts['questions']:>8} questions  {counts['images']:>7} images  "
        if answered.empty:
            line += "no answers (unannotated)"
        elif train:
            line += f"answer in vocabulary: {100 * answered['answer'].isin(vocab).mean():.1f}%"
        lines.append(line)
    if train:
        lines.append(
            f"  answer vocabulary: {len(vocab)} answers "
            f"({'top ' + str(k) if k else 'all'} of the {train} split)"
        )
    for split, counts in dataset.meta.get("caption_counts", {}).items():
        per_image = counts["captions"] / max(1, counts["images"])
        lines.append(
            f"  {split:<14} {counts['captions']:>8} captions   "
            f"{counts['images']:>7} images  ({per_image:.1f} captions an image)"
        )
    skipped_file = dataset.root / SKIPPED
    if skipped_file.is_file():
        skipped = pd.read_csv(skipped_file)
        lines.append(f"  skipped {len(skipped)} bad record(s), listed in {skipped_file}:")
        for reason, n in skipped["reason"].value_counts().items():
            lines.append(f"    {n:>6} x {reason}")
        lines += [f"    e.g. {r.file}, {r.record}" for r in skipped.head(examples).itertuples()]
    return "\n".join(lines)


def add_record_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of the sources that read files: --skip-bad and --overwrite."""
    parser.add_argument(
        "--skip-bad",
        action="store_true",
        help="leave bad records out (listed in OUT/skipped.csv) instead of stopping at the first",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")


def copy_from(source: Path, paths: Iterable[str], target: Path) -> None:
    """Copy the images at `paths` (relative to `source`) to the same paths under `target`
    (--copy-images: a dataset that no longer needs the download)."""
    paths = list(paths)
    for rel in progress(paths, "copying images", total=len(paths)):
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / rel, target / rel)


def add_generator_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of the generated sources (sort-of-clevr, scenes)."""
    parser.add_argument("--out", required=True, help="directory to create")
    parser.add_argument(
        "--images",
        type=int,
        default=10000,
        help="how many images to generate (default 10000; last 10%% are test)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")


def command_line(
    prog: str,
    doc: str | None,
    add_arguments: Callable,
    run: Callable,
    argv: list[str] | None = None,
) -> int:
    """`python -m data_prep.SOURCE`: the same arguments as `vqa prepare SOURCE`."""
    parser = argparse.ArgumentParser(
        prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        print(run(args))
    except VQAError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
