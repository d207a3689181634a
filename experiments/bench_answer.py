"""Answering speed of a trained run: load time, single-question latency, batch throughput.

    python experiments/bench_answer.py RUN_DIR DATA [--n 200]

Prints numbers; asserts nothing. Used for the README's latency figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("data")
    parser.add_argument("--n", type=int, default=200, help="single questions to time")
    args = parser.parse_args()

    from vqa import Answerer, PreparedDataset

    start = time.perf_counter()
    answerer = Answerer.load(args.run_dir)
    load_s = time.perf_counter() - start
    dataset = PreparedDataset.load(args.data)
    test = dataset.split("test")
    rows = test.head(args.n)
    paths = [dataset.image_path(i) for i in rows["image_id"]]
    answerer.answer(paths[0], rows["question"].iloc[0])  # warm-up: first call traces
    latencies = []
    for path, question in zip(paths, rows["question"]):
        t = time.perf_counter()
        answerer.answer(path, question)
        latencies.append(1000 * (time.perf_counter() - t))
    start = time.perf_counter()
    answerer.predict_dataset(dataset, test)
    batch_s = time.perf_counter() - start
    latencies.sort()
    print(f"load run dir:          {load_s:.2f} s")
    print(f"answer() latency:      median {statistics.median(latencies):.1f} ms, "
          f"p95 {latencies[int(0.95 * len(latencies)) - 1]:.1f} ms over {len(latencies)} calls "
          "(path in, image decode included)")
    print(f"predict_dataset:       {len(test)} questions in {batch_s:.1f} s "
          f"({len(test) / batch_s:.0f} questions/s, image loading included)")


if __name__ == "__main__":
    main()
