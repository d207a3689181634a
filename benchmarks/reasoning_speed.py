"""Where a reasoning model's training time goes, on this machine.

    python benchmarks/reasoning_speed.py [--images 2000] [--seed 4242] [--epochs 1]
        [--configs A.yaml B.yaml ...] [--out experiments/results/reasoning-speed.json]

On a freshly generated Sort-of-CLEVR set (or --data DIR), for each config:
- seconds an epoch of `vqa train` (its history, validation included), and that time
  per training question;
- one training step on a real batch (train_on_batch, after warm-up), and inside it the
  image encoder's share (its forward and backward on the batch's images alone);
- FLOPs a question: the forward pass counted by TensorFlow's profiler (multiply-adds
  count 2), the training step taken as 3 forward passes, the image's share divided
  over its questions;
- the effective GFLOP/s of the step against this machine's float32 matmul rate
  (numpy, 2048 x 2048), measured in the same run: how far from the cores' limit it is.
With --backends, the first config's step also under TensorFlow with XLA and under JAX
(each in a process of its own).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RECIPE = "experiments/configs/sort-of-clevr/best.yaml"
BEFORE = "experiments/configs/sort-of-clevr/conditioned-cnn-recipe.yaml"


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    a @ a
    best = min(_timed(lambda: a @ a) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def a_batch(data: Path, config, n: int = 256):
    """One grouped training batch of the set, as the fit loop makes it."""
    from vqa.data.dataset import PreparedDataset
    from vqa.features.extract import image_table
    from vqa.training import build_vocabularies, encode_split

    dataset = PreparedDataset.load(data)
    questions = dataset.split("train")
    questions = questions[questions["image_id"].isin(questions["image_id"].unique()[:200])]
    words, answers = build_vocabularies(questions, config)
    images, rows = image_table(
        dataset, sorted(questions["image_id"].unique()), **config.image_inputs()
    )
    split = encode_split(
        questions.reset_index(drop=True),
        images,
        rows,
        words,
        answers,
        config.with_train(batch_size=n, group_by_image=True),
        shuffle=True,
        drop_unanswerable=True,
    )
    return split.batches[0], len(words), len(answers)


def forward_flops(fn, *specs) -> int:
    """Float operations of one forward call, by TensorFlow's graph profiler."""
    import tensorflow as tf
    from tensorflow.python.profiler import model_analyzer, option_builder

    graph = tf.function(fn).get_concrete_function(*specs).graph
    options = option_builder.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return int(model_analyzer.profile(graph, options=options).total_float_ops)


def step_profile(config_path: str, data: Path, jit: bool = False, repeats: int = 20) -> dict:
    """Step time, the image encoder's share of it, FLOPs a question, for one config."""
    import keras

    from vqa.config import load_config
    from vqa.models import build_model, soft_crossentropy

    config = load_config(config_path)
    (x, y), n_words, n_answers = a_batch(data, config)
    model = build_model(config.model, n_words, n_answers)
    model.compile(optimizer="adam", loss=soft_crossentropy, jit_compile=jit)
    for _ in range(3):
        model.train_on_batch(x, y)
    step = min(_timed(lambda: model.train_on_batch(x, y)) for _ in range(repeats))
    n_questions, n_images = len(x["question"]), len(x["image"])
    out = {
        "config": config_path,
        "backend": keras.backend.backend(),
        "jit": jit,
        "batch_questions": n_questions,
        "batch_images": n_images,
        "step_ms": round(1000 * step, 2),
        "questions_per_s": round(n_questions / step),
    }
    if keras.backend.backend() != "tensorflow" or jit:
        return out
    import tensorflow as tf

    specs = {k: tf.TensorSpec(v.shape, v.dtype) for k, v in x.items()}
    total = forward_flops(lambda inputs: model(inputs, training=False), specs)
    image, image_step = 0, 0.0  # the conditioned CNN's image work is all per question
    if config.model.image_encoder != "conditioned_cnn":
        encoder = model.get_layer("image_encoder")
        images = tf.constant(x["image"])

        @tf.function
        def encoder_step():
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(encoder(images, training=True))
            return tape.gradient(loss, encoder.trainable_variables)

        for _ in range(3):
            encoder_step()
        image_step = min(_timed(encoder_step) for _ in range(repeats))
        image = forward_flops(lambda i: encoder(i, training=False), specs["image"])
    per_question = (total - image) / n_questions
    per_image_share = image / n_questions  # each image's work over its questions
    out.update(
        {
            "image_encoder_ms": round(1000 * image_step, 2),
            "forward_mflops_per_question": round((per_question + per_image_share) / 1e6, 3),
            "forward_mflops_per_question_image_share": round(per_image_share / 1e6, 3),
            "train_gflops_per_step": round(3 * total / 1e9, 3),
            "effective_gflops": round(3 * total / step / 1e9, 2),
        }
    )
    return out


def epoch_seconds(config_path: str, data: Path, epochs: int) -> dict:
    """`vqa train` for `epochs` epochs; its history's seconds an epoch."""
    import pandas as pd

    from vqa.config import load_config
    from vqa.training import train

    config = load_config(config_path)
    # The recipe's own plan (its warm-up included) cut short: the same work an epoch.
    config = config.with_train(epochs=epochs, warmup_epochs=0.0)
    with tempfile.TemporaryDirectory() as tmp:
        summary = train(data, Path(tmp) / "run", config, verbose=0)
        history = pd.read_csv(Path(tmp) / "run" / "history.csv")
    seconds = history["seconds"].tolist()
    return {
        "epoch_seconds": [round(s, 1) for s in seconds],
        "fit_questions": summary["n_fit_questions"],
        "ms_per_fit_question": round(1000 * min(seconds) / summary["n_fit_questions"], 3),
    }


def in_process(argv: list[str], env: dict | None = None) -> dict:
    """One measurement in a fresh process (another backend, or a clean one)."""
    result = subprocess.run(
        [sys.executable, __file__, *argv],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    if result.returncode != 0:
        return {"error": result.stderr.strip().splitlines()[-1:]}
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, help="a prepared set (default: generate one)")
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=4242)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--configs", nargs="+", default=[RECIPE, BEFORE])
    parser.add_argument(
        "--backends", action="store_true", help="the first config's step under TF+XLA and JAX too"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("experiments/results/reasoning-speed.json")
    )
    parser.add_argument("--step-only", nargs=2, metavar=("CONFIG", "JIT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.step_only:
        print(json.dumps(step_profile(args.step_only[0], args.data, args.step_only[1] == "1")))
        return 0

    from data_prep.sort_of_clevr import prepare

    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            data = Path(tmp) / "sort-of-clevr"
            prepare(data, images=args.images, seed=args.seed)
        report = {
            "data": str(args.data or f"sort-of-clevr, {args.images} images, seed {args.seed}"),
            "cpu_cores": os.cpu_count(),
            "matmul_gflops": round(matmul_gflops(), 1),
            "models": [],
        }
        print(f"numpy float32 matmul: {report['matmul_gflops']} GFLOP/s", flush=True)
        for config in args.configs:
            row = in_process(["--data", str(data), "--step-only", config, "0"])
            if "effective_gflops" in row:
                row["fraction_of_matmul"] = round(
                    row["effective_gflops"] / report["matmul_gflops"], 3
                )
            row.update(epoch_seconds(config, data, args.epochs))
            print(json.dumps(row), flush=True)
            report["models"].append(row)
        if args.backends:
            config = args.configs[0]
            report["backends"] = [
                in_process(["--data", str(data), "--step-only", config, "1"]),
                in_process(
                    ["--data", str(data), "--step-only", config, "1"], {"KERAS_BACKEND": "jax"}
                ),
            ]  # Keras compiles every JAX step
            print(json.dumps(report["backends"]), flush=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
