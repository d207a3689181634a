"""A run's accuracy per question type and group on its own validation images.

    python experiments/probes/validation_breakdown.py RUN DATA [--out FILE.json]
        [--batch-norm-images N]

`vqa train` holds out part of the training split's images for validation (their ids in
RUN/validation_images.json) and logs only the overall validation accuracy each epoch.
Choosing a recipe on validation needs more: which question types hold it back. This
answers those held-out questions with the run and scores them as `vqa evaluate` scores
a split (official accuracy; per question type, answer type and, for Sort-of-CLEVR,
relational or not), without reading the test split and without writing into RUN.
With `--batch-norm-images N`, the image encoder's batch-norm statistics are first
re-estimated from N of the run's training images (as `train.batch_norm_images` does
before each validation), for a run trained without it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from vqa.answering import Answerer  # noqa: E402
from vqa.data.dataset import PreparedDataset  # noqa: E402
from vqa.evaluation import format_metrics, score_predictions  # noqa: E402
from vqa.features.extract import image_table  # noqa: E402
from vqa.runs import files  # noqa: E402
from vqa.training.batch_norm import BatchNormStatistics, sample_rows  # noqa: E402
from vqa.training.inputs import held_out_split  # noqa: E402


def validation_breakdown(run: Path, data: Path, batch_norm_images: int = 0) -> dict:
    """metrics.json-shaped scores of RUN on its validation images of DATA's training
    split; with `batch_norm_images`, after re-estimating the image encoder's statistics."""
    held_out = run / files.VALIDATION_IMAGES
    if not held_out.is_file():
        raise FileNotFoundError(f"{held_out} is missing: is {run} a run made by `vqa train`?")
    dataset = PreparedDataset.load(data)
    fit, questions = held_out_split(run, dataset.split(dataset.train_split))
    if len(questions) == 0:
        raise ValueError(f"None of {run}'s validation images is in {data}: is it the run's data?")
    answerer = Answerer.load(run)
    if batch_norm_images:
        ids = np.array(sorted(fit["image_id"].unique()))  # only the sample is loaded
        chosen = list(ids[sample_rows(np.arange(len(ids)), batch_norm_images, seed=0)])
        images, _ = image_table(
            dataset, chosen, backbone=None, image_size=answerer.config.model.image_size
        )
        statistics = BatchNormStatistics(images)
        statistics.set_model(answerer.model)
        statistics.on_test_begin()
    predictions = answerer.predict_dataset(dataset, questions)
    return score_predictions(questions, predictions, "validation")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("data", type=Path)
    parser.add_argument("--out", type=Path, help="also write the metrics here (JSON)")
    parser.add_argument("--batch-norm-images", type=int, default=0, help="re-estimate first")
    args = parser.parse_args(argv)
    metrics = validation_breakdown(args.run, args.data, args.batch_norm_images)
    print(format_metrics(metrics))
    if args.out:
        args.out.write_text(json.dumps(metrics, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
