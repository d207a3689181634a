"""The exported bundle against its run: time to the first answer from a new process, the
latency of one answer, and whether they agree on every test question.

    python benchmarks/runtime.py RUN_DIR BUNDLE DATA [--n 200] [--split test] [--out FILE]

BUNDLE is `vqa export RUN_DIR --out BUNDLE`; DATA the prepared dataset whose split is
asked (every question, for the agreement). Each side starts in a fresh Python process:
`import vqa; vqa.Answerer.load(RUN_DIR)` or `from vqa import runtime;
runtime.load(BUNDLE)`, then one answer; the process's own clock from its first line to
that answer is its time to first answer. Then n single answers (image files in,
decoding included) give the p50 and p90. Prints a table, writes JSON (default
experiments/results/runtime.json); asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Run in the child: {0} the loader's imports and call, {1} its argument.
_CHILD = """
import time
start = time.perf_counter()
import json, sys
import numpy as np
{load}
model = load({path!r})
questions = json.loads(sys.stdin.read())
first = model.answer(questions[0][0], questions[0][1])
ready = time.perf_counter() - start
times = []
for image, question in questions:
    t = time.perf_counter()
    model.answer(image, question)
    times.append(time.perf_counter() - t)
import resource
print(json.dumps({{"first_answer_s": ready, "p50_ms": 1000 * float(np.median(times)),
                  "p90_ms": 1000 * float(np.percentile(times, 90)),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "tensorflow_loaded": "tensorflow" in sys.modules}}))
"""
_LOADERS = {
    "Answerer (run dir, Keras)": "import vqa\nload = vqa.Answerer.load",
    "runtime (ONNX bundle)": "from vqa import runtime\nload = runtime.load",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("bundle")
    parser.add_argument("data")
    parser.add_argument("--split", default="test")
    parser.add_argument("--n", type=int, default=200, help="single answers to time")
    parser.add_argument("--out", default=str(ROOT / "experiments" / "results" / "runtime.json"))
    args = parser.parse_args()

    from vqa.data.dataset import PreparedDataset

    dataset = PreparedDataset.load(args.data)
    split = dataset.split(args.split)
    asked = [
        (str(dataset.image_path(i)), q)
        for i, q in zip(split["image_id"][: args.n], split["question"][: args.n])
    ]
    rows = {}
    for name, load in _LOADERS.items():
        path = args.bundle if "runtime" in name else args.run_dir
        child = subprocess.run(
            [sys.executable, "-c", _CHILD.format(load=load, path=path)],
            input=json.dumps(asked),
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        )
        if child.returncode:
            sys.exit(child.stderr)
        rows[name] = json.loads(child.stdout.strip().splitlines()[-1])
    agreement = agree(args.run_dir, args.bundle, dataset, split)
    first = [r["first_answer_s"] for r in rows.values()]
    report = {
        "run_dir": args.run_dir,
        "bundle": args.bundle,
        "data": args.data,
        "split": args.split,
        "n_timed": len(asked),
        "cpu_cores": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "sides": rows,
        "first_answer_ratio": first[1] / first[0],
        "agreement": agreement,
    }
    print(f"{'':28} {'first answer':>13} {'p50':>9} {'p90':>9} {'peak RSS':>9}  TensorFlow")
    for name, r in rows.items():
        print(
            f"{name:28} {r['first_answer_s']:11.2f} s {r['p50_ms']:6.2f} ms "
            f"{r['p90_ms']:6.2f} ms {r['peak_rss_mb']:6.0f} MB  "
            f"{'loaded' if r['tensorflow_loaded'] else 'not loaded'}"
        )
    print(f"time to first answer, runtime / Answerer: {report['first_answer_ratio']:.2f}")
    print(
        f"{args.split}: {agreement['same_top1']} of {agreement['questions']} questions with "
        f"the same top answer; probabilities differ by at most "
        f"{agreement['max_probability_difference']:.1e}"
    )
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"written: {args.out}")


def agree(run_dir: str, bundle: str, dataset, split) -> dict:
    """Both models on every question of `split` (answer_batch, every answer ranked):
    the same top answer, and the largest gap between their probabilities."""
    import vqa
    from vqa import runtime

    sides = [vqa.Answerer.load(run_dir), runtime.load(bundle)]
    images = [str(dataset.image_path(i)) for i in split["image_id"]]
    questions = list(split["question"])
    every = len(sides[0].answers.tokens)
    same, worst = 0, 0.0
    for start in range(0, len(images), 256):
        chunk = slice(start, start + 256)
        keras_side, onnx_side = (
            s.answer_batch(images[chunk], questions[chunk], top_k=every, batch_size=256)
            for s in sides
        )
        for k, o in zip(keras_side, onnx_side):
            same += k.answer == o.answer
            probabilities = dict(o.top_k)
            worst = max(worst, max(abs(p - probabilities[a]) for a, p in k.top_k))
    return {"questions": len(images), "same_top1": same, "max_probability_difference": worst}


if __name__ == "__main__":
    main()
