"""Seconds per training epoch from pixels vs from the feature cache, same model.

    python experiments/bench_cache.py DATA [--config FILE (default: the built-in defaults)]
                                           [--steps 20]

From pixels: the pretrained backbone sits inside the model (frozen) and every step
decodes, resizes and runs it on the batch's images; timed over --steps steps and
scaled to a full epoch. From the cache: the same head trained on the cached grids,
timed over --steps steps the same way. Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--config", help="YAML config (default: the built-in defaults)")
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()

    import keras
    import numpy as np

    from vqa.config import load_config
    from vqa.data.dataset import PreparedDataset
    from vqa.features.backbones import get_backbone
    from vqa.features.cache import image_table
    from vqa.models import build_model, soft_crossentropy
    from vqa.training import build_vocabularies

    config = load_config(args.config)
    dataset = PreparedDataset.load(args.data)
    train = dataset.split(dataset.train_split)
    words, answers = build_vocabularies(train, config, dataset.answer_vocabulary_size)
    batch = config.train.batch_size
    steps_per_epoch = int(np.ceil(len(train) * (1 - config.train.validation_fraction) / batch))
    rng = np.random.default_rng(0)
    rows = [rng.choice(len(train), batch, replace=False) for _ in range(args.steps + 1)]
    tokens = words.encode_questions(train["question"], config.model.max_question_length)
    targets = np.eye(len(answers), dtype="float32")[
        [answers.index[a] for a in train["answer"]]]

    head = build_model(config.model, len(words), len(answers))
    head.compile(optimizer="adam", loss=soft_crossentropy)
    cache, cache_rows = image_table(dataset, config, sorted(train["image_id"].unique()))
    timings = {}

    def run(name, make_inputs, model):
        model.train_on_batch(*make_inputs(rows[0]))  # warm-up: traces the graph
        start = time.perf_counter()
        for r in rows[1:]:
            model.train_on_batch(*make_inputs(r))
        timings[name] = (time.perf_counter() - start) / args.steps

    def from_cache(r):
        index = train["image_id"].iloc[r].map(cache_rows).to_numpy()
        return {"image": cache[index].astype("float32"), "question": tokens[r]}, targets[r]

    run("cache", from_cache, head)

    spec = get_backbone(config.model.backbone)
    backbone = spec.build(include_top=False)
    backbone.trainable = False
    pixels = keras.Input((spec.image_size, spec.image_size, 3), name="image")
    question = keras.Input((config.model.max_question_length,), dtype="int32", name="question")
    end_to_end = keras.Model({"image": pixels, "question": question},
                             head({"image": backbone(pixels), "question": question}))
    end_to_end.compile(optimizer="adam", loss=soft_crossentropy)

    def from_pixels(r):
        images = spec.load_pixels([dataset.image_path(i) for i in train["image_id"].iloc[r]])
        images = images.astype("float32")
        return {"image": images, "question": tokens[r]}, targets[r]

    run("pixels", from_pixels, end_to_end)
    for name in ("pixels", "cache"):
        print(f"{name:>6}: {1000 * timings[name]:7.1f} ms/step -> "
              f"{timings[name] * steps_per_epoch:7.1f} s/epoch ({steps_per_epoch} steps of {batch})")
    print(f"the cache makes an epoch {timings['pixels'] / timings['cache']:.0f}x faster")


if __name__ == "__main__":
    main()
