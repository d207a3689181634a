"""`vqa prepare`, `vqa extract`, `vqa classify`: data in, features out."""

from __future__ import annotations

import argparse

from vqa.cli.answer import load_keras
from vqa.errors import VQAError


def prepare_sources() -> dict:
    """Each source's module: its `add_arguments(parser)` and `run(args) -> report`."""
    from data_prep import (
        clevr,
        coco_captions,
        easy_vqa,
        folder,
        long_questions,
        scenes,
        sort_of_clevr,
    )
    from data_prep import vqa as vqa_json

    return {
        "easy-vqa": easy_vqa,
        "vqa": vqa_json,
        "clevr": clevr,
        "folder": folder,
        "sort-of-clevr": sort_of_clevr,
        "scenes": scenes,
        "long-questions": long_questions,
        "coco-captions": coco_captions,
    }


def cmd_prepare(args: argparse.Namespace) -> None:
    print(args.source_module.run(args))


def cmd_extract(args: argparse.Namespace) -> None:
    from vqa.data.dataset import PreparedDataset

    dataset = PreparedDataset.load(args.data)  # checked before TensorFlow loads
    try:
        index, count = (int(v) for v in args.shard.split("/"))
    except ValueError:
        raise VQAError(f"--shard must look like i/N, e.g. 0/4. Received: {args.shard}") from None
    load_keras()
    from vqa.features.extract import extract_features

    path = extract_features(
        dataset,
        args.backbone,
        args.weights,
        image_size=args.image_size,
        batch_size=args.batch_size,
        dtype=args.dtype,
        shard=(index, count),
    )
    print(
        f"features: {path}"
        if path
        else f"shard {index}/{count} done; the last shard to finish merges the cache"
    )


def cmd_classify(args: argparse.Namespace) -> None:
    from vqa.data.images import open_image

    image = open_image(args.image)  # checked before TensorFlow loads
    load_keras()
    from vqa.features.imagenet import classify

    for index, name, p in classify(image, args.backbone, args.weights, args.top_k):
        print(f"{index:4d}  {name:<28} {p:6.1%}")
