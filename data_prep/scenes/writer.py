"""Writing the generated scenes and questions in CLEVR v1.0's layout and JSON format,
byte-identical for the same seed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from data_prep.common import progress
from data_prep.scenes.geometry import SceneRandom, make_scene, relationships, render
from data_prep.scenes.programs import FORMS, execute
from data_prep.scenes.sampler import Sampler
from vqa.errors import DatasetError

QUESTIONS_PER_IMAGE = 10
TEST_FRACTION = 10  # the last images // 10 images are the test split


def _split_sizes(images: int) -> dict[str, int]:
    test = images // TEST_FRACTION
    return {"train": images - test, "test": test}


def records(images: int, seed: int) -> Iterator[tuple[dict, list[dict]]]:
    """(scene, questions) per image, in CLEVR's JSON form, train split first.

    Images are not rendered here: they are a function of the scene (`render`).
    """
    check_args(images, seed)
    rnd = SceneRandom(seed)
    sampler = Sampler(rnd)
    for split, count in _split_sizes(images).items():
        sampler.new_split()
        question_index = 0
        for image_index in range(count):
            objects = make_scene(rnd)
            filename = f"CLEVR_{split}_{image_index:06d}.png"
            scene = {
                "split": split,
                "image_index": image_index,
                "image_filename": filename,
                "objects": objects,
                "relationships": relationships(objects),
            }
            questions = []
            for family, form, text, program in sampler.questions(scene, QUESTIONS_PER_IMAGE):
                questions.append(
                    {
                        "split": split,
                        "image_index": image_index,
                        "image_filename": filename,
                        "question_index": question_index,
                        "question": text,
                        "answer": execute(program, scene),
                        "question_family_index": FORMS.index(form),
                        "question_family": family,
                        "program": program,
                    }
                )
                question_index += 1
            yield scene, questions


SEPARATORS = (",", ":")  # compact: 100,000 programs add up


class _JsonList:
    """Writes {"info": ..., key: [records...]} one record at a time, so that the
    100,000 questions of a run are never all in memory."""

    def __init__(self, path: Path, info: dict, key: str) -> None:
        self.file = open(path, "w", encoding="utf-8")
        self.file.write(json.dumps({"info": info}, separators=SEPARATORS)[:-1] + f',"{key}":[')
        self.first = True

    def add(self, record: dict) -> None:
        text = json.dumps(record, separators=SEPARATORS)
        self.file.write(text if self.first else "," + text)
        self.first = False

    def close(self) -> None:
        if not self.file.closed:
            self.file.write("]}")
            self.file.close()


def generate(root: str | Path, *, images: int = 10000, seed: int = 0) -> None:
    """Write `images` scenes (the last tenth the test split) in CLEVR's format to root."""
    check_args(images, seed)
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise DatasetError(f"{root} is a file, not a directory. Choose another output.")
    sizes = _split_sizes(images)
    for sub in ("questions", "scenes", *(f"images/{s}" for s in sizes)):
        (root / sub).mkdir(parents=True, exist_ok=True)
    writers: list[_JsonList] = []  # those of the split being written
    try:
        for scene, questions in progress(records(images, seed), "generating scenes", images):
            split = scene["split"]
            if scene["image_index"] == 0:
                for w in writers:
                    w.close()
                info = {
                    "split": split,
                    "version": "1.0",
                    "generator": "data_prep.scenes",
                    "seed": seed,
                    "images": sizes[split],
                    "license": "Creative Commons Attribution (CC BY 4.0)",
                }
                writers = [
                    _JsonList(root / "scenes" / f"CLEVR_{split}_scenes.json", info, "scenes"),
                    _JsonList(
                        root / "questions" / f"CLEVR_{split}_questions.json", info, "questions"
                    ),
                ]
            render(scene).save(root / "images" / split / scene["image_filename"])
            writers[0].add(scene)
            for q in questions:
                writers[1].add(q)
    finally:
        for w in writers:
            w.close()


def check_args(images: int, seed: int) -> None:
    if not isinstance(images, int) or isinstance(images, bool) or images < TEST_FRACTION:
        raise DatasetError(
            f"--images must be an integer of at least {TEST_FRACTION} (the "
            f"last tenth is the test split). Received: images={images!r}"
        )
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise DatasetError(f"--seed must be a non-negative integer. Received: seed={seed!r}")
