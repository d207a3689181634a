"""How much of a training step on cached features is spent waiting for data.

    python benchmarks/data_wait.py DATA [--steps 300] [--repeats 3]
        [--out experiments/results/data-wait.json]

DATA is a prepared dataset with its feature cache (`vqa extract DATA`). The default
model is trained through `model.fit` exactly as `vqa train` feeds it (VQABatches reading
the HDF5 cache, batch 64), and again, same model and steps, on one batch held in memory
and given again and again, which costs no reading at all. The difference between the
two step times is what the training waits for data; it is reported as a share of the
step. `__getitem__` alone (read, gather, targets) is timed too. Every figure is the
median of --repeats runs of --steps steps, after one warm-up run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="experiments/results/data-wait.json")
    args = parser.parse_args(argv)

    import keras

    from vqa.config import Config
    from vqa.data.dataset import PreparedDataset
    from vqa.features.backbones import model_grid_shape
    from vqa.features.extract import image_table
    from vqa.models import build_model, soft_crossentropy, vqa_score
    from vqa.training import build_vocabularies, encode_split

    config = Config()
    dataset = PreparedDataset.load(args.data)
    questions = dataset.split(dataset.train_split)
    words, answers = build_vocabularies(questions, config, dataset.answer_vocabulary_size)
    cache, rows = image_table(
        dataset, sorted(questions["image_id"].unique()), **config.image_inputs()
    )
    real = encode_split(
        questions, cache, rows, words, answers, config, shuffle=True, drop_unanswerable=True
    ).batches
    steps = min(args.steps, len(real))
    one_batch = real[0]

    class SameBatch(keras.utils.PyDataset):
        def __len__(self):
            return steps

        def __getitem__(self, i):
            return one_batch

    model = build_model(
        config.model, len(words), len(answers), grid_shape=model_grid_shape(config.model)
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3), loss=soft_crossentropy, metrics=[vqa_score]
    )

    def step_ms(batches) -> float:
        start = time.perf_counter()
        model.fit(batches, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)
        return 1000 * (time.perf_counter() - start) / steps

    step_ms(SameBatch())  # warm-up: traces the graph
    timings = {"cache": [], "in_memory_batch": [], "getitem": []}
    for _ in range(args.repeats):
        timings["in_memory_batch"].append(step_ms(SameBatch()))
        timings["cache"].append(step_ms(real))
        start = time.perf_counter()
        for i in range(steps):
            real[i]
        timings["getitem"].append(1000 * (time.perf_counter() - start) / steps)
    cache.close()

    median = {k: round(statistics.median(v), 2) for k, v in timings.items()}
    wait = median["cache"] - median["in_memory_batch"]
    result = {
        "command": "python benchmarks/data_wait.py DATA"
        + (f" --steps {args.steps}" if args.steps != 300 else ""),
        "dataset": dataset.name,
        "backbone": config.model.backbone,
        "batch_size": config.train.batch_size,
        "steps": steps,
        "repeats": args.repeats,
        "cpu_cores": os.cpu_count(),
        "keras_backend": keras.backend.backend(),
        "step_ms_from_cache": median["cache"],
        "step_ms_same_batch_in_memory": median["in_memory_batch"],
        "getitem_ms": median["getitem"],
        "data_wait_ms": round(wait, 2),
        "data_wait_share_of_step": round(max(wait, 0.0) / median["cache"], 3),
        "all_runs_ms": {k: [round(x, 2) for x in v] for k, v in timings.items()},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"{dataset.name}, {config.model.backbone} cache, batch {config.train.batch_size}, "
        f"{os.cpu_count()} CPU cores, median of {args.repeats} x {steps} steps"
    )
    print(f"  step, reading the cache:         {median['cache']:7.2f} ms")
    print(f"  step, one batch from memory:     {median['in_memory_batch']:7.2f} ms")
    print(f"  __getitem__ alone:               {median['getitem']:7.2f} ms")
    print(
        f"  waiting for data:                {wait:7.2f} ms = "
        f"{100 * result['data_wait_share_of_step']:.1f}% of the step"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
