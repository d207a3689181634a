"""Speed and peak memory of the main paths on this machine's CPU, one table.

    python benchmarks/cpu.py DATA RUN [--out experiments/results/cpu-benchmarks.json]
    python benchmarks/cpu.py extract DATA [--image-size N]    # one figure alone
    python benchmarks/cpu.py train DATA [--steps 40]

DATA is a prepared easy-VQA and RUN a run trained on it (`vqa demo` makes both, in
vqa-demo/easy-vqa and vqa-demo/run). Every figure is measured in a process of its own,
so that each peak memory (max RSS) is its own:

- extract: `extract_features` on every image of DATA into an empty cache (decoding,
  resizing and the Lite0 forward pass), in images/s, next to the bare forward rate of
  the same network on the same batches already decoded; at the size the default picks
  for DATA (64 px on easy-VQA) and at the ImageNet 224.
- train: the default model's training steps (`train_on_batch`, batch 64), in samples/s,
  on grids read from the feature cache, and with the frozen backbone inside the model
  on pixels decoded from the image files for every batch.
- answer: `benchmarks/answer.py RUN DATA` (latency p50/p99 of one answer, answers/s
  in batches).

Prints the table and writes it as JSON; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from side_by_side import without_features  # noqa: E402  (benchmarks/, this script's folder)


def _peak_mb() -> int:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def measure_extract(data: str, image_size: int) -> dict:
    import keras

    from vqa.data.dataset import PreparedDataset
    from vqa.features.backbones import get_backbone
    from vqa.features.cache import Manifest, input_size
    from vqa.features.extract import extract_features

    source = PreparedDataset.load(data)
    size = input_size(source, image_size)
    with tempfile.TemporaryDirectory() as work:
        dataset = PreparedDataset.load(without_features(source.root, Path(work) / "data"))
        spec = get_backbone("efficientnet_lite0", size)
        start = time.perf_counter()
        model = spec.build(include_top=False)  # the weights are converted already
        build_s = time.perf_counter() - start
        start = time.perf_counter()
        path = extract_features(dataset, "efficientnet_lite0", image_size=size, progress=False)
        extract_s = time.perf_counter() - start
        batch = Manifest.read(path.with_suffix(".json")).batch_size
    n = len(source.images)
    ids = sorted(source.images.index)[: 4 * batch]  # the same batches, decoded first
    pixels = spec.load_pixels([source.image_path(i) for i in ids]).astype("float32")
    batches = [pixels[i : i + batch] for i in range(0, len(pixels), batch)]
    model.predict_on_batch(batches[0])  # traces the graph
    start = time.perf_counter()
    for decoded in batches:
        model.predict_on_batch(decoded)
    forward = len(pixels) / (time.perf_counter() - start)
    return {
        "figure": "extract",
        "image_size": size,
        "images": n,
        "batch_size": batch,
        "extract_s": round(extract_s, 1),
        "extract_images_per_s": round(n / extract_s, 1),
        "bare_forward_images_per_s": round(forward, 1),
        "build_s": round(build_s, 2),
        "keras": keras.__version__,
        "peak_rss_mb": _peak_mb(),
    }


def measure_train(data: str, steps: int) -> dict:
    import keras
    import numpy as np

    from vqa.config import Config
    from vqa.data.dataset import PreparedDataset
    from vqa.features.backbones import get_backbone, model_grid_shape
    from vqa.features.extract import image_table
    from vqa.models import build_model, soft_crossentropy
    from vqa.models.builder import model_inputs
    from vqa.training import build_vocabularies

    dataset = PreparedDataset.load(data)
    config = Config().for_dataset(dataset)
    train = dataset.split(dataset.train_split)
    words, answers = build_vocabularies(train, config, dataset.answer_vocabulary_size)
    batch = config.train.batch_size
    rng = np.random.default_rng(0)
    rows = [rng.choice(len(train), batch, replace=False) for _ in range(steps + 1)]
    tokens = words.encode_questions(train["question"], config.model.max_question_length)
    targets = np.eye(len(answers), dtype="float32")[[answers.index[a] for a in train["answer"]]]
    result = {
        "figure": "train",
        "image_size": config.model.backbone_image_size,
        "batch_size": batch,
        "steps": steps,
    }

    def timed(name, model, inputs) -> None:
        model.train_on_batch(*inputs(rows[0]))  # traces the graph
        start = time.perf_counter()
        for r in rows[1:]:
            model.train_on_batch(*inputs(r))
        result[f"{name}_samples_per_s"] = round(steps * batch / (time.perf_counter() - start), 1)

    head = build_model(
        config.model, len(words), len(answers), grid_shape=model_grid_shape(config.model)
    )
    head.compile(optimizer="adam", loss=soft_crossentropy)
    cache, cache_rows = image_table(
        dataset, sorted(train["image_id"].unique()), **config.image_inputs()
    )

    def from_cache(r):
        index = train["image_id"].iloc[r].map(cache_rows).to_numpy()
        return model_inputs(head, cache[index].astype("float32"), tokens[r]), targets[r]

    timed("cache", head, from_cache)
    result["cache_peak_rss_mb"] = _peak_mb()

    spec = get_backbone(config.model.backbone, config.model.backbone_image_size)
    backbone = spec.build(include_top=False)
    backbone.trainable = False
    pixels = keras.Input((spec.image_size, spec.image_size, 3), name="image")
    about_image = keras.Input((), dtype="int32", name="about_image")
    question = keras.Input((None,), dtype="int32", name="question")
    inputs = {"image": pixels, "about_image": about_image, "question": question}
    end_to_end = keras.Model(inputs, head({**inputs, "image": backbone(pixels)}))
    end_to_end.compile(optimizer="adam", loss=soft_crossentropy)

    def from_pixels(r):
        images = spec.load_pixels([dataset.image_path(i) for i in train["image_id"].iloc[r]])
        return model_inputs(end_to_end, images.astype("float32"), tokens[r]), targets[r]

    timed("pixels", end_to_end, from_pixels)
    result["peak_rss_mb"] = _peak_mb()
    return result


def _child(args: list[str]) -> dict:
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT)
    if proc.returncode:
        raise SystemExit(f"{' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_all(data: str, run: str, out: Path, steps: int) -> dict:
    figures = []
    for size in (0, 224):
        print(f"extract at {size or 'the default size'} ...", flush=True)
        figures.append(_child([__file__, "extract", data, "--image-size", str(size)]))
    print("train ...", flush=True)
    figures.append(_child([__file__, "train", data, "--steps", str(steps)]))
    print("answer ...", flush=True)
    with tempfile.TemporaryDirectory() as work:
        answer_json = Path(work) / "answer.json"
        proc = subprocess.run(
            [sys.executable, "benchmarks/answer.py", run, data, "--out", str(answer_json)],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        if proc.returncode:
            raise SystemExit(f"benchmarks/answer.py failed:\n{proc.stderr[-3000:]}")
        answer = json.loads(answer_json.read_text())
    figures.append({"figure": "answer", **answer})
    result = {
        "command": f"python benchmarks/cpu.py {data} {run}",
        "cpu_cores": os.cpu_count(),
        "machine": platform.machine(),
        "figures": figures,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    print(f"written: {out}")
    return result


def table(result: dict) -> str:
    lines = ["| path | speed | next to | peak memory |", "|---|---|---|---|"]
    for f in result["figures"]:
        if f["figure"] == "extract":
            lines.append(
                f"| feature extraction, Lite0 at {f['image_size']} px, {f['images']:,} "
                f"image files | {f['extract_images_per_s']:,.0f} images/s | bare "
                f"forward on the same batches ({f['batch_size']}), decoded: "
                f"{f['bare_forward_images_per_s']:,.0f} images/s | "
                f"{f['peak_rss_mb']:,} MB |"
            )
        elif f["figure"] == "train":
            lines.append(
                f"| training, default model, batch {f['batch_size']}, cached "
                f"{f['image_size']} px grids | {f['cache_samples_per_s']:,.0f} "
                f"samples/s | | {f['cache_peak_rss_mb']:,} MB |"
            )
            lines.append(
                f"| training, the same with the frozen backbone inside, from image "
                f"files | {f['pixels_samples_per_s']:,.0f} samples/s | cache "
                f"{f['cache_samples_per_s'] / f['pixels_samples_per_s']:.1f}x faster"
                f" | {f['peak_rss_mb']:,} MB |"
            )
        else:
            one = next(b for b in f["batches"] if b["batch_size"] == 1)
            big = max(f["batches"], key=lambda b: b["batch_size"])
            lines.append(
                f"| answering one question, image file in | p50 {one['p50_ms']} ms, "
                f"p99 {one['p99_ms']} ms | batches of {big['batch_size']}: "
                f"{big['answers_per_s']:,.0f} answers/s | {f['peak_rss_mb']:,} MB |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("extract", "train"):
        parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        parser.add_argument("figure")
        parser.add_argument("data")
        parser.add_argument("--image-size", type=int, default=0)
        parser.add_argument("--steps", type=int, default=40)
        args = parser.parse_args(argv)
        result = (
            measure_extract(args.data, args.image_size)
            if args.figure == "extract"
            else measure_train(args.data, args.steps)
        )
        print(json.dumps(result))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("run")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument(
        "--out", type=Path, default=ROOT / "experiments/results/cpu-benchmarks.json"
    )
    args = parser.parse_args(argv)
    run_all(args.data, args.run, args.out, args.steps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
