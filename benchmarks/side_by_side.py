"""easy-VQA: the published reference Keras model and our default, side by side.

    python benchmarks/side_by_side.py --data DATA [--out experiments/results/side-by-side]

DATA is a prepared easy-VQA (`vqa prepare easy-vqa --out DATA`). Each model trains in
its own process, one after the other, so that each one's peak memory is its own:

- ours: `vqa.training.train` with the default config, from the raw images: the feature
  cache is extracted in the run (from a copy of DATA without one), and the Lite0 weights
  are converted in an empty weights cache, so both count in its time;
- reference: the model of the published easy-VQA Keras example, as its description
  gives it: 64x64 images scaled to [-0.5, 0.5], Conv2D 8 -> max-pool -> Conv2D 16 ->
  max-pool (no activations) -> flatten -> Dense 32 tanh; the question as a bag of words
  -> Dense 32 tanh -> Dense 32 tanh; their elementwise product -> Dense 32 tanh ->
  softmax; Adam 5e-4, batch 32.

After every epoch both are scored on the test split (exact match, which is the VQA
accuracy on easy-VQA's single answers); scoring time is left out of the wall times.
Wall times run from the start of the model's process (imports included). Writes
OUT.json and OUT.md and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET = 85.0  # percent: the accuracy both are timed to


def _report(line: dict) -> None:
    print("RESULT " + json.dumps(line), flush=True)


class _TestScore:
    """A keras callback scoring the test split after every epoch; made lazily."""

    @staticmethod
    def make(score, start: float):
        import keras

        class TestScore(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.scoring = 0.0  # seconds spent scoring, left out of the wall time

            def on_train_begin(self, logs=None):  # imports, weights, features: all before
                _report({"train_begin_s": round(time.perf_counter() - start, 1)})

            def on_epoch_end(self, epoch, logs=None):
                t = time.perf_counter()
                accuracy = score(self.model)
                self.scoring += time.perf_counter() - t
                _report(
                    {
                        "epoch": epoch + 1,
                        "test_accuracy": round(accuracy, 2),
                        "wall_s": round(time.perf_counter() - start - self.scoring, 1),
                    }
                )

        return TestScore()


def without_features(data: Path, copy: Path) -> Path:
    """`copy`: the prepared easy-VQA in `data` without its feature cache (its tables
    copied, its images linked)."""
    copy.mkdir()
    for name in ("questions.parquet", "images.parquet", "meta.json"):
        shutil.copy(data / name, copy / name)
    (copy / "images").symlink_to((data / "images").resolve())
    return copy


def run_ours(data: Path, work: Path, start: float) -> None:
    os.environ["VQA_CACHE"] = str(work / "weights-cache")  # the conversion counts too
    copy = without_features(data, work / "easy-vqa")

    import keras  # noqa: F401

    from vqa.config import Config
    from vqa.data.batches import VQABatches
    from vqa.data.dataset import PreparedDataset
    from vqa.data.text import Vocabulary
    from vqa.features.cache import FeatureCache
    from vqa.runs import files
    from vqa.training import train

    dataset = PreparedDataset.load(copy)
    test = dataset.split("test")
    run = work / "run"
    state = {}

    def score(model) -> float:
        if "batches" not in state:  # the cache exists once training has started
            settings = Config().for_dataset(dataset).model
            cache = FeatureCache.open(dataset, settings.backbone, settings.backbone_image_size)
            words = Vocabulary.load(run / files.QUESTION_VOCAB)
            state["answers"] = Vocabulary.load(run / files.ANSWER_VOCAB)
            state["batches"] = VQABatches.from_questions(
                test, cache, cache.rows, words, Config().model.max_question_length, batch_size=256
            )
        probs = model.predict(state["batches"], verbose=0)
        best = [state["answers"].tokens[i] for i in probs.argmax(-1)]
        return 100 * float(np.mean(np.asarray(best) == test["answer"].to_numpy()))

    train(dataset, run, Config(), verbose=0, callbacks=[_TestScore.make(score, start)])


def run_reference(data: Path, epochs: int, start: float) -> None:
    import keras
    from PIL import Image

    from vqa.data.dataset import PreparedDataset
    from vqa.data.text import tokenize

    dataset = PreparedDataset.load(data)
    train, test = dataset.split("train"), dataset.split("test")
    words = sorted({w for q in train["question"] for w in tokenize(q)})
    word_index = {w: i for i, w in enumerate(words)}
    answers = sorted(train["answer"].unique())
    answer_index = {a: i for i, a in enumerate(answers)}

    pixels = {}

    def inputs(df):
        for image_id in df["image_id"].unique():
            if image_id not in pixels:
                with Image.open(dataset.image_path(image_id)) as img:
                    pixels[image_id] = (
                        np.asarray(img.convert("RGB").resize((64, 64)), "float32") / 255 - 0.5
                    )
        bags = np.zeros((len(df), len(words)), "float32")
        for row, question in enumerate(df["question"]):
            for w in tokenize(question):
                if w in word_index:
                    bags[row, word_index[w]] = 1.0
        images = np.stack([pixels[i] for i in df["image_id"]])
        targets = keras.utils.to_categorical(
            [answer_index.get(a, 0) for a in df["answer"]], len(answers)
        )
        return [images, bags], targets

    x_train, y_train = inputs(train)
    x_test, _ = inputs(test)
    keras.utils.set_random_seed(0)
    image = keras.Input((64, 64, 3))
    x = keras.layers.Conv2D(8, 3, padding="same")(image)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(16, 3, padding="same")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Dense(32, activation="tanh")(keras.layers.Flatten()(x))
    question = keras.Input((len(words),))
    q = keras.layers.Dense(32, activation="tanh")(question)
    q = keras.layers.Dense(32, activation="tanh")(q)
    out = keras.layers.Dense(32, activation="tanh")(keras.layers.Multiply()([x, q]))
    out = keras.layers.Dense(len(answers), activation="softmax")(out)
    model = keras.Model([image, question], out)
    model.compile(keras.optimizers.Adam(5e-4), "categorical_crossentropy")

    truth = test["answer"].to_numpy()

    def score(model) -> float:
        best = np.asarray(answers)[model.predict(x_test, batch_size=256, verbose=0).argmax(-1)]
        return 100 * float(np.mean(best == truth))

    model.fit(
        x_train,
        y_train,
        batch_size=32,
        epochs=epochs,
        shuffle=True,
        verbose=0,
        callbacks=[_TestScore.make(score, start)],
    )


def worker(args: argparse.Namespace) -> int:
    start = time.perf_counter()  # before keras or TensorFlow is imported
    with tempfile.TemporaryDirectory() as work:
        if args.model == "ours":
            run_ours(Path(args.data), Path(work), start)
        else:
            run_reference(Path(args.data), args.reference_epochs, start)
    _report({"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)})
    return 0


def measure(args: argparse.Namespace, model: str) -> dict:
    print(f"training {model} ...", flush=True)
    launched = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            __file__,
            "--worker",
            model,
            "--data",
            args.data,
            "--reference-epochs",
            str(args.reference_epochs),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if proc.returncode:
        raise SystemExit(f"{model} failed:\n{proc.stderr[-3000:]}")
    lines = [
        json.loads(line[7:]) for line in proc.stdout.splitlines() if line.startswith("RESULT ")
    ]
    epochs = [line for line in lines if "epoch" in line]
    best = max(epochs, key=lambda line: line["test_accuracy"])
    reached = next((line for line in epochs if line["test_accuracy"] >= TARGET), None)
    begin = next(line["train_begin_s"] for line in lines if "train_begin_s" in line)
    return {
        "epochs": epochs,
        "peak_rss_mb": lines[-1]["peak_rss_mb"],
        "train_begin_s": begin,
        "process_s": round(time.perf_counter() - launched, 1),
        "best_accuracy": best["test_accuracy"],
        "best_epoch": best["epoch"],
        "wall_s_to_best": best["wall_s"],
        "wall_s_to_85": reached["wall_s"] if reached else None,
        "epoch_reaching_85": reached["epoch"] if reached else None,
    }


def table(result: dict) -> str:
    ours, ref = result["ours"], result["reference"]

    def cell(value, unit=""):
        return "not reached" if value is None else f"{value}{unit}"

    rows = [
        "| | reference (published easy-VQA Keras model) | ours (default: Lite0 features at "
        "64 px, LSTM, elementwise) |",
        "|---|---|---|",
        f"| wall time before the first training step (imports, inputs; ours includes "
        f"converting the Lite0 weights and extracting every image's grid) | "
        f"{ref['train_begin_s']} s | "
        f"{ours['train_begin_s']} s |",
        f"| test accuracy per epoch | {', '.join(str(e['test_accuracy']) for e in ref['epochs'])} "
        f"| {', '.join(str(e['test_accuracy']) for e in ours['epochs'])} |",
        f"| wall time to {TARGET:.0f}% test accuracy | {cell(ref['wall_s_to_85'], ' s')} "
        f"(epoch {cell(ref['epoch_reaching_85'])}) | {cell(ours['wall_s_to_85'], ' s')} "
        f"(epoch {cell(ours['epoch_reaching_85'])}) |",
        f"| best test accuracy, and wall time to it | {ref['best_accuracy']}% at epoch "
        f"{ref['best_epoch']}, {ref['wall_s_to_best']} s | {ours['best_accuracy']}% at epoch "
        f"{ours['best_epoch']}, {ours['wall_s_to_best']} s |",
        f"| peak memory (max RSS of its process) | {ref['peak_rss_mb']} MB "
        f"| {ours['peak_rss_mb']} MB |",
    ]
    if ref["wall_s_to_85"] and ours["wall_s_to_85"]:
        rows.append(
            f"\nOurs reaches {TARGET:.0f}% in {ours['wall_s_to_85'] / ref['wall_s_to_85']:.3f} "
            "of the reference's wall time."
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="a prepared easy-VQA dataset")
    parser.add_argument("--out", default="experiments/results/side-by-side")
    parser.add_argument("--reference-epochs", type=int, default=20)
    parser.add_argument("--worker", choices=["ours", "reference"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        args.model = args.worker
        return worker(args)
    result = {
        "command": "python benchmarks/side_by_side.py --data DATA"
        + (f" --reference-epochs {args.reference_epochs}" if args.reference_epochs != 20 else ""),
        "cpu_cores": os.cpu_count(),
        "reference": measure(args, "reference"),
        "ours": measure(args, "ours"),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    text = table(result)
    out.with_suffix(".md").write_text(
        f"# easy-VQA: the reference model and ours, side by side\n\n"
        f"{os.cpu_count()} CPU cores, one process each, one after the other. Written by:\n\n"
        f"    {result['command']}\n\n{text}\n"
    )
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
