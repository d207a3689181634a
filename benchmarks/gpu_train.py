"""Train the default variant on a GPU with the JAX backend in bfloat16; print samples/s.

    KERAS_BACKEND=jax python benchmarks/gpu_train.py --out results/gpu [--batch-size 4096]

Two measurements, both through the project's own `model.fit` path (VQABatches feeding
the default model built by `build_model`):

1. Throughput at VQA v2 size: 443,757 training questions about 82,783 images, 3,000
   answers, Lite0's 7x7x1280 grid per image (float16, as `vqa extract` caches it),
   questions of up to 14 tokens from 15,000 words. The inputs are random, so only the
   speed means anything: samples/s and seconds per epoch, with the first epoch (which
   compiles) reported apart.
2. Accuracy on easy-VQA (`--easy-vqa DIR`, a prepared dataset; its Lite0 cache is
   extracted when missing): the default config with the same precision and a larger
   batch, trained by `vqa.training.train` and scored on the test split.

Results go to OUT/gpu-train.json and a table on stdout. The GPU machine has JAX but not
TensorFlow: see docs/gpu.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def throughput(args: argparse.Namespace) -> dict:
    import keras
    from scipy import sparse

    from vqa.config import ModelConfig
    from vqa.data.batches import VQABatches
    from vqa.features.backbones import model_grid_shape
    from vqa.models.builder import build_model
    from vqa.models.losses import soft_crossentropy, vqa_score

    rng = np.random.default_rng(0)
    n_q, n_img = args.questions, args.images
    config = ModelConfig()  # the default variant: Lite0 grid, LSTM, elementwise
    grid = model_grid_shape(config)  # Lite0: 7x7x1280
    print(f"generating {n_img} random {grid} float16 grids and {n_q} questions", flush=True)
    # 2,048 distinct random grids, repeated: drawing 10 GB of random numbers takes minutes.
    distinct = rng.random((min(n_img, 2048), *grid), dtype=np.float32).astype(np.float16)
    images = np.empty((n_img, *grid), np.float16)
    for start in range(0, n_img, len(distinct)):
        images[start : start + len(distinct)] = distinct[: n_img - start]
    lengths = rng.integers(4, config.max_question_length + 1, n_q)
    tokens = rng.integers(2, args.words, (n_q, config.max_question_length)).astype("int32")
    tokens[np.arange(config.max_question_length)[None, :] >= lengths[:, None]] = 0
    answers = rng.integers(0, args.answers, n_q)
    targets = sparse.csr_matrix(
        (np.ones(n_q, "float32"), (np.arange(n_q), answers)), shape=(n_q, args.answers)
    )
    batches = VQABatches(
        images,
        rng.integers(0, n_img, n_q),
        tokens,
        targets,
        batch_size=args.batch_size,
        shuffle=True,
        workers=args.workers,
    )

    model = build_model(config, args.words, args.answers, grid_shape=model_grid_shape(config))
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3), loss=soft_crossentropy, metrics=[vqa_score]
    )
    seconds: list[float] = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds.append(time.perf_counter() - self.start)

    model.fit(batches, epochs=args.epochs, verbose=2, callbacks=[Timer()])
    steady = seconds[1:] or seconds
    # The bare model: one batch already on the device, trained on again and again.
    x, y = batches[0]
    x = {k: keras.ops.convert_to_tensor(v) for k, v in x.items()}
    y = keras.ops.convert_to_tensor(y)
    model.train_on_batch(x, y)
    start, steps = time.perf_counter(), 20
    for _ in range(steps):
        out = model.train_on_batch(x, y)
    float(np.asarray(out[0] if isinstance(out, list) else out))  # wait for the device
    bare = steps * len(y) / (time.perf_counter() - start)
    return {
        "questions": n_q,
        "images": n_img,
        "answers": args.answers,
        "words": args.words,
        "grid": list(grid),
        "batch_size": args.batch_size,
        "workers": args.workers,
        "parameters": int(model.count_params()),
        "first_epoch_s": round(seconds[0], 2),
        "epoch_s": round(float(np.median(steady)), 2),
        "samples_per_s": round(n_q / float(np.median(steady))),
        "bare_model_samples_per_s": round(bare),
    }


def easy_vqa_accuracy(args: argparse.Namespace) -> dict:
    from vqa.config import Config
    from vqa.data.dataset import PreparedDataset
    from vqa.evaluation import evaluate_run
    from vqa.training import train

    dataset = PreparedDataset.load(args.easy_vqa)
    default = Config()
    # A larger batch fills the device; the learning rate grows with its square root.
    scale = args.easy_vqa_batch_size / default.train.batch_size
    config = default.with_train(
        batch_size=args.easy_vqa_batch_size,
        epochs=args.easy_vqa_epochs,
        learning_rate=default.train.learning_rate * scale**0.5,
    )
    run = Path(args.out) / "easy-vqa-run"
    start = time.perf_counter()
    summary = train(dataset, run, config, verbose=2, overwrite=True)
    metrics = evaluate_run(run, dataset, "test")
    return {
        "batch_size": config.train.batch_size,
        "learning_rate": config.train.learning_rate,
        "epochs_run": summary["epochs_run"],
        "best_epoch": summary["best_epoch"],
        "epoch_s": summary["seconds_per_epoch"],
        "samples_per_s": round(summary["n_fit_questions"] / summary["seconds_per_epoch"]),
        "wall_s_with_extraction": round(time.perf_counter() - start, 1),
        "test_accuracy": metrics["overall"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--workers", type=int, default=8, help="threads gathering batches")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument(
        "--questions",
        type=int,
        default=443_757,
        help="questions of the throughput run (0: skip it)",
    )
    parser.add_argument("--images", type=int, default=82_783)
    parser.add_argument("--answers", type=int, default=3000)
    parser.add_argument("--words", type=int, default=15_000)
    parser.add_argument("--easy-vqa", help="a prepared easy-VQA dataset to train on")
    parser.add_argument("--easy-vqa-batch-size", type=int, default=256)
    parser.add_argument("--easy-vqa-epochs", type=int, default=30)
    args = parser.parse_args(argv)

    import keras

    if args.dtype == "bfloat16":
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        import jax

        device = str(jax.devices()[0].device_kind)
    except Exception:  # another backend
        device = platform.processor() or "cpu"
    result = {
        "backend": keras.backend.backend(),
        "device": device,
        "dtype": args.dtype,
        "keras": keras.__version__,
        "command": " ".join(sys.argv),
    }
    if args.questions:
        result["vqa_v2_size"] = throughput(args)
        (out / "gpu-train.json").write_text(json.dumps(result, indent=2) + "\n")
    if args.easy_vqa:
        result["easy_vqa"] = easy_vqa_accuracy(args)
        (out / "gpu-train.json").write_text(json.dumps(result, indent=2) + "\n")

    print(f"\n{result['device']}, keras {result['keras']} on {result['backend']}, {args.dtype}")
    if "vqa_v2_size" in result:
        t = result["vqa_v2_size"]
        print(
            f"VQA-v2-sized default model, batch {t['batch_size']}: {t['samples_per_s']:,} "
            f"samples/s through fit ({t['epoch_s']} s/epoch; first epoch {t['first_epoch_s']} s); "
            f"bare model on one device-resident batch {t['bare_model_samples_per_s']:,} samples/s"
        )
    if "easy_vqa" in result:
        e = result["easy_vqa"]
        print(
            f"easy-VQA default, batch {e['batch_size']}: test accuracy {e['test_accuracy']}% "
            f"after {e['epochs_run']} epochs, {e['epoch_s']} s/epoch "
            f"({e['samples_per_s']:,} samples/s), {e['wall_s_with_extraction']} s in all"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
