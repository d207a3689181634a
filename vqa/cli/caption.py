"""The captioning side of the `vqa` command: train, evaluate and score a caption
decoder, and `vqa caption RUN IMAGE`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vqa.cli.answer import load_keras

DECODE_HELP = (
    "greedy (the most probable word each step), sample (drawn, at "
    "--temperature; --seed makes it repeatable) or beam (--beam-size)"
)


def add_decoding_arguments(parser: argparse.ArgumentParser, default: str = "greedy") -> None:
    parser.add_argument(
        "--decode",
        default=default,
        choices=("greedy", "sample", "beam"),
        help=f"captioning runs: {DECODE_HELP}",
    )
    parser.add_argument("--beam-size", type=int, default=3, help="--decode beam: beams kept")
    parser.add_argument(
        "--temperature",
        type=float,
        default=1.0,
        help="--decode sample: above 1 more varied, below 1 closer to greedy",
    )
    parser.add_argument(
        "--max-length",
        type=int,
        help="words at most (default: the run's caption.max_caption_length)",
    )
    parser.add_argument(
        "--seed", dest="decode_seed", type=int, help="--decode sample: the random seed"
    )


def decoding(args: argparse.Namespace) -> dict:
    return {
        "beam_size": args.beam_size,
        "temperature": args.temperature,
        "max_length": args.max_length,
        "seed": args.decode_seed,
    }


def evaluate(args: argparse.Namespace) -> None:
    from vqa.data.dataset import PreparedDataset

    dataset = PreparedDataset.load(args.data)
    dataset.caption_split(args.split)  # checked before TensorFlow loads
    load_keras()
    from vqa.evaluation import evaluate_captioner, evaluation_dir, format_caption_metrics

    metrics = evaluate_captioner(args.run_dir, dataset, args.split, args.decode, **decoding(args))
    print(json.dumps(metrics, indent=2) if args.json else format_caption_metrics(metrics))
    kept = evaluation_dir(args.run_dir, dataset, args.split, own_split="test")
    print(f"kept in {kept}", file=sys.stderr)


def is_caption_results(path: str | Path) -> bool:
    """Whether a results file holds captions ([{"image_id", "caption"}]) rather than
    answers; a file that cannot be read is left to the answers' reader to report."""
    try:
        rows = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return False
    return (
        isinstance(rows, list) and bool(rows) and isinstance(rows[0], dict) and "caption" in rows[0]
    )


def score(args: argparse.Namespace) -> None:
    from vqa.data.dataset import PreparedDataset
    from vqa.evaluation import format_caption_metrics, score_captions_of

    dataset = PreparedDataset.load(args.data)
    metrics = score_captions_of(dataset, args.split, json.loads(Path(args.results).read_text()))
    print(json.dumps(metrics, indent=2) if args.json else format_caption_metrics(metrics))


def cmd_caption(args: argparse.Namespace) -> None:
    from vqa.data.images import open_image
    from vqa.runs.files import NEEDED_TO_CAPTION, check_run_dir

    check_run_dir(args.run_dir, NEEDED_TO_CAPTION)
    image = open_image(args.image)  # checked before TensorFlow loads
    load_keras()
    from vqa.captioning import Captioner

    captioner = Captioner.load(args.run_dir)
    kwargs = decoding(args)
    result = (
        captioner.explain(image, args.explain, args.decode, **kwargs)
        if args.explain
        else captioner.caption(image, args.decode, **kwargs)
    )
    if args.json:
        print(json.dumps(result.to_dict()))
        return
    print(result.caption)
    print("  " + " ".join(f"{w.word} ({w.probability:.0%})" for w in result.words))
    for warning in result.warnings:
        print(f"  note: {warning}")
    if args.explain:
        print(f"where the model looked, word by word: {args.explain}")


def add_parser(sub) -> None:
    p = sub.add_parser("caption", help="describe an image with a captioning run")
    p.add_argument("run_dir", help="a captioning run directory (caption: {decoder: ...})")
    p.add_argument("image", help="image file")
    add_decoding_arguments(p)
    p.add_argument(
        "--explain",
        metavar="PNG",
        help="also write the image with one attention overlay per word under it",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print the caption, each word's probability and attention as JSON",
    )
    p.set_defaults(func=cmd_caption)
