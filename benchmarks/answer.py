"""Answering speed of a trained run: load time, then latency and throughput of `answer`
(batch 1) and `answer_batch` (batches of 8 and 64), image files in (decoding included).

    python benchmarks/answer.py RUN_DIR DATA [--n 200] [--out FILE]

DATA is the prepared dataset whose test images and questions are asked. Prints a table
and writes it as JSON (default experiments/results/answer-latency.json); asserts nothing.
Used for the latency figures in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

BATCH_SIZES = (1, 8, 64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("data")
    parser.add_argument(
        "--n",
        type=int,
        default=200,
        help="single questions to time; batches of 8 get n/4 calls, of 64 n/10",
    )
    parser.add_argument(
        "--out",
        default=str(
            Path(__file__).resolve().parents[1] / "experiments" / "results" / "answer-latency.json"
        ),
    )
    args = parser.parse_args()

    start = time.perf_counter()
    import keras

    from vqa import Answerer, PreparedDataset

    import_s = time.perf_counter() - start
    start = time.perf_counter()
    answerer = Answerer.load(args.run_dir)
    load_s = time.perf_counter() - start
    dataset = PreparedDataset.load(args.data)
    test = dataset.split("test")
    paths = [dataset.image_path(i) for i in test["image_id"]]
    questions = list(test["question"])
    start = time.perf_counter()
    answerer.answer(paths[0], questions[0])  # the first call traces the graph
    first_s = time.perf_counter() - start

    rows, offset = [], 0
    for size in BATCH_SIZES:
        calls = {1: args.n, 8: max(10, args.n // 4), 64: max(10, args.n // 10)}[size]

        def batch(i: int, size=size, offset=offset) -> tuple[list, list]:
            picked = [(offset + i * size + j) % len(paths) for j in range(size)]
            return [paths[k] for k in picked], [questions[k] for k in picked]

        for i in range(2):  # warm-up: a new batch size may trace again
            answerer.answer_batch(*batch(i))
        latencies = []
        for i in range(calls):
            images, asked = batch(i)
            t = time.perf_counter()
            if size == 1:
                answerer.answer(images[0], asked[0])
            else:
                answerer.answer_batch(images, asked)
            latencies.append(time.perf_counter() - t)
        offset += calls * size
        latencies = np.array(latencies)
        rows.append(
            {
                "batch_size": size,
                "calls": calls,
                "p50_ms": round(1000 * float(np.percentile(latencies, 50)), 1),
                "p99_ms": round(1000 * float(np.percentile(latencies, 99)), 1),
                "answers_per_s": round(size * calls / float(latencies.sum()), 1),
            }
        )

    config = answerer.config.model
    model = (
        f"{config.backbone} backbone"
        if config.image_encoder == "pretrained"
        else f"small CNN {config.image_size} px"
    ) + (f", {config.attention_hops}-hop attention" if config.attention_hops else "")
    print(
        f"run: {args.run_dir} ({model}); {os.cpu_count()} CPU cores, Keras "
        f"{keras.__version__} on {keras.backend.backend()}"
    )
    print(
        f"import (TensorFlow): {import_s:.2f} s; Answerer.load: {load_s:.2f} s; "
        f"first answer (traces the graph): {first_s:.2f} s"
    )
    print("image files in, decoding included; latency per call")
    print(f"{'batch':>5}  {'calls':>5}  {'p50 ms':>7}  {'p99 ms':>7}  {'answers/s':>9}")
    for r in rows:
        print(
            f"{r['batch_size']:>5}  {r['calls']:>5}  {r['p50_ms']:>7.1f}  {r['p99_ms']:>7.1f}  "
            f"{r['answers_per_s']:>9.1f}"
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        json.dumps(
            {
                "run_dir": str(args.run_dir),
                "model": model,
                "cpu_cores": os.cpu_count(),
                "machine": platform.machine(),
                "keras": keras.__version__,
                "backend": keras.backend.backend(),
                "import_s": round(import_s, 2),
                "load_s": round(load_s, 2),
                "first_answer_s": round(first_s, 2),
                "batches": rows,
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            },
            indent=2,
        )
        + "\n"
    )
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
