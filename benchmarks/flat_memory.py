"""Training on a feature cache larger than the memory it may use: peak memory stays flat.

    python benchmarks/flat_memory.py [--limit-gb 1.5] [--work /tmp/flat-memory]

Writes a random Lite0-shaped feature cache (7x7x1280 float16 grids, one HDF5 chunk per
image, as `vqa extract` writes them) of twice --limit-gb, then trains the default model
on it through `model.fit` and VQABatches, exactly as `vqa train` reads a cache, for one
epoch that visits every image twice. Reports the cache size and the training process's
peak RSS (the operating system's page cache is not counted in RSS: it gives pages back
under pressure). Writes experiments/results/flat-memory.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
GRID = (7, 7, 1280)


def write_cache(path: Path, n_images: int, seed: int = 0) -> None:
    import h5py

    rng = np.random.default_rng(seed)
    block = rng.random((256, *GRID), dtype=np.float32).astype(np.float16)
    tmp = path.with_suffix(".tmp.h5")
    with h5py.File(tmp, "w") as f:
        features = f.create_dataset(
            "features", (n_images, *GRID), dtype="float16", chunks=(1, *GRID)
        )
        for start in range(0, n_images, len(block)):
            stop = min(start + len(block), n_images)
            # Shifted so that no two blocks are alike (nothing a compressor could share).
            features[start:stop] = block[: stop - start] + np.float16(start % 7)
        f.create_dataset(
            "image_id",
            data=np.array([f"img{i}" for i in range(n_images)], dtype=object),
            dtype=h5py.string_dtype(),
        )
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit-gb", type=float, default=1.5)
    parser.add_argument("--work", default="/tmp/flat-memory")
    parser.add_argument("--out", default="experiments/results/flat-memory.json")
    args = parser.parse_args(argv)

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    per_image = int(np.prod(GRID)) * 2
    n_images = int(2 * args.limit_gb * 2**30 / per_image)
    h5 = work / "features.h5"
    if not h5.is_file():
        print(f"writing a {n_images * per_image / 2**30:.2f} GiB cache of {n_images} grids")
        write_cache(h5, n_images)
    size_gb = h5.stat().st_size / 2**30

    import keras
    from scipy import sparse

    from vqa.config import Config
    from vqa.data.batches import VQABatches
    from vqa.features.backbones import model_grid_shape
    from vqa.features.cache import FeatureCache, Manifest
    from vqa.models import build_model, soft_crossentropy, vqa_score

    config = Config()
    manifest = Manifest(
        "efficientnet_lite0",
        None,
        "random",
        "random",
        224,
        GRID,
        "float16",
        n_images,
        "random",
        256,
        32,
    )
    cache = FeatureCache(h5, manifest)
    rng = np.random.default_rng(0)
    n_questions, n_words, n_answers = 2 * n_images, 1000, 100
    tokens = rng.integers(2, n_words, (n_questions, config.model.max_question_length))
    answers = rng.integers(0, n_answers, n_questions)
    targets = sparse.csr_matrix(
        (np.ones(n_questions, "float32"), (np.arange(n_questions), answers)),
        shape=(n_questions, n_answers),
    )
    batches = VQABatches(
        cache,
        rng.permutation(np.repeat(np.arange(n_images), 2)),
        tokens.astype("int32"),
        targets,
        batch_size=config.train.batch_size,
        shuffle=True,
    )
    model = build_model(config.model, n_words, n_answers, grid_shape=model_grid_shape(config.model))
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3), loss=soft_crossentropy, metrics=[vqa_score]
    )
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    start = time.perf_counter()
    model.fit(batches, epochs=1, verbose=0, shuffle=False)
    seconds = time.perf_counter() - start
    cache.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    result = {
        "command": "python benchmarks/flat_memory.py"
        + (f" --limit-gb {args.limit_gb}" if args.limit_gb != 1.5 else ""),
        "limit_gb": args.limit_gb,
        "cache_gib": round(size_gb, 2),
        "images": n_images,
        "questions": n_questions,
        "peak_rss_gib_before_training": round(rss_before, 2),
        "peak_rss_gib": round(peak, 2),
        "epoch_s": round(seconds, 1),
        "samples_per_s": round(n_questions / seconds),
        "under_limit": peak < args.limit_gb,
        "cpu_cores": os.cpu_count(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"cache {size_gb:.2f} GiB ({n_images} grids), limit {args.limit_gb} GiB: one epoch "
        f"of {n_questions} questions in {seconds:.0f} s, peak RSS {peak:.2f} GiB "
        f"({rss_before:.2f} GiB before training)"
    )
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
