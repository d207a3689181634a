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


MIN_UPDATES = 300  # fewer optimizer steps than this rarely fit even a small dataset


def training_advice(history, state: dict, steps_per_epoch: int, config: Config) -> str | None:
    """One line on what to raise when a finished run (its history and checkpoint state)
    looks under-trained, else None: it took few optimizer steps in all (a small dataset
    at the default batch size: 2 steps an epoch, so early stopping's patience of 3 epochs
    is 6 steps), or it was still improving at its last epoch."""
    train, epochs = config.train, len(history)
    updates, stopped = steps_per_epoch * epochs, state["stopped_early"]
    if updates < MIN_UPDATES:
        patience = f", stopped early with patience {train.early_stopping_patience}"
        return (
            f"only {updates} optimizer steps in all ({steps_per_epoch} an epoch at "
            f"batch_size {train.batch_size}, {epochs} epochs{patience if stopped else ''}): "
            "the model is likely under-trained; lower train.batch_size or raise "
            "train.epochs and train.early_stopping_patience"
        )
    if state["best_epoch"] + 1 == epochs and not stopped and epochs >= 2:
        return (
            f"validation still improved at the last epoch ({epochs}): raise train.epochs "
            "to train it further (vqa train --init-from RUN continues from its weights)"
        )
    return None
