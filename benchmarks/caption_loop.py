"""Teacher forcing as one symbolic loop (`keras.ops.scan`) against the loop unrolled in
Python, for a caption config: what tracing costs and what an epoch costs.

    python benchmarks/caption_loop.py [CONFIG] [--captions 512] [--vocab 60]
        [--out experiments/results/caption-loop.json]

CONFIG (default: experiments/configs/scenes-captions/attention-no-penalty.yaml) is built
with `build_captioner` on random images and captions of its sizes, and compiled as `vqa
train` compiles a captioner. Each way runs in its own process (nothing traced is shared)
and reports: the first `fit` of one epoch (tracing the train function, then the epoch),
an epoch after it, and the first `evaluate` (tracing the test function, then one pass).
The unrolled way is the decoder with `symbolic_loop = False`, as the hard decoder runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

DEFAULT = "experiments/configs/scenes-captions/attention-no-penalty.yaml"


def measure(config_path: str, captions: int, vocab: int, symbolic: bool) -> dict:
    """Seconds of the first fit, a later epoch and the first evaluate, in this process."""
    import keras
    import numpy as np

    from vqa.config import load_config
    from vqa.models import build_captioner
    from vqa.models.decoders import CaptionDecoder

    CaptionDecoder.symbolic_loop = symbolic
    config = load_config(config_path)
    model_config, train = config.model, config.train
    keras.utils.set_random_seed(0)
    model = build_captioner(model_config, vocab_size=vocab)
    rng = np.random.default_rng(0)
    size, length = model_config.image_size, model_config.max_caption_length
    tokens = rng.integers(1, vocab, (captions, length)).astype("int32")
    x = {
        "image": rng.integers(0, 256, (captions, size, size, 3)).astype("float32"),
        "caption": tokens,
    }
    y = np.roll(tokens, -1, axis=1)
    model.compile(
        optimizer=keras.optimizers.Adam(train.learning_rate, clipnorm=train.clip_norm),
        loss="sparse_categorical_crossentropy",
    )
    seconds = {}
    start = time.perf_counter()
    model.fit(x, y, batch_size=train.batch_size, epochs=1, verbose=0)
    seconds["first_fit"] = time.perf_counter() - start
    start = time.perf_counter()
    model.fit(x, y, batch_size=train.batch_size, epochs=1, verbose=0)
    seconds["epoch_after"] = time.perf_counter() - start
    start = time.perf_counter()
    model.evaluate(x, y, batch_size=train.batch_size, verbose=0)
    seconds["first_evaluate"] = time.perf_counter() - start
    return {k: round(v, 2) for k, v in seconds.items()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", nargs="?", default=DEFAULT)
    parser.add_argument("--captions", type=int, default=512)
    parser.add_argument("--vocab", type=int, default=60)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--only", choices=("scan", "unrolled"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.only:  # one way, in this process
        print(json.dumps(measure(args.config, args.captions, args.vocab, args.only == "scan")))
        return
    results = {"config": args.config, "captions": args.captions, "cpus": os.cpu_count()}
    for way in ("unrolled", "scan"):
        command = [sys.executable, __file__, args.config, "--only", way]
        command += ["--captions", str(args.captions), "--vocab", str(args.vocab)]
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results[way] = json.loads(out.strip().splitlines()[-1])
        print(way, results[way], flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
