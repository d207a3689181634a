"""Time and peak memory of `vqa prepare vqa` on a VQA v2 train-sized split.

    python benchmarks/prepare_vqa.py --work /tmp/vqa-scale [--questions 443757]

Generates official-format files the size of VQA v2 train2014 (443,757 questions on
82,783 images, ten answers each: a ~330 MB annotations file, like the real one) with
tiny JPEGs standing in for the COCO images, then runs `python -m data_prep.vqa` on them
in a child process and reports its wall time and peak resident memory. Prints numbers
and writes them as JSON; asserts nothing.
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

QUESTION_TYPES = [
    "what is the",
    "is the",
    "how many",
    "what color is the",
    "are there",
    "what",
    "is this a",
    "does the",
    "what type of",
    "where is the",
]


def generate(root: Path, n_questions: int, n_images: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    folder = root / "train2014"
    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (120, 60, 30)).save(buffer, "JPEG")
    jpeg = buffer.getvalue()
    for coco_id in range(1, n_images + 1):
        (folder / f"COCO_train2014_{coco_id:012d}.jpg").write_bytes(jpeg)
    # A long-tailed answer distribution over ~25k distinct answers, as in VQA v2.
    vocabulary = [f"answer {i}" for i in range(25_000)]
    weights = 1.0 / np.arange(1, len(vocabulary) + 1)
    picks = rng.choice(len(vocabulary), size=(n_questions, 10), p=weights / weights.sum())
    image_of = rng.integers(1, n_images + 1, size=n_questions)
    qtypes = rng.integers(0, len(QUESTION_TYPES), size=n_questions)
    with open(root / "v2_OpenEnded_mscoco_train2014_questions.json", "w") as f:
        json.dump(
            {
                "info": {},
                "data_subtype": "train2014",
                "questions": [
                    {
                        "image_id": int(image_of[i]),
                        "question_id": i + 1,
                        "question": f"{QUESTION_TYPES[qtypes[i]]} object number {i} doing here?",
                    }
                    for i in range(n_questions)
                ],
            },
            f,
        )
    with open(root / "v2_mscoco_train2014_annotations.json", "w") as f:
        json.dump(
            {
                "info": {},
                "data_subtype": "train2014",
                "annotations": [
                    {
                        "question_type": QUESTION_TYPES[qtypes[i]],
                        "multiple_choice_answer": vocabulary[picks[i, 0]],
                        "answers": [
                            {
                                "answer": vocabulary[a],
                                "answer_confidence": "yes",
                                "answer_id": j + 1,
                            }
                            for j, a in enumerate(picks[i])
                        ],
                        "image_id": int(image_of[i]),
                        "answer_type": "other",
                        "question_id": i + 1,
                    }
                    for i in range(n_questions)
                ],
            },
            f,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True, help="scratch directory (a few GB free)")
    parser.add_argument("--questions", type=int, default=443_757)
    parser.add_argument("--images", type=int, default=82_783)
    parser.add_argument("--json", help="also write the numbers here")
    args = parser.parse_args()
    work = Path(args.work)
    root = work / "vqa-root"
    if not (root / "v2_mscoco_train2014_annotations.json").is_file():
        start = time.perf_counter()
        generate(root, args.questions, args.images)
        print(
            f"generated {args.questions} questions on {args.images} images in "
            f"{time.perf_counter() - start:.0f} s"
        )
    sizes = {p.name: p.stat().st_size for p in root.glob("*.json")}
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "data_prep.vqa",
            "--root",
            str(root),
            "--out",
            str(work / "prepared"),
            "--overwrite",
        ],
        check=True,
    )
    wall = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux
    result = {
        "questions": args.questions,
        "images": args.images,
        "json_mb": {k: round(v / 2**20) for k, v in sizes.items()},
        "wall_s": round(wall, 1),
        "peak_rss_mb": round(peak_mb),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
