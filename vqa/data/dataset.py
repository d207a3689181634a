"""The prepared dataset: the contract between data_prep and vqa.

```
<dataset>/
  questions.parquet  question_id, image_id, split, question, answers, answer,
                     question_type, answer_type (more columns may follow)
  images.parquet     image_id, path (relative to image_root), width, height
  captions.parquet   (optional: captioning sources) caption_id, image_id, split, caption
  meta.json          name, source, format_version, image_root, counts, and optionally
                     answer_vocabulary_size (the K of the top-K answers to train on)
                     and caption_counts (per split: captions, images)
```

A captions-only dataset (COCO captions) has a questions.parquet with no rows; every
other dataset has at least one question. caption_id is unique in the file.

question_id is unique within a split (VQA's test-dev2015 is a subset of test2015,
with the same ids). A question of an unannotated split (VQA's test splits) has no
answers: `answers` is empty and `answer`, `answer_type` are "".

`PreparedDataset.load` validates all of it and fails with an error naming the
file, the row and the column.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from vqa.data.images import load_image, native_image_size
from vqa.errors import DatasetError, ImageError

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
QUESTION_COLUMNS = (
    "question_id",
    "image_id",
    "split",
    "question",
    "answers",
    "answer",
    "question_type",
    "answer_type",
)
IMAGE_COLUMNS = ("image_id", "path", "width", "height")
CAPTION_COLUMNS = ("caption_id", "image_id", "split", "caption")
ANSWER_TYPES = ("yes/no", "number", "other")
MAX_HUMAN_ANSWERS = 10


def train_split_of(splits: Sequence[str]) -> str | None:
    """ "train" if it is among `splits`, else the one split named train* (train2014);
    None where there is none, or more than one."""
    if "train" in splits:
        return "train"
    named = [s for s in splits if s.startswith("train")]
    return named[0] if len(named) == 1 else None


@dataclass
class PreparedDataset:
    root: Path
    meta: dict
    questions: pd.DataFrame
    images: pd.DataFrame  # indexed by image_id
    captions: pd.DataFrame | None = None  # None: the dataset has no captions.parquet

    @property
    def name(self) -> str:
        return self.meta["name"]

    @property
    def image_root(self) -> Path:
        root = Path(self.meta["image_root"])
        return root if root.is_absolute() else self.root / root

    @property
    def splits(self) -> list[str]:
        return sorted(self.questions["split"].unique())

    @property
    def caption_splits(self) -> list[str]:
        """The splits that have captions ([] without captions.parquet)."""
        return [] if self.captions is None else sorted(self.captions["split"].unique())

    @property
    def train_split(self) -> str | None:
        """The split to train on: "train", else the one split named train* (train2014)."""
        return train_split_of(self.splits)

    @property
    def answer_vocabulary_size(self) -> int | None:
        """How many of the most frequent training answers to keep; None: all."""
        return self.meta.get("answer_vocabulary_size")

    @classmethod
    def load(cls, root: str | Path) -> PreparedDataset:
        root = Path(root)
        if not root.is_dir():
            raise DatasetError(
                f"Not a prepared dataset: {root} is not a directory. Make one with `vqa prepare`."
            )
        for name in ("meta.json", "questions.parquet", "images.parquet"):
            if not (root / name).is_file():
                raise DatasetError(
                    f"Not a prepared dataset: {root / name} is missing. "
                    "Make one with `vqa prepare`."
                )
        meta = _read_meta(root / "meta.json")
        questions = _read_parquet(root / "questions.parquet", QUESTION_COLUMNS)
        images = _read_parquet(root / "images.parquet", IMAGE_COLUMNS)
        captions = None
        if (root / "captions.parquet").is_file():
            captions = _read_parquet(root / "captions.parquet", CAPTION_COLUMNS)
            validate_captions(captions, root / "captions.parquet")
        if questions.empty and (captions is None or captions.empty):
            raise DatasetError(
                f"{root / 'questions.parquet'} has no questions, and there are "
                "no captions: prepare the dataset again."
            )
        validate_questions(questions, root / "questions.parquet")
        validate_images(images, questions, root / "images.parquet")
        if captions is not None:
            _check_known_images(
                captions, images, root / "captions.parquet", root / "images.parquet"
            )
            captions = captions.reset_index(drop=True)
        return cls(
            root, meta, questions.reset_index(drop=True), images.set_index("image_id"), captions
        )

    def split(self, name: str) -> pd.DataFrame:
        """The questions of one split, in file order."""
        rows = self.questions[self.questions["split"] == name]
        if rows.empty:
            raise DatasetError(
                f"Split '{name}' not found in {self.root}. Available splits: {self.splits}"
            )
        return rows.reset_index(drop=True)

    def caption_split(self, name: str) -> pd.DataFrame:
        """The captions of one split, in file order."""
        if self.captions is None:
            raise DatasetError(
                f"{self.root} has no captions (no captions.parquet). Prepare "
                "a captioning source: `vqa prepare coco-captions` or "
                "`vqa prepare scenes`."
            )
        rows = self.captions[self.captions["split"] == name]
        if rows.empty:
            raise DatasetError(
                f"Caption split '{name}' not found in {self.root}. "
                f"Available caption splits: {self.caption_splits}"
            )
        return rows.reset_index(drop=True)

    def backbone_input_size(self) -> int:
        """The backbone input size that suits this dataset's images (what a config's
        backbone_image_size 0 and `vqa extract` without --backbone-image-size use)."""
        return native_image_size(self.images["width"], self.images["height"])

    def image_path(self, image_id: str) -> Path:
        return self.image_root / self.images.at[image_id, "path"]

    def load_images(self, image_ids: Sequence[str], size: int) -> tuple[np.ndarray, dict[str, int]]:
        """Decode and resize images into one [n, size, size, 3] uint8 array.

        Returns the array and the row of each image_id in it.
        """
        image_ids = list(image_ids)
        out = np.empty((len(image_ids), size, size, 3), dtype=np.uint8)
        start = time.perf_counter()
        for i, image_id in enumerate(image_ids):
            path = self.image_path(image_id)
            try:
                out[i] = load_image(path, size)
            except ImageError as exc:
                raise DatasetError(
                    f"{self.root / 'images.parquet'}, image_id={image_id}: {exc}"
                ) from None
            if (i + 1) % 2000 == 0:
                log.info(
                    "loaded %d/%d images (%.1fs)",
                    i + 1,
                    len(image_ids),
                    time.perf_counter() - start,
                )
        return out, {image_id: i for i, image_id in enumerate(image_ids)}


def validate_questions(df: pd.DataFrame, path: Path) -> None:
    for column in ("question", "answer", "question_type", "answer_type", "split", "image_id"):
        bad = df[column].map(
            lambda v, column=column: (
                not isinstance(v, str) or (column == "question" and not v.strip())
            )
        )
        _fail_on_first(bad, df, path, column, "a non-empty string")
    # An empty column has no dtype to speak of (a captions-only dataset).
    if len(df) and not pd.api.types.is_integer_dtype(df["question_id"]):
        raise DatasetError(
            f"{path}, column question_id: must be integers. "
            f"Received dtype {df['question_id'].dtype}"
        )
    dup = df.duplicated(["split", "question_id"])
    _fail_on_first(dup, df, path, "question_id", "unique within its split")
    n_answers = df["answers"].map(_answer_count)
    _fail_on_first(
        n_answers < 0, df, path, "answers", f"a list of 0 to {MAX_HUMAN_ANSWERS} answer strings"
    )
    answered = n_answers > 0
    _fail_on_first(
        answered & (df["answer"] == ""),
        df,
        path,
        "answer",
        "the majority answer of a question with answers",
    )
    _fail_on_first(
        ~answered & (df["answer"] != ""), df, path, "answer", '"" for a question without answers'
    )
    bad = ~df["answer_type"].isin(ANSWER_TYPES) & (answered | (df["answer_type"] != ""))
    _fail_on_first(
        bad,
        df,
        path,
        "answer_type",
        f'one of {list(ANSWER_TYPES)} ("" for a question without answers)',
    )


def validate_images(images: pd.DataFrame, questions: pd.DataFrame, path: Path) -> None:
    _fail_on_first(images["image_id"].duplicated(), images, path, "image_id", "unique")
    bad = images["path"].map(lambda v: not isinstance(v, str) or not v)
    _fail_on_first(bad, images, path, "path", "a non-empty string")
    _check_known_images(questions, images, path.parent / "questions.parquet", path)


def validate_captions(df: pd.DataFrame, path: Path) -> None:
    for column in ("image_id", "split", "caption"):
        bad = df[column].map(lambda v: not isinstance(v, str) or not v.strip())
        _fail_on_first(bad, df, path, column, "a non-empty string")
    if len(df) and not pd.api.types.is_integer_dtype(df["caption_id"]):
        raise DatasetError(
            f"{path}, column caption_id: must be integers. Received dtype {df['caption_id'].dtype}"
        )
    _fail_on_first(df["caption_id"].duplicated(), df, path, "caption_id", "unique")


def _check_known_images(
    table: pd.DataFrame, images: pd.DataFrame, path: Path, images_path: Path
) -> None:
    """Every image_id of `table` (at `path`) is a row of images.parquet."""
    missing = ~table["image_id"].isin(images["image_id"])
    if missing.any():
        row = int(np.argmax(missing.to_numpy()))
        raise DatasetError(
            f"{path}, row {row}, column image_id: "
            f"image_id={table['image_id'].iloc[row]!r} is not in {images_path}"
        )


def _answer_count(value: object) -> int:
    """How many answers a valid `answers` cell holds; -1 when it is not valid."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    ok = (
        isinstance(value, list)
        and len(value) <= MAX_HUMAN_ANSWERS
        and all(isinstance(a, str) for a in value)
    )
    return len(value) if ok else -1


def _fail_on_first(
    bad: pd.Series, df: pd.DataFrame, path: Path, column: str, expected: str
) -> None:
    if bad.any():
        row = int(np.argmax(bad.to_numpy()))
        raise DatasetError(
            f"{path}, row {row}, column {column}: expected {expected}. "
            f"Received: {df[column].iloc[row]!r}"
        )


def _read_meta(path: Path) -> dict:
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise DatasetError(f"{path} must hold a JSON object. Received: {type(meta).__name__}")
    for key in ("name", "source", "format_version", "image_root", "counts"):
        if key not in meta:
            raise DatasetError(f"{path}: missing key '{key}'.")
    size = meta.get("answer_vocabulary_size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 1):
        raise DatasetError(
            f"{path}: answer_vocabulary_size must be a positive integer or null. Received: {size!r}"
        )
    if meta["format_version"] != FORMAT_VERSION:
        raise DatasetError(
            f"{path}: format_version {meta['format_version']} is not "
            f"supported (expected {FORMAT_VERSION}); prepare the data again."
        )
    return meta


def _read_parquet(path: Path, columns: Sequence[str]) -> pd.DataFrame:
    try:
        df = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for bad files
        raise DatasetError(f"{path} is not a readable parquet file: {exc}") from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DatasetError(f"{path}: missing column(s) {missing}. Expected {list(columns)}.")
    return df
