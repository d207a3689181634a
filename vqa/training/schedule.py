"""The learning-rate plan of a run: constant or cosine, after an optional warm-up."""

from __future__ import annotations

import keras

from vqa.config import Config


def learning_rate(config: Config, steps_per_epoch: int):
    """The configured schedule; a warm-up ramps linearly from 0 to the learning rate first
    (then cosine decays to 0 over the remaining steps, or the rate stays constant)."""
    train_config = config.train
    warmup = round(train_config.warmup_epochs * steps_per_epoch)
    constant = train_config.learning_rate_schedule == "constant"
    if constant and not warmup:
        return train_config.learning_rate
    decay = max(steps_per_epoch * train_config.epochs - warmup, 1)
    return keras.optimizers.schedules.CosineDecay(
        0.0 if warmup else train_config.learning_rate,
        decay,
        alpha=1.0 if constant else 0.0,  # alpha: the floor, as a fraction of the rate
        warmup_target=train_config.learning_rate if warmup else None,
        warmup_steps=warmup,
    )
