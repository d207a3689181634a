"""What every source shares: writing the prepared dataset atomically, and the report."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import pandas as pd

from vqa.data.dataset import FORMAT_VERSION, IMAGE_COLUMNS, QUESTION_COLUMNS, PreparedDataset
from vqa.errors import DatasetError

log = logging.getLogger(__name__)


def write_prepared(out: str | Path, *, name: str, source: str, questions: pd.DataFrame,
                   images: pd.DataFrame, image_root: str | Path = "images",
                   fill: Callable[[Path], None] | None = None,
                   overwrite: bool = False) -> PreparedDataset:
    """Write a prepared dataset to `out`, all or nothing.

    Everything is written into a temporary sibling directory, validated by reading it
    back, and only then renamed to `out`; a crash leaves either the old dataset or the
    new one, never a half-written one.

    Args:
        questions, images: tables with the contract's columns.
        image_root: where image paths are relative to; a relative root is inside `out`.
        fill: called with the temporary directory to put files in it (e.g. images).
        overwrite: replace an existing prepared dataset at `out` instead of failing.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise DatasetError(f"Output directory already exists: {out}. "
                           "Choose another --out or pass --overwrite.")
    if out.exists() and (not out.is_dir() or (any(out.iterdir())
                                              and not (out / "meta.json").is_file())):
        raise DatasetError(f"Refusing to overwrite {out}: it is not a prepared dataset "
                           "(no meta.json). Choose another --out.")
    for table, columns, file in ((questions, QUESTION_COLUMNS, "questions.parquet"),
                                 (images, IMAGE_COLUMNS, "images.parquet")):
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
        counts = {split: {"questions": int(len(group)),
                          "images": int(group["image_id"].nunique())}
                  for split, group in questions.groupby("split", sort=True)}
        meta = {"name": name, "source": source, "format_version": FORMAT_VERSION,
                "image_root": str(image_root), "counts": counts}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
        try:
            PreparedDataset.load(tmp)  # the reader's validation is the contract
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
    return PreparedDataset.load(out)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def report(dataset: PreparedDataset) -> str:
    """Counts per split and how much of each split the training answers cover."""
    q = dataset.questions
    train_answers = set(q.loc[q["split"] == "train", "answer"])
    lines = [f"prepared {dataset.name} at {dataset.root}"]
    for split, counts in dataset.meta["counts"].items():
        rows = q[q["split"] == split]
        coverage = 100 * rows["answer"].isin(train_answers).mean()
        lines.append(f"  {split:<6} {counts['questions']:>7} questions  "
                     f"{counts['images']:>6} images  answers seen in train: {coverage:.1f}%")
    lines.append(f"  {len(train_answers)} distinct training answers")
    return "\n".join(lines)
