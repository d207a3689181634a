"""Prepare COCO captions (official JSON, or a Karpathy split file) for captioning.

    python -m data_prep.coco_captions --root DIR --out data/coco-captions
    vqa prepare coco-captions --root DIR --out DATA [--karpathy FILE] [--skip-bad]
                              [--max-images N]

Without --karpathy, DIR is laid out as COCO's downloads unpack:

    annotations/captions_{split}.json   images (id, file_name), annotations (image_id, caption)
    {split}/ or images/{split}/         the images, e.g. COCO_train2014_000000xxxxxx.jpg

for split train2014 and val2014 (or train2017, val2017: every captions_{split}.json
there), each a split of its own name. With --karpathy FILE (Karpathy's
dataset_coco.json, dataset_flickr8k.json, dataset_flickr30k.json) the splits are
Karpathy's: train (restval included), val and test; an image is
DIR/{filepath}/{filename} (or DIR/images/{filepath}/...), and without a filepath
(Flickr) DIR/{filename}, DIR/Images/, or DIR/Flicker8k_Dataset/ (Flickr8k's zip).

The prepared dataset has captions.parquet and no questions. image_id is the COCO id
(Karpathy's cocoid, else its imgid) as a string; caption_id numbers the captions in
file order; a caption's whitespace is collapsed. Images stay where they are:
image_root is DIR.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from data_prep.common import (
    BadRecords,
    add_record_arguments,
    check_output,
    command_line,
    escapes_root,
    is_int,
    read_json,
    read_json_lists,
    readable_images,
    report,
    write_prepared,
)
from vqa.data.dataset import CAPTION_COLUMNS, IMAGE_COLUMNS, PreparedDataset
from vqa.errors import DatasetError

log = logging.getLogger(__name__)
SPLIT_FILE = re.compile(r"^captions_([a-z]+\d{4})\.json$")
KARPATHY_SPLITS = {"train": "train", "restval": "train", "val": "val", "test": "test"}
# Where Flickr's images are under --root: as given, Kaggle's copy, the official zip.
FLAT_FOLDERS = ("", "Images", "images", "Flicker8k_Dataset", "Flickr8k_Dataset")
IMAGE_ROW = ["image_id", "split", "folder", "file_name", "file", "record"]
CAPTION_ROW = ["image_id", "split", "caption"]


def clean(caption: str) -> str:
    """One line, single spaces: COCO's captions hold stray newlines and trailing spaces."""
    return " ".join(caption.split())


def read_official(root: Path, bad: BadRecords) -> tuple[list, list, dict]:
    """Image rows, caption rows and each folder's candidate locations, from
    annotations/captions_{split}.json."""
    folder = root / "annotations"
    files = (
        sorted(p for p in folder.glob("captions_*.json") if SPLIT_FILE.match(p.name))
        if folder.is_dir()
        else []
    )
    if not files:
        raise DatasetError(
            f"No COCO captions found: expected {folder}/captions_train2014.json "
            "and captions_val2014.json (annotations_trainval2014.zip unpacked "
            "in --root), or pass --karpathy FILE."
        )
    images, captions, owner = [], [], {}
    for path in files:
        split = SPLIT_FILE.match(path.name).group(1)
        log.info("reading %s", path)
        entries, annotations = read_json_lists(path, ("images", "annotations"))
        listed, usable = set(), set()
        for i, entry in enumerate(entries):
            entry = entry if isinstance(entry, dict) else {}
            coco_id, file_name = entry.get("id"), entry.get("file_name")
            record = f"image id={coco_id}" if coco_id is not None else f"image #{i}"
            if not is_int(coco_id):
                bad(path, record, "image id must be an integer")
                continue
            listed.add(coco_id)
            if not isinstance(file_name, str) or not file_name:
                bad(path, record, "no file_name")
            elif escapes_root(file_name):
                bad(path, record, f"image path {file_name!r} escapes the image folder")
            elif coco_id in owner:
                bad(path, record, f"image id already in {owner[coco_id].name}")
            else:
                owner[coco_id] = path
                usable.add(coco_id)
                images.append((str(coco_id), split, split, file_name, path, record))
        for i, ann in enumerate(annotations):
            ann = ann if isinstance(ann, dict) else {}
            record = f"annotation id={ann['id']}" if "id" in ann else f"annotation #{i}"
            coco_id, caption = ann.get("image_id"), ann.get("caption")
            if not (is_int(coco_id) and coco_id in listed):
                bad(path, record, f"image_id={coco_id!r} is not among the file's images")
            elif not isinstance(caption, str) or not caption.strip():
                bad(path, record, "empty caption")
            elif coco_id in usable:  # a bad image was reported once, not per caption
                captions.append((str(coco_id), split, clean(caption)))
    folders = {split: [split, f"images/{split}"] for split in {row[2] for row in images}}
    return images, captions, folders


def read_karpathy(path: Path, bad: BadRecords) -> tuple[list, list, dict]:
    """Image rows, caption rows and each folder's candidate locations, from a Karpathy
    split file."""
    images, captions, seen = [], [], set()
    log.info("reading %s", path)
    for i, entry in enumerate(read_json(path, "images")):
        entry = entry if isinstance(entry, dict) else {}
        key = "cocoid" if "cocoid" in entry else "imgid"
        ident, split = entry.get(key), KARPATHY_SPLITS.get(entry.get("split"))
        filename, filepath = entry.get("filename"), entry.get("filepath", "")
        sentences = entry.get("sentences")
        record = f"{key}={ident}" if ident is not None else f"image #{i}"
        if not is_int(ident):
            bad(path, record, "cocoid or imgid must be an integer")
        elif ident in seen:
            bad(path, record, f"duplicate {key}")
        elif split is None:
            bad(
                path,
                record,
                f"split must be one of {sorted(KARPATHY_SPLITS)}. Received: {entry.get('split')!r}",
            )
        elif not (isinstance(filename, str) and filename and isinstance(filepath, str)):
            bad(path, record, "filename (and filepath, if any) must be strings")
        elif escapes_root(filename) or escapes_root(filepath):
            rel = f"{filepath}/{filename}" if filepath else filename
            bad(path, record, f"image path {rel!r} escapes the image root")
        elif not isinstance(sentences, list):
            bad(path, record, "sentences must be a list")
        else:
            seen.add(ident)
            images.append((str(ident), split, filepath, filename, path, record))
            for j, sentence in enumerate(sentences):
                raw = sentence.get("raw") if isinstance(sentence, dict) else None
                if not isinstance(raw, str) or not raw.strip():
                    bad(path, f"{record}, sentence #{j}", "empty caption")
                else:
                    captions.append((str(ident), split, clean(raw)))
    folders = {
        f: [f, f"images/{f}"] if f else list(FLAT_FOLDERS) for f in {row[2] for row in images}
    }
    return images, captions, folders


def find_folder(root: Path, candidates: Sequence[str], names: Sequence[str]) -> str:
    """The first candidate folder (relative to root) that holds some of the images."""
    existing = [c for c in candidates if (root / c).is_dir()]
    for rel in existing:
        if any((root / rel / name).is_file() for name in names[:50]):
            return rel
    if existing:
        return existing[0]  # none found: every image is reported missing from there
    raise DatasetError(
        f"No image folder under {root}: expected one of "
        f"{[str(root / c) for c in candidates]}. Unpack the images there."
    )


def prepare(
    root: str | Path,
    out: str | Path,
    *,
    karpathy: str | Path | None = None,
    skip_bad: bool = False,
    max_images: int | None = None,
    overwrite: bool = False,
) -> PreparedDataset:
    """Write the captions under `root` (with Karpathy's splits when `karpathy` names a
    split file) to `out` and return the loaded dataset.

    Args:
        max_images: keep at most this many images per split (the first in file order).
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"COCO root not found: {root}")
    if max_images is not None and max_images < 1:
        raise DatasetError(f"--max-images must be at least 1. Received: {max_images}")
    check_output(out, overwrite)
    bad = BadRecords(skip_bad)
    if karpathy is None:
        rows, caption_rows, folders = read_official(root, bad)
        name, source = "coco-captions", f"COCO captions official JSON in {root.resolve()}"
    else:
        karpathy = Path(karpathy)
        if not karpathy.is_file():
            raise DatasetError(f"Karpathy split file not found: {karpathy}")
        match = re.match(r"dataset_(\w+)\.json$", karpathy.name)
        name = f"{match.group(1)}-karpathy" if match else "karpathy-captions"
        rows, caption_rows, folders = read_karpathy(karpathy, bad)
        source = f"Karpathy splits {karpathy.resolve()}, images in {root.resolve()}"
    images = pd.DataFrame(rows, columns=IMAGE_ROW)
    captions = pd.DataFrame(caption_rows, columns=CAPTION_ROW)
    # Images without a caption teach nothing; --max-images keeps the first N per split.
    images = images[images["image_id"].isin(captions["image_id"])]
    if max_images is not None:
        images = images.groupby("split", sort=False).head(max_images)
    located = {
        f: find_folder(root, c, list(images.loc[images["folder"] == f, "file_name"]))
        for f, c in folders.items()
        if (images["folder"] == f).any()
    }
    images = images.assign(
        path=[
            f"{located[f]}/{n}" if located[f] else n
            for f, n in zip(images["folder"], images["file_name"])
        ]
    )
    images = images.reset_index(drop=True)
    files, paths = list(images["file"]), list(images["path"])
    records = [f"{r}, {n}" for r, n in zip(images["record"], images["file_name"])]
    # The folder in the reason, not the file: the report counts the records per reason.
    images = readable_images(
        images,
        [root / p for p in paths],
        lambda row, reason: bad(
            files[row], records[row], f"{reason} in {(root / paths[row]).parent}"
        ),
    )
    captions = captions[captions["image_id"].isin(images["image_id"])].reset_index(drop=True)
    if captions.empty:
        raise DatasetError(
            f"No usable captions under {root}"
            + (" (every one was left out by --skip-bad)" if bad.rows else "")
        )
    captions.insert(0, "caption_id", range(len(captions)))
    return write_prepared(
        out,
        name=name,
        source=source,
        images=images[list(IMAGE_COLUMNS)],
        captions=captions[list(CAPTION_COLUMNS)],
        image_root=root.resolve(),
        skipped=bad,
        overwrite=overwrite,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--root",
        required=True,
        help="COCO folder (annotations/, train2014/, val2014/), or the "
        "images' folder of a Karpathy split file",
    )
    parser.add_argument("--out", required=True, help="directory to create")
    parser.add_argument(
        "--karpathy",
        metavar="FILE",
        help="Karpathy split file (dataset_coco.json, dataset_flickr8k.json): "
        "its train (+restval), val and test splits",
    )
    parser.add_argument(
        "--max-images",
        type=int,
        metavar="N",
        help="at most N images per split, the first in file order (default: all)",
    )
    add_record_arguments(parser)


def run(args: argparse.Namespace) -> str:
    return report(
        prepare(
            args.root,
            args.out,
            karpathy=args.karpathy,
            skip_bad=args.skip_bad,
            max_images=args.max_images,
            overwrite=args.overwrite,
        )
    )


def main(argv: list[str] | None = None) -> int:
    return command_line("python -m data_prep.coco_captions", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
