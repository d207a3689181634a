"""Train and evaluate several variants on one dataset, side by side.

    vqa compare DATA experiments/configs/a.yaml experiments/configs/b.yaml ...

Each config file is one variant, named after the file. Each is trained into
RUNS/<dataset>/<variant> (resuming a crashed run) and evaluated on the test split;
a variant already evaluated with the same config is not trained again unless
`force`. The answer-prior baseline (the most frequent training answer of each
question type) is added to every table. Writes into RESULTS (by default
experiments/results/<dataset>):

    table.csv                  long format: variant, question_type, accuracy,
                               n_questions, parameters, seconds_per_epoch, best_epoch, ...
    README.md                  the same as a table, with the command and the plots
    curves.png                 validation accuracy per epoch of every variant
    confusion-<variant>.png    for datasets with at most 30 answers
"""

from __future__ import annotations

import json
import logging
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from vqa.config import load_config, trained_with
from vqa.data.dataset import PreparedDataset
from vqa.errors import RunDirError
from vqa.evaluation import default_split, evaluation_dir, score_predictions
from vqa.metrics import DEFAULT_EVALUATOR
from vqa.runs import files
from vqa.runs.atomic import atomic_write, write_text

log = logging.getLogger(__name__)
ANSWER_PRIOR = "answer prior"
MAX_CONFUSION_ANSWERS = 30


FLOW_COLUMNS = ("first_to_last_start", "first_to_last_end", "largest_norm")


def answer_prior(train: pd.DataFrame, questions: pd.DataFrame) -> dict[int, str]:
    """The baseline the VQA papers report: each question type's most frequent training
    answer (the overall most frequent one for types unseen in training)."""
    counts = train.groupby(["question_type", "answer"]).size().reset_index(name="n")
    counts = counts.sort_values(["question_type", "n", "answer"], ascending=[True, False, True])
    by_type = counts.drop_duplicates("question_type").set_index("question_type")["answer"]
    overall = train["answer"].value_counts().sort_index().idxmax()
    return {
        int(q): by_type.get(t, overall)
        for q, t in zip(questions["question_id"], questions["question_type"])
    }


def compare(
    data: str | Path | PreparedDataset,
    configs: Sequence[str | Path],
    *,
    runs: str | Path = "runs",
    results: str | Path | None = None,
    split: str | None = None,
    force: bool = False,
    epochs: int | None = None,
    seeds: Sequence[int] | None = None,
    verbose: int | None = None,
) -> pd.DataFrame:
    """Train, evaluate and tabulate every config; returns the long table (also written).

    `seeds`: train each variant once per seed (RUNS/<dataset>/<variant>/seed<S>), and
    give each figure as the mean and standard deviation over them; None: once, with the
    config's own seed."""
    from vqa.evaluation import evaluate_run
    from vqa.training import train
    from vqa.training.fit import checked_config
    from vqa.training.gradient_flow import run_summary as flow_summary

    dataset = data if isinstance(data, PreparedDataset) else PreparedDataset.load(data)
    loaded = [load_config(path) for path in configs]
    if any(config.is_captioner for config in loaded):
        return _captions(dataset, configs, loaded, runs, results, split, force, epochs, seeds)
    split = split or default_split(dataset)
    questions = dataset.split(split)
    variants = {}
    for path in configs:  # all checked before hours of training
        name = Path(path).stem
        if name in variants or name == ANSWER_PRIOR:
            raise RunDirError(f"Two configs would both be variant {name!r}; rename one.")
        config = checked_config(load_config(path).for_dataset(dataset))  # as its run has it
        variants[name] = config if epochs is None else config.with_train(epochs=epochs)

    rows = _rows(
        ANSWER_PRIOR,
        questions,
        score_predictions(
            questions, answer_prior(dataset.split(dataset.train_split), questions), split
        ),
        {},
    )
    curves, confusions, flows = {}, {}, {}
    jobs = [
        (
            name,
            config if seed is None else config.with_train(seed=seed),
            Path(runs) / dataset.name / name / ("" if seed is None else f"seed{seed}"),
        )
        for name, config in variants.items()
        for seed in (seeds or [None])
    ]
    for i, (name, config, run) in enumerate(jobs, 1):
        log.info("[%d/%d] %s -> %s", i, len(jobs), name, run)
        trained = not force and trained_with(run, config)
        if not trained:
            train(
                dataset,
                run,
                config,
                verbose=verbose,
                overwrite=force or (run / files.TRAINING).is_file(),
            )
        kept = evaluation_dir(run, dataset, split)
        metrics = _metrics(kept, split) if trained else None
        if metrics is None:
            metrics = evaluate_run(run, dataset, split)
        else:
            log.info(
                "%s: already trained and evaluated on %s; pass --force to redo it", name, split
            )
        summary = json.loads((run / files.TRAINING).read_text()) | flow_summary(run)
        rows += _rows(name, questions, metrics, summary)
        if name not in curves:  # the plots show each variant's first seed
            curves[name] = pd.read_csv(run / files.HISTORY)
            confusions[name] = json.loads((kept / files.PREDICTIONS).read_text())
            if (run / files.GRADIENT_FLOW).is_file():
                flows[name] = pd.read_csv(run / files.GRADIENT_FLOW)

    table = pd.DataFrame(rows)
    out = Path("experiments/results") / dataset.name if results is None else Path(results)
    _write(table, dataset, split, questions, curves, confusions, out, flows)
    return table


def check_split(dataset: PreparedDataset, configs: Sequence[str | Path], split: str) -> None:
    """Raise unless `dataset` has `split` for the configs' task (captions for caption
    decoders); Keras-free, so a command checks it before TensorFlow loads."""
    if any(load_config(path).is_captioner for path in configs):
        dataset.caption_split(split)
    else:
        dataset.split(split)


def headline(table: pd.DataFrame) -> list[str]:
    """One line a variant (a decoding, for caption decoders): its mean score on the
    compared split."""
    if "CIDEr-D" in table:
        means = table.groupby(["variant", "decode"], sort=False)["CIDEr-D"].mean()
        return [
            f"{variant} / {decode}: CIDEr-D {cider:.2f}"
            for (variant, decode), cider in means.items()
        ]
    overall = table[table["question_type"] == "overall"].groupby("variant", sort=False)
    width = max(len(v) for v in overall.groups)
    return [f"{v:<{width}}  {a:6.2f}%" for v, a in overall["accuracy"].mean().items()]


def _captions(dataset, paths, configs, runs, results, split, force, epochs, seeds):
    """Caption decoders compared instead (vqa.evaluation.compare_captions); no VQA
    config mixed in."""
    from vqa.evaluation.compare_captions import compare_captions

    if not all(config.is_captioner for config in configs):
        raise RunDirError(
            "Compare caption decoders or VQA models, not both: every config "
            "of one table sets caption.decoder, or none does."
        )
    names = [Path(p).stem for p in paths]
    if len(set(names)) != len(names):
        raise RunDirError(f"Two configs would be the same variant: {names}; rename one.")
    variants = {
        name: (c if epochs is None else c.with_train(epochs=epochs)).for_dataset(dataset)
        for name, c in zip(names, configs)
    }
    out = Path("experiments/results") / dataset.name if results is None else Path(results)
    return compare_captions(
        dataset,
        variants,
        runs=Path(runs),
        results=out,
        split=split or "test",
        force=force,
        seeds=seeds,
        command=_command(dataset),
    )


def _metrics(run: Path, split: str) -> dict | None:
    """The run's metrics if they are for `split`, by the default evaluator (metrics
    written before the evaluator was recorded are taken again)."""
    if not (run / files.METRICS).is_file():
        return None
    metrics = json.loads((run / files.METRICS).read_text())
    current = metrics.get("split") == split and metrics.get("evaluator") == DEFAULT_EVALUATOR
    return metrics if current else None


def _rows(variant: str, questions: pd.DataFrame, metrics: dict, summary: dict) -> list[dict]:
    extra = {
        "seed": summary.get("seed"),
        "validation": summary.get("best_val_vqa_score"),
        "parameters": summary.get("parameters", 0),
        "seconds_per_epoch": summary.get("seconds_per_epoch"),
        "best_epoch": summary.get("best_epoch"),
        "epochs_run": summary.get("epochs_run"),
        **{k: summary[k] for k in FLOW_COLUMNS if k in summary},  # log_gradient_flow runs
    }
    rows = [
        {
            "variant": variant,
            "question_type": "overall",
            "accuracy": metrics["overall"],
            "n_questions": len(questions),
            **extra,
        }
    ]
    for key, column in (
        ("per_question_group", "question_group"),
        ("per_question_type", "question_type"),
    ):
        if key not in metrics:
            continue
        counts = questions[column].value_counts()
        rows += [
            {
                "variant": variant,
                "question_type": name,
                "accuracy": acc,
                "n_questions": int(counts[name]),
                **extra,
            }
            for name, acc in metrics[key].items()
        ]
    return rows


def _write(
    table: pd.DataFrame,
    dataset: PreparedDataset,
    split: str,
    questions: pd.DataFrame,
    curves: dict,
    predictions: dict,
    out: Path,
    flows: dict,
) -> None:
    from vqa.training.gradient_flow import plot_variants
    from vqa.visualize import plot_confusion, plot_curves

    out.mkdir(parents=True, exist_ok=True)
    stem = dataset.name
    csv = out / "table.csv"
    with atomic_write(csv) as tmp:
        table.to_csv(tmp, index=False)
    pngs = []
    if curves:
        pngs.append(
            plot_curves(curves, out / "curves.png", f"{stem}: validation accuracy per epoch")
        )
    if flows:
        title = f"{stem}: gradient reaching each word (each variant's first seed)"
        pngs.append(plot_variants(flows, out / "gradient-flow.png", title))
    answers = questions["answer"]
    if answers.nunique() <= MAX_CONFUSION_ANSWERS:
        for name, rows in predictions.items():
            predicted = {r["question_id"]: r["answer"] for r in rows}
            pngs.append(
                plot_confusion(
                    answers,
                    [predicted[int(q)] for q in questions["question_id"]],
                    out / f"confusion-{_slug(name)}.png",
                    f"{stem} / {name}: confusion on {split} (% of row)",
                )
            )
    md = out / "README.md"
    write_text(md, _markdown(table, dataset, split, pngs))
    log.info("wrote %s, %s and %d plots", csv, md, len(pngs))


def _command(dataset: PreparedDataset) -> str:
    """The command line that made the table, with the dataset shown as DATA."""
    program = Path(sys.argv[0])
    if program.name != "vqa" and program.parent.name + "/" + program.name != "vqa/__main__.py":
        return "(the Python API: vqa.evaluation.compare.compare)"  # not `vqa` nor `python -m vqa`
    args = ["DATA" if Path(a).resolve() == dataset.root.resolve() else a for a in sys.argv[1:]]
    return " ".join(["vqa"] + [shlex.quote(a) for a in args])


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name)


def _markdown(table: pd.DataFrame, dataset: PreparedDataset, split: str, pngs: list) -> str:
    mean = table.pivot_table(
        index="variant", columns="question_type", values="accuracy", aggfunc="mean", sort=False
    )
    spread = table.pivot_table(
        index="variant", columns="question_type", values="accuracy", aggfunc="std", sort=False
    )
    firsts = ["overall"] + [c for c in ("relational", "non_relational") if c in mean.columns]
    order = firsts + [c for c in mean.columns if c not in firsts]
    mean, spread = mean[order], spread.reindex(index=mean.index, columns=order)
    runs = table[table["question_type"] == "overall"].groupby("variant", sort=False)
    seeds = runs.size().max()
    n = int(table.loc[table["question_type"] == "overall", "n_questions"].iloc[0])
    what = (
        f"the mean ± standard deviation of {seeds} seeds (each variant trained once per "
        "seed, from scratch)"
        if seeds > 1
        else "one run each"
    )
    lines = [
        f"# {dataset.name}: variants compared",
        "",
        f"Split `{split}` ({n:,} questions), official VQA accuracy in percent, {what}; "
        "the best of each column in bold. `validation` is the accuracy on the "
        "validation images (held out of training) of the epoch each run kept: what to "
        "choose a variant by. Written by:",
        "",
        "    " + _command(dataset),
        "",
        "| variant | " + " | ".join(mean.columns) + " | validation | parameters | "
        "s/epoch | best epoch |",
        "|---" * (len(mean.columns) + 5) + "|",
    ]
    best = mean.max()
    for variant, row in mean.iterrows():
        cells = []
        for column, value in row.items():
            text = f"{value:.2f}"
            if seeds > 1 and pd.notna(spread.loc[variant, column]):
                text += f" ± {spread.loc[variant, column]:.2f}"
            cells.append(f"**{text}**" if value == best[column] else text)
        if variant == ANSWER_PRIOR:
            extra = ["-"] * 4
        else:
            group = runs.get_group(variant)
            val = group["validation"].astype(float)
            extra = [
                f"{val.mean():.2f}" + (f" ± {val.std():.2f}" if len(val) > 1 else ""),
                f"{int(group['parameters'].iloc[0]):,}",
                f"{group['seconds_per_epoch'].astype(float).mean():.1f}",
                ", ".join(
                    f"{int(b)} of {int(e)}"
                    for b, e in zip(group["best_epoch"], group["epochs_run"])
                ),
            ]
        lines.append(f"| {variant} | " + " | ".join(cells + extra) + " |")
    lines += [
        "",
        "The answer prior gives each question type's most frequent training "
        "answer: what can be had without looking at the image or reading past the "
        "question's first words.",
        "",
    ]
    lines += _flow_table(table)
    lines += [f"![{p.stem}]({p.name})" for p in pngs]
    return "\n".join(lines) + "\n"


def _flow_table(table: pd.DataFrame) -> list[str]:
    """The gradient-flow table of runs trained with log_gradient_flow: per variant, the
    median over seeds of the first-to-last ratios, the largest norm of any seed."""
    if not set(FLOW_COLUMNS) <= set(table.columns):
        return []
    runs = table[(table["question_type"] == "overall") & table[FLOW_COLUMNS[2]].notna()]
    lines = [
        "Gradient flow (`train.log_gradient_flow`, on one fixed training batch): the mean "
        "gradient norm at the questions' first words over that at their last words, "
        "before training and at the last probe (the median over seeds; none: no gradient "
        "reached any word), and the largest global gradient norm before clipping over "
        "all probes and seeds.",
        "",
        "| variant | first/last before training | first/last after | largest norm |",
        "|---|---|---|---|",
    ]
    for variant, group in runs.groupby("variant", sort=False):
        start, end = (group[c].astype(float).median() for c in FLOW_COLUMNS[:2])
        start, end = ("none" if np.isnan(v) else f"{v:.2g}" for v in (start, end))
        lines.append(f"| {variant} | {start} | {end} | {group[FLOW_COLUMNS[2]].max():.3g} |")
    return lines + [""]
