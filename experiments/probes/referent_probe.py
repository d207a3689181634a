"""Where does each attention hop look on our scenes' questions about one object and two?

    python experiments/probes/referent_probe.py RUN DATA [--split test] [--questions 400]

RUN is a finished run with attention (stacked attention's hops, or the referent fusion's
referents, each a "hop" here, and with `relate_pick` the pick as the last hop);
`--split validation` reads the run's own held-out training images
(RUN/validation_images.json), never the test split. DATA is a prepared
scenes dataset (`vqa prepare scenes`), which keeps the CLEVR JSON under DATA/clevr/:
each question's program, each object's centre and size. For each template that names
objects, the program is run on the scene to find them ("query attribute": the one
object; "compare attribute": the two; "relate query" and "closest query": the anchor,
then the object asked about), and each hop's attention on the grid cells under each
object's box is summed. Printed per template: the accuracy, and per hop and object the
mean weight on it and the share of questions where it holds more than half
(experiments/notes/scenes.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from data_prep.scenes import FORMS, IMAGE_SIZE, SIZES, read_split, run_program  # noqa: E402

TEMPLATES = ("query", "same", "relate query", "closest query")


def referents(program: list[dict], scene: dict) -> list[int]:
    """The objects a question names, in the order its program finds them: the outputs
    of its `unique` and `closest` steps."""
    outputs = run_program(program, scene)
    return [out for step, out in zip(program, outputs) if step["function"] in ("unique", "closest")]


def object_cells(obj: dict, rows: int, cols: int) -> list[int]:
    """The cells (row-major indices of a rows x cols grid over the whole image) that the
    object's box touches."""
    x, y = obj["pixel_coords"][:2]
    half = SIZES[obj["size"]] / 2
    width, height = IMAGE_SIZE / cols, IMAGE_SIZE / rows
    xs = range(max(0, int((x - half) // width)), min(cols - 1, int((x + half) // width)) + 1)
    ys = range(max(0, int((y - half) // height)), min(rows - 1, int((y + half) // height)) + 1)
    return [r * cols + c for r in ys for c in xs]


def probe(
    answerer,
    data: Path,
    split: str = "test",
    questions: int = 400,
    batch_size: int = 64,
    images: set[str] | None = None,
) -> pd.DataFrame:
    """One row per (template, hop, object): n, accuracy, mean weight, share > 0.5; only
    the questions on `images` ("split/file name") where given."""
    asked, scenes = read_split(data, split)
    if images is not None:
        asked = [q for q in asked if f"{split}/{q['image_filename']}" in images]
    rows = []
    for template in TEMPLATES:
        chosen = [q for q in asked if FORMS[q["question_family_index"]] == template][:questions]
        if not chosen:
            continue
        weights, right = [], []
        for start in range(0, len(chosen), batch_size):
            some = chosen[start : start + batch_size]
            results = answerer.answer_batch(
                [data / "images" / split / q["image_filename"] for q in some],
                [q["question"] for q in some],
            )
            for q, result in zip(some, results):
                if result.hop_attention is None:
                    raise ValueError("The run has no attention to probe (attention_hops: 0).")
                hops = result.hop_attention.reshape(result.hop_attention.shape[0], -1)
                scene = scenes[q["image_index"]]
                cells = [
                    object_cells(scene["objects"][i], *result.hop_attention.shape[1:])
                    for i in referents(q["program"], scene)
                ]
                weights.append([[hop[c].sum() for c in cells] for hop in hops])
                right.append(result.answer == q["answer"])
        weights = np.asarray(weights)  # [questions, hops, objects]
        for hop in range(weights.shape[1]):
            for obj in range(weights.shape[2]):
                rows.append(
                    {
                        "template": template,
                        "n": len(chosen),
                        "accuracy": 100 * float(np.mean(right)),
                        "hop": hop,
                        "object": obj,
                        "weight": float(weights[:, hop, obj].mean()),
                        "over_half": 100 * float((weights[:, hop, obj] > 0.5).mean()),
                    }
                )
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("data", type=Path)
    parser.add_argument("--split", default="test", help="test, train or validation (RUN's)")
    parser.add_argument("--questions", type=int, default=400, help="per template")
    args = parser.parse_args(argv)
    from vqa import Answerer

    split, images = args.split, None
    if split == "validation":  # the run's held-out images of the training split
        split, images = "train", set(json.loads((args.run / "validation_images.json").read_text()))
    table = probe(Answerer.load(args.run), args.data, split, args.questions, images=images)
    print(
        "weight: the hop's attention summed over the cells under the object (mean over "
        "questions); over_half: % of questions where that sum is above 0.5"
    )
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
