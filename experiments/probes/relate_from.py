"""Train a `relate_pick` config from a finished run of the same model without the pick.

    python experiments/probes/relate_from.py SOURCE DATA --config CONFIG --out RUN

A validation probe, not a recipe: does the relate pick learn the spatial templates once
both referents are found? `vqa train --init-from` copies only between runs of one model
config; here CONFIG is SOURCE's model with `relate_pick` (and its options) added. Every
weight is copied but the pick's relation a(q), b(q), which starts afresh, and f's
kernel, which gains one input (the pick's soft count) and starts with a zero row for
it, so that the first step computes what SOURCE did but for the pick. With
`find_sees_question: false` in CONFIG, the find's own blocks start as copies of SOURCE's
question-conditioned blocks without their FiLM. SOURCE may be a
checkpoint snapshot: a directory with the run's config.yaml, vocabularies,
validation_images.json and one epoch's model.keras. The training split is SOURCE's
seed's, so the validation images are SOURCE's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from vqa.cli.main import main as vqa_main  # noqa: E402
from vqa.training import fit, warm_start  # noqa: E402


def copy_with_pick(source, model) -> list[str]:
    fresh = warm_start.copy_weights(source, model)
    theirs, ours = source.get_layer("referent"), model.get_layer("referent")
    old = np.asarray(theirs.f.kernel)
    kernel = np.zeros(tuple(ours.f.kernel.shape), "float32")
    kernel[: old.shape[0]] = old  # the pick's count is f's last input
    ours.f.kernel.assign(kernel)
    copied = [ours.f.kernel.path]
    for key, block in zip(ours.key_convs + ours.key_norms, theirs.convs + theirs.norms):
        for to, of in zip(key.weights, block.weights):  # the blocks without their FiLM
            to.assign(np.asarray(of))
            copied.append(to.path)
    return [path for path in fresh if path not in copied]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("data", type=Path)
    parser.add_argument("--config", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    fit.init_source = lambda init_from, *_: Path(init_from)  # the model differs: the pick
    fit.copy_weights = copy_with_pick
    return vqa_main(
        ["train", str(args.data), "--config", args.config, "--out", args.out,
         "--init-from", str(args.source), "--no-bundle"]
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
