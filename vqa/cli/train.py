"""`vqa train`, `vqa evaluate`, `vqa score`, `vqa compare`, `vqa demo`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vqa.cli import caption as cli_caption
from vqa.cli.answer import load_keras
from vqa.errors import RunDirError, VQAError


def cmd_train(args: argparse.Namespace) -> None:
    from vqa.config import load_config
    from vqa.data.dataset import PreparedDataset

    config = load_config(args.config)
    overrides = {k: v for k, v in (("epochs", args.epochs), ("seed", args.seed)) if v is not None}
    if args.fine_tune:
        overrides["fine_tune"] = True
    config = config.with_train(**overrides)
    if args.resume:
        from vqa.runs import files

        if args.overwrite:
            raise VQAError("--resume and --overwrite contradict each other: choose one.")
        if not (Path(args.out) / files.CHECKPOINT_DIR / files.STATE).is_file():
            raise RunDirError(
                f"Nothing to resume in {args.out}: no unfinished run with a "
                "finished epoch there. Drop --resume to start one."
            )
    from vqa.runs.files import check_new_run

    dataset = PreparedDataset.load(args.data)  # checked before TensorFlow loads
    check_new_run(args.out, args.overwrite)
    load_keras()
    from vqa.training import train
    from vqa.training.tasks import task_for

    summary = train(
        dataset,
        args.out,
        config,
        overwrite=args.overwrite,
        strategy=args.strategy,
        init_from=args.init_from,
    )
    if summary["worker"] == 0:
        from vqa.export import write_run_bundle

        # `vqa ask RUN` answers from it in about a second, without TensorFlow
        bundled = not args.no_bundle and write_run_bundle(args.out) is not None
        saved = f"run saved in {args.out}" + (" (with its bundle for vqa ask)" if bundled else "")
    else:
        saved = f"worker {summary['worker']}: the chief saves the run"
    task = task_for(config)
    print(
        f"best epoch {summary['best_epoch']} of {summary['epochs_run']}: validation "
        f"{task.measure} {summary[f'best_{task.monitor}']:.2f}%, "
        f"{summary['seconds_per_epoch']:.1f} s/epoch; {saved}"
    )


def cmd_evaluate(args: argparse.Namespace) -> None:
    from vqa.data.dataset import PreparedDataset
    from vqa.evaluation import check_split, evaluate_run, evaluation_dir, format_metrics

    dataset = PreparedDataset.load(args.data)
    check_split(args.run_dir, dataset, args.split)  # before TensorFlow loads
    load_keras()
    metrics = evaluate_run(
        args.run_dir,
        dataset,
        args.split,
        args.evaluator,
        decode=args.decode,
        **cli_caption.decoding(args),
    )
    print(json.dumps(metrics, indent=2) if args.json else format_metrics(metrics))
    print(f"kept in {evaluation_dir(args.run_dir, dataset, args.split)}", file=sys.stderr)


def cmd_score(args: argparse.Namespace) -> None:
    from vqa.evaluation import format_metrics, score_results_file

    metrics = score_results_file(args.data, args.split, args.results, args.evaluator)
    print(json.dumps(metrics, indent=2) if args.json else format_metrics(metrics))


def cmd_compare(args: argparse.Namespace) -> None:
    from vqa.data.dataset import PreparedDataset
    from vqa.evaluation.compare import check_split

    dataset = PreparedDataset.load(args.data)  # everything checked before TensorFlow loads
    if args.split:
        check_split(dataset, args.configs, args.split)
    seeds = None
    if args.seeds:
        try:
            seeds = [int(s) for s in args.seeds.split(",")]
        except ValueError:
            raise VQAError(
                f"--seeds takes whole numbers with commas, e.g. 0,1,2. Received: {args.seeds!r}"
            ) from None
        if len(set(seeds)) != len(seeds) or min(seeds) < 0:
            raise VQAError(f"--seeds must be distinct and >= 0. Received: {args.seeds!r}")
    load_keras()
    from vqa.evaluation.compare import compare, headline

    table = compare(
        dataset,
        args.configs,
        runs=args.runs,
        results=args.results,
        split=args.split,
        force=args.force,
        epochs=args.epochs,
        seeds=seeds,
    )
    print("\n".join(headline(table)))
    results = Path(args.results or Path("experiments/results") / dataset.name)
    print(f"tables and plots in {results / 'README.md'}")


def cmd_demo(args: argparse.Namespace) -> None:
    load_keras()
    from vqa.cli.demo import run_demo

    run_demo(args.out, args.epochs)
