"""`vqa compare` for caption decoders: every variant trained once per seed, then each
decoding method scored on one split (BLEU-1..4, ROUGE-L, CIDEr-D, distinct bigrams).
Writes RESULTS/table.csv, README.md (the table and its command) and curves.png."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from vqa.config import Config, trained_with
from vqa.data.dataset import PreparedDataset
from vqa.runs import files
from vqa.runs.atomic import atomic_write, write_text

log = logging.getLogger(__name__)
# (name in the table, Captioner decoding arguments); sample: temperature 1, one seed
DECODINGS = (
    ("greedy", {"decode": "greedy"}),
    ("beam 3", {"decode": "beam", "beam_size": 3}),
    ("sample T=1", {"decode": "sample", "temperature": 1.0, "seed": 0}),
)
SCORES = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L", "CIDEr-D", "distinct_bigrams")


def compare_captions(
    dataset: PreparedDataset,
    variants: dict[str, Config],
    *,
    runs: Path,
    results: Path,
    split: str,
    force: bool,
    seeds: Sequence[int] | None,
    command: str,
) -> pd.DataFrame:
    from vqa.captioning import Captioner
    from vqa.evaluation import score_captions_of
    from vqa.training import train
    from vqa.visualize import plot_curves

    dataset.caption_split(split)
    rows, curves = [], {}
    for name, config in variants.items():
        for seed in seeds or [None]:
            run_config = config if seed is None else config.with_train(seed=seed)
            run = runs / dataset.name / name / ("" if seed is None else f"seed{seed}")
            done = not force and trained_with(run, run_config)
            if done:
                log.info("%s: already trained with this config; pass --force to redo it", name)
            else:
                train(dataset, run, run_config, overwrite=force or (run / files.TRAINING).is_file())
            summary = json.loads((run / files.TRAINING).read_text())
            captioner = Captioner.load(run)
            for label, how in DECODINGS:
                captions = captioner.caption_dataset(dataset, split, **how)
                scores = score_captions_of(dataset, split, captions, meteor=False)
                rows.append(
                    {
                        "variant": name,
                        "decode": label,
                        "seed": run_config.train.seed,
                        **{k: scores[k] for k in SCORES},
                        "validation_word_accuracy": summary["best_val_word_accuracy"],
                        "parameters": summary["parameters"],
                        "seconds_per_epoch": summary["seconds_per_epoch"],
                        "best_epoch": summary["best_epoch"],
                        "epochs_run": summary["epochs_run"],
                    }
                )
            curves.setdefault(name, pd.read_csv(run / files.HISTORY))
    table = pd.DataFrame(rows)
    results.mkdir(parents=True, exist_ok=True)
    with atomic_write(results / "table.csv") as tmp:
        table.to_csv(tmp, index=False)
    plot_curves(
        curves,
        results / "curves.png",
        f"{dataset.name}: validation next-word accuracy per epoch",
        metric="val_word_accuracy",
    )
    images = dataset.caption_split(split)["image_id"].nunique()
    write_text(results / "README.md", _markdown(table, dataset.name, split, images, command))
    return table


def _markdown(table: pd.DataFrame, name: str, split: str, images: int, command: str) -> str:
    """The README of a caption compare: per variant and decoding, each score's mean over
    the seeds (± their standard deviation), and the runs' mean validation accuracy and
    seconds an epoch."""
    spread = [*SCORES, "validation_word_accuracy"]  # each with its spread over the seeds
    group = table.groupby(["variant", "decode"], sort=False)
    mean, std = group[spread].mean(), group[spread].std()
    parameters, seconds = group["parameters"].first(), group["seconds_per_epoch"].mean()
    seeds = int(group.size().max())
    what = f"the mean ± standard deviation of {seeds} seeds" if seeds > 1 else "one run each"
    lines = [
        f"# {name}: caption decoders compared",
        "",
        f"Split `{split}` ({images:,} images, one caption each), COCO caption metrics in "
        f"percent (CIDEr-D x 100), {what}; distinct bigrams: how many different word "
        "pairs the captions of the split use together. Written by:",
        "",
        "    " + command,
        "",
        "| variant | decoding | "
        + " | ".join(SCORES).replace("_", " ")
        + " | validation next-word accuracy | parameters | s/epoch |",
        "|---" * (len(SCORES) + 5) + "|",
    ]
    for (variant, decode), row in mean.iterrows():
        cells = []
        for k in spread:
            text = f"{row[k]:.0f}" if k == "distinct_bigrams" else f"{row[k]:.2f}"
            if seeds > 1 and pd.notna(std.loc[(variant, decode), k]):
                text += f" ± {std.loc[(variant, decode), k]:.2f}"
            cells.append(text)
        cells += [f"{int(parameters[variant, decode]):,}", f"{seconds[variant, decode]:.1f}"]
        lines.append(f"| {variant} | {decode} | " + " | ".join(cells) + " |")
    lines += ["", "![curves](curves.png)"]
    return "\n".join(lines) + "\n"
