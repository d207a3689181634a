"""Each image's questions in one batch (`train.group_by_image`): how much faster an
epoch is, and what it does to accuracy.

    python benchmarks/group_by_image.py DATA CONFIG [--epochs N] [--runs DIR]
        [--out experiments/results/group-by-image-<dataset>.json]

Trains CONFIG on DATA twice, as `vqa train` does, with group_by_image false and true
(everything else the same, the seed too), evaluates both on the test split, and prints
and writes per run: seconds per epoch (history.csv, validation included), the images a
training batch holds on average, the best validation accuracy and the test accuracy
overall and per question type. The runs are kept in --runs (a temporary folder if not
given).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def images_per_batch(data, config) -> float:
    """The mean number of distinct images in a training batch, as `vqa train` orders them
    (the first epoch; the training split without the validation images)."""
    import numpy as np

    from vqa.data.batches import VQABatches
    from vqa.training import split_by_image

    train_q = data.split(data.train_split)
    fit_q, _ = split_by_image(train_q, config.train.validation_fraction, config.train.seed)
    rows = {image: i for i, image in enumerate(sorted(fit_q["image_id"].unique()))}
    batches = VQABatches(
        np.zeros(len(rows)),
        fit_q["image_id"].map(rows).to_numpy(),
        np.zeros((len(fit_q), 1), "int32"),
        batch_size=config.train.batch_size,
        shuffle=True,
        seed=config.train.seed,
        group_by_image=config.train.group_by_image,
    )
    return float(np.mean([len(batches[i][0]["image"]) for i in range(len(batches))]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("config", type=Path)
    parser.add_argument("--epochs", type=int, help="instead of the config's")
    parser.add_argument("--runs", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    import pandas as pd

    from vqa import evaluate_run
    from vqa.config import load_config
    from vqa.data.dataset import PreparedDataset
    from vqa.runs import files
    from vqa.training import train

    data = PreparedDataset.load(args.data)
    config = load_config(args.config)
    if args.epochs:
        config = config.with_train(epochs=args.epochs)
    runs = args.runs or Path(tempfile.mkdtemp(prefix="group-by-image-"))
    out = args.out or Path(f"experiments/results/group-by-image-{data.name}.json")
    results = []
    for grouped in (False, True):
        run_config = config.with_train(group_by_image=grouped)
        run = runs / ("grouped" if grouped else "plain")
        summary = train(data, run, run_config, verbose=2)
        metrics = evaluate_run(run, data, "test")
        history = pd.read_csv(run / files.HISTORY)
        results.append(
            {
                "group_by_image": grouped,
                "seconds_per_epoch": summary["seconds_per_epoch"],
                "images_per_batch": round(images_per_batch(data, run_config), 1),
                "questions_per_batch": run_config.train.batch_size,
                "epochs_run": summary["epochs_run"],
                "best_epoch": summary["best_epoch"],
                "best_val_accuracy": summary["best_val_vqa_score"],
                "val_accuracy_by_epoch": [round(100 * v, 2) for v in history["val_vqa_score"]],
                "test_accuracy": metrics["overall"],
                "test_per_question_type": metrics["per_question_type"],
            }
        )
    report = {
        "command": "python benchmarks/group_by_image.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "dataset": data.name,
        "config": str(args.config),
        "epochs": config.train.epochs,
        "cpu_count": os.cpu_count(),
        "runs": results,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    for r in results:
        print(
            f"group_by_image={str(r['group_by_image']).lower():5}  "
            f"{r['seconds_per_epoch']:7.1f} s/epoch  {r['images_per_batch']:6.1f} images "
            f"per batch  best val {r['best_val_accuracy']:.2f}  test {r['test_accuracy']:.2f}"
        )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
