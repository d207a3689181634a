"""Warm start: a new run whose weights (and vocabularies) come from a finished run
with the same model config."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import keras

from vqa.config import Config, load_config
from vqa.errors import ConfigError
from vqa.runs import files


def init_source(init_from: str | Path, config: Config, run: Path, needed: tuple[str, ...]) -> Path:
    """The finished run to start `run` from, checked to hold the model `config` builds
    and the files of its task (`needed`)."""
    source = files.check_run_dir(init_from, needed)
    if source.resolve() == run.resolve():
        raise ConfigError(
            f"--init-from and --out both name {run}: a run cannot start from "
            "itself. Give the new run its own directory."
        )
    theirs = load_config(source / files.CONFIG)
    differ = [
        f"model.{field.name}"
        for field in fields(config.model)
        if getattr(theirs.model, field.name) != getattr(config.model, field.name)
        # words added to attention: the new weights start where the model
        # computes what the source did
        and not (field.name == "attention_words" and config.model.attention_words)
    ]
    if theirs.train.fine_tune != config.train.fine_tune:
        differ.append("train.fine_tune")
    if differ:
        raise ConfigError(
            f"Cannot initialise from {source}: its model differs from this "
            f"config's in {', '.join(differ)}. Initialising needs the same "
            "model; copy those settings from its config.yaml."
        )
    return source


def copy_weights(source: keras.Model, model: keras.Model) -> list[str]:
    """Copy a model's weights into one built from the same config, layer by layer (by
    name) and in each layer weight by weight (in order). Returns the paths of those left
    as they are: weights a layer gained at its end (the word reading `attention_words`
    adds to the attention) and weights whose shape changed (a layer that vqa now builds
    wider)."""
    theirs = {layer.name: layer.weights for layer in source.layers if layer.weights}
    ours = {layer.name: layer.weights for layer in model.layers if layer.weights}
    extra = sorted(set(theirs) - set(ours)) + sorted(
        name for name in set(theirs) & set(ours) if len(theirs[name]) > len(ours[name])
    )
    if extra:
        raise ConfigError(
            f"Cannot copy the weights of {source.name} into this model: its "
            f"layers {', '.join(extra)} have weights this one lacks; they are "
            "not the same network."
        )
    fresh = []
    for name, weights in ours.items():
        for i, our in enumerate(weights):
            their = theirs[name][i] if i < len(theirs.get(name, ())) else None
            if their is not None and tuple(their.shape) == tuple(our.shape):
                our.assign(keras.ops.convert_to_numpy(their))
            else:
                fresh.append(our.path)
    return fresh
