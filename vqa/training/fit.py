"""The fit loop of both tasks (vqa.training.tasks: answering, captioning): split the
training rows by image, encode them, build or resume the model, `model.fit` with the
run's checkpoint (vqa.training.checkpoint), and write the run's summary.

The training split is divided by image (scikit-learn's GroupShuffleSplit) into the
part we fit on and a validation part used for model selection and early stopping.
The test split is never read here.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from vqa.config import Config, load_config, save_config
from vqa.data.dataset import PreparedDataset
from vqa.data.text import Vocabulary
from vqa.errors import ConfigError, DatasetError, RunDirError
from vqa.features.cache import FeatureCache, Manifest, backbone_for_answering
from vqa.features.extract import image_table
from vqa.runs import atomic, files, locks
from vqa.training import distribute
from vqa.training.batch_norm import BatchNormStatistics, norm_layers, sample_rows
from vqa.training.checkpoint import (
    RunCheckpoint,
    fresh_state,
    library_versions,
    prepare_run_dir,
    save_atomic,
    set_seed_states,
    tensorboard,
)
from vqa.training.gradient_flow import gradient_flow_callbacks
from vqa.training.inputs import describe_image_input, resumed_split, split_by_image
from vqa.training.profile import write_image_profile
from vqa.training.schedule import training_advice
from vqa.training.tasks import Task, task_for
from vqa.training.tf_data import gathered_in_tf
from vqa.training.warm_start import copy_weights, init_source
from vqa.visualize import plot_curves

log = logging.getLogger(__name__)

# Training steps run per call into the compiled graph: a small model's CPU step is
# mostly the call's own overhead (easy-VQA's default: an epoch 7.6 s with 1, 6.6 with 16).
# Batch callbacks then see every 16th step; a checkpoint is still taken per epoch. One
# replica only: under TensorFlow's distribution strategies the multi-step graph fails.
STEPS_PER_CALL = 16


def checked_config(config: Config) -> Config:
    """`config` with its components checked against their registries (the fusion with
    its options) and the fusion's options written without their defaults, as a run
    records it."""
    return task_for(config).checked(config)


def train(
    data: str | Path | PreparedDataset,
    out: str | Path,
    config: Config | str | Path | None = None,
    *,
    verbose: int | None = None,
    overwrite: bool = False,
    callbacks: list | None = None,
    strategy: str = "none",
    init_from: str | Path | None = None,
) -> dict:
    """Train a model on the train split of a prepared dataset (or its directory): a VQA
    model on its questions, or a caption decoder (a config with `caption.decoder`) on
    its captions.

    Returns the summary also written to RUN_DIR/training.json.

    Re-running the same command after a crash resumes from the last finished epoch.
    `out` ends up holding everything answering needs (see vqa.runs.files).
    `verbose` is passed to `fit`; by default a progress bar on a terminal and one
    line per epoch otherwise (logs, CI). `callbacks` are more keras callbacks for `fit`
    (they run after the run's own checkpointing at the end of each epoch). `strategy`
    spreads each batch over devices or machines (vqa.training.distribute.STRATEGIES; VQA
    models only); with multi-worker only the chief writes `out`, the other workers a
    temporary directory. `init_from` (a finished run with the same model config) starts
    the weights, and the vocabularies, from that run's best epoch instead of at random:
    to train a run on for more epochs, or on other data with the same words and answers.
    The optimizer starts afresh. A resumed run takes its weights from its checkpoint.
    """
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    if not isinstance(config, Config):
        config = load_config(config)
    task = task_for(config)
    config = task.checked(config)  # before any data is read
    if strategy not in task.strategies:
        raise ConfigError(
            f"A {task.name} model trains with --strategy {' or '.join(task.strategies)}; "
            f"received {strategy!r}."
        )
    replicas = distribute.start(strategy, config.train.batch_size)  # before any TF op
    if replicas.is_chief:  # one process writes a run directory at a time
        with locks.exclusive(out, "training"):
            return _train(
                task, data, Path(out), config, replicas, verbose, overwrite, callbacks, init_from
            )
    with tempfile.TemporaryDirectory(prefix=f"vqa-worker{replicas.worker}-") as scratch:
        run = Path(scratch) / "run"
        return _train(task, data, run, config, replicas, verbose, True, callbacks, init_from)


def train_captioner(
    dataset: str | Path | PreparedDataset, out: str | Path, config: Config, **kwargs
) -> dict:
    """`train` for a caption decoder's config (vqa 0.1.0's name for it)."""
    if not config.is_captioner:
        raise ConfigError("train_captioner trains a config with a caption.decoder; use train.")
    return train(dataset, out, config, **kwargs)


def _train(
    task: Task,
    data: str | Path | PreparedDataset,
    run: Path,
    config: Config,
    replicas: distribute.Replicas,
    verbose: int,
    overwrite: bool,
    callbacks: list | None,
    init_from: str | Path | None,
) -> dict:
    dataset = data if isinstance(data, PreparedDataset) else PreparedDataset.load(data)
    config = config.for_dataset(dataset)  # the backbone's input size, if left to suit it
    source = None if init_from is None else init_source(init_from, config, run, task.needed)
    train_rows = task.train_rows(dataset)
    if train_rows["image_id"].nunique() < 2:
        raise DatasetError(
            f"{dataset.root}: the train {task.rows} need at least 2 images, so that "
            "some can be held out for validation."
        )
    state = prepare_run_dir(run, config, overwrite)
    if state is not None and replicas.workers > 1:
        raise ConfigError(
            f"{run} holds an unfinished run; multi-worker runs do not resume. "
            "Pass --overwrite to every worker to start again."
        )
    fingerprint = task.fingerprint(dataset)
    if state is None:
        fit_rows, val_rows = split_by_image(
            train_rows, config.train.validation_fraction, config.train.seed
        )
        if source is None:
            vocabularies = task.new_vocabularies(fit_rows, config, dataset)
        else:  # the source's ids, so that its embedding and output rows line up
            vocabularies = _load_vocabularies(task, source)
        for name, file in task.vocabularies.items():
            vocabularies[name].save(run / file)
        save_config(config, run / files.CONFIG)
        atomic.write_json(sorted(val_rows["image_id"].unique()), run / files.VALIDATION_IMAGES)
    else:
        fit_rows, val_rows = resumed_split(run, train_rows, state, fingerprint)
        vocabularies = _load_vocabularies(task, run)

    image_ids = sorted(train_rows["image_id"].unique())
    log.info("loading the inputs of %d training images", len(image_ids))
    images, rows = image_table(dataset, image_ids, **config.image_inputs())
    fit_rows, fit = task.encode(fit_rows, images, rows, vocabularies, config, training=True)
    val_rows, val = task.encode(val_rows, images, rows, vocabularies, config, training=False)
    log.info(
        "fit on %d %s (%d images), validate on %d %s (%d images); %s",
        len(fit_rows),
        task.rows,
        fit_rows["image_id"].nunique(),
        len(val_rows),
        task.rows,
        val_rows["image_id"].nunique(),
        ", ".join(f"{len(v)} {name}" for name, v in vocabularies.items()),
    )

    fit_batches = distribute.for_replicas(fit, replicas, training=True)
    val_batches = distribute.for_replicas(val, replicas, training=False)
    # Seeded here, after the features: extracting them builds the backbone, which draws
    # random numbers, and the model must not depend on whether the cache existed.
    keras.utils.set_random_seed(config.train.seed)
    if state is None:
        with replicas.scope():
            model, optimizer = task.new_model(config, vocabularies, len(fit_batches))
            if source is not None:
                trained = keras.models.load_model(source / files.MODEL, compile=False)
                fresh = copy_weights(trained, model)
                log.info("weights and vocabularies from %s", source)
                if fresh:
                    log.warning(
                        "%d weights of this model are new (attention_words adds "
                        "some) or have another shape in %s (saved by an older vqa), "
                        "and start afresh: %s",
                        len(fresh),
                        source,
                        ", ".join(fresh),
                    )
            # Weighted: the rows that pad a batch for the replicas have weight 0.
            model.compile(
                optimizer=optimizer,
                **task.compiled(),
                steps_per_execution=STEPS_PER_CALL if replicas.count == 1 else 1,
                run_eagerly=config.train.run_eagerly,
            )
        state = fresh_state(fingerprint, initialised_from=None if source is None else str(source))
        initial_epoch = 0
    else:
        with replicas.scope():
            model = keras.models.load_model(run / files.CHECKPOINT_DIR / state["last_file"])
        model.run_eagerly = config.train.run_eagerly
        set_seed_states(model, state.get("seed_states"))
        # A run that had already stopped early only lacks its summary.
        initial_epoch = config.train.epochs if state["stopped_early"] else state["next_epoch"]
        log.info(
            "resuming %s at epoch %d (best so far %.4f at epoch %d)",
            run,
            initial_epoch + 1,
            state["best"],
            state["best_epoch"] + 1,
        )
    # on epoch 0's first batch, whenever resumed
    watch = gradient_flow_callbacks(run, config, fit, len(fit) // replicas.count)
    fit.start_epoch(initial_epoch)
    if replicas.count == 1:  # gathered by tf.data where it can be: a faster epoch
        fit_batches = gathered_in_tf(fit) or fit_batches
        val_batches = gathered_in_tf(val) or val_batches

    if config.train.batch_norm_images:  # re-estimated before each validation
        norm_layers(model)  # or say in one line that the model has none
        chosen = sample_rows(
            np.unique(fit.image_index), config.train.batch_norm_images, config.train.seed
        )
        watch.append(BatchNormStatistics(fit.images[chosen]))
    checkpoint = RunCheckpoint(run, config.train.early_stopping_patience, state, task.monitor)
    start = time.perf_counter()
    try:
        # shuffle=False: the batches order each epoch from (seed, epoch) themselves.
        # Keras' own shuffle would reorder them with Python's global random state, which
        # a resumed run cannot have as the uninterrupted one had it.
        model.fit(
            fit_batches,
            validation_data=val_batches,
            epochs=config.train.epochs,
            initial_epoch=initial_epoch,
            verbose=verbose,
            callbacks=[checkpoint, *tensorboard(run), *watch, *(callbacks or [])],
            shuffle=False,
        )
    finally:
        if isinstance(images, FeatureCache):
            images.close()
    title = f"validation {task.measure} of {run.name}"
    history = finish_fit(run, images, state, title, task.monitor)
    steps = max(1, len(fit) // replicas.count)
    advice = training_advice(history, state, steps, config)
    if advice:
        log.warning("%s: %s", run, advice)
    summary = {
        "task": task.name,
        "best_epoch": state["best_epoch"] + 1,
        f"best_{task.monitor}": round(100 * state["best"], 2),
        "epochs_run": int(len(history)),
        "stopped_early": state["stopped_early"],
        "advice": advice,  # what to raise when it looks under-trained (None: nothing)
        "seconds_per_epoch": round(float(history["seconds"].mean()), 2),
        "fit_seconds_this_session": round(time.perf_counter() - start, 1),
        "parameters": int(model.count_params()),
        f"n_fit_{task.rows}": int(len(fit_rows)),
        f"n_val_{task.rows}": int(len(val_rows)),
        **{f"n_{name}": len(v) for name, v in vocabularies.items()},
        "image": describe_image_input(config),
        "keras_backend": keras.backend.backend(),
        "strategy": replicas.strategy,
        "replicas": replicas.count,
        "worker": replicas.worker,
        "seed": config.train.seed,
        "data": str(dataset.root.resolve()),  # what its own evaluation is on
        "initialised_from": state.get("initialised_from"),  # a resumed run's too
        "versions": library_versions(),
    }
    write_image_profile(  # what its images look like: foreign-image warnings
        run, dataset, config, list(fit_rows["image_id"]), list(val_rows["image_id"])
    )
    task.after_fit(run, dataset, config, fit_rows, vocabularies)
    atomic.write_json(summary, run / files.TRAINING)
    shutil.rmtree(run / files.CHECKPOINT_DIR, ignore_errors=True)
    return summary


def _load_vocabularies(task: Task, run: Path) -> dict[str, Vocabulary]:
    return {name: Vocabulary.load(run / file) for name, file in task.vocabularies.items()}


def finish_fit(
    run: Path, images, state: dict, title: str, metric: str = "val_vqa_score"
) -> pd.DataFrame:
    """After `model.fit` (VQA or captions): keep the image encoder a pretrained run
    answers from pixels with, put the best epoch's model in place, plot the curve;
    returns the run's history."""
    if isinstance(images, FeatureCache):  # what answering from pixels needs; after the
        _save_image_encoder(run, images.manifest)  # fit, so the first epoch starts sooner
    best = run / files.CHECKPOINT_DIR / state["best_file"]
    if best.is_file():  # else a crash came after this rename, on an earlier attempt
        os.replace(best, run / files.MODEL)
    history = pd.read_csv(run / files.HISTORY)
    with atomic.atomic_write(run / files.CURVES) as tmp:
        plot_curves({run.name: history}, tmp, title=title, metric=metric)
    return history


def _save_image_encoder(run: Path, manifest: Manifest) -> None:
    """A pretrained run answers from pixels: keep the backbone that made its features.

    A resumed run must train on the same features it started with."""
    if (run / files.FEATURES).is_file():
        diff = Manifest.read(run / files.FEATURES).same_features(manifest)
        if diff:
            raise RunDirError(
                f"{run} started on other features than the cache now holds "
                f"({', '.join(diff)} differ); pass --overwrite to start again."
            )
    else:
        atomic.write_json(asdict(manifest), run / files.FEATURES)
    if not (run / files.IMAGE_ENCODER).is_file():
        save_atomic(backbone_for_answering(manifest), run / files.IMAGE_ENCODER)
