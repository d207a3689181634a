"""Accuracy per question template on our scenes, from a run's test predictions.

    python experiments/probes/template_accuracy.py RUN DATA [--split test]

The evaluation breaks accuracy down by family ("compare numbers"); a family holds
templates that need different things: "Are there more red objects than squares?",
"fewer" and "as many" are all "compare numbers". RUN is a run that `vqa evaluate RUN
DATA` has written predictions.json into; DATA a prepared scenes dataset (`vqa prepare
scenes`), whose CLEVR JSON under DATA/clevr/ names each question's template.
Printed: per template, the questions and the % answered right (exact match: our scenes
give one answer per question), then overall.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from data_prep.scenes import FORMS, read_split  # noqa: E402
from vqa.runs import files  # noqa: E402


def template_accuracy(run: Path, data: Path, split: str = "test") -> pd.DataFrame:
    """One row per template, in FORMS order, then "overall": n, accuracy (%)."""
    predictions = run / files.PREDICTIONS
    if not predictions.is_file():
        raise FileNotFoundError(f"{predictions} is missing: run `vqa evaluate {run} {data}` first.")
    asked, _ = read_split(data, split)
    truth = pd.DataFrame(
        {
            "question_id": [q["question_index"] for q in asked],
            "template": [FORMS[q["question_family_index"]] for q in asked],
            "answer": [q["answer"] for q in asked],
        }
    )
    given = pd.DataFrame(json.loads(predictions.read_text()))
    joined = truth.merge(given, on="question_id", how="left", suffixes=("", "_given"))
    if joined["answer_given"].isna().any() or len(given) != len(truth):
        raise ValueError(
            f"{predictions} holds {len(given)} answers; {data}'s {split} split "
            f"has {len(truth)} questions. Evaluate the run on this split of "
            "this dataset."
        )
    joined["right"] = 100.0 * (joined["answer"] == joined["answer_given"])
    table = joined.groupby("template").right.agg(n="size", accuracy="mean")
    table = table.reindex([f for f in FORMS if f in table.index])
    table.loc["overall"] = [len(joined), joined["right"].mean()]
    table["n"] = table["n"].astype(int)
    return table.reset_index()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("data", type=Path)
    parser.add_argument("--split", default="test")
    args = parser.parse_args(argv)
    table = template_accuracy(args.run, args.data, args.split)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
