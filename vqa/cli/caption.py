"""`vqa caption RUN IMAGE`, and the decoding options it shares with `vqa evaluate`
(training, evaluating and scoring are one command each for both tasks)."""

from __future__ import annotations

import argparse
import json

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
