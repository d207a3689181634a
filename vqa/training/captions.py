"""The fit loop of a caption decoder: teacher forcing in `model.fit`, with the same run
directory, checkpoints, resume, lock and learning-rate plan as a VQA run
(vqa.training.fit). Model selection: the validation images' next-word accuracy (held
out of the train split by image); the test split is never read here."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import keras

from vqa.config import Config, save_config
from vqa.data.captions import CaptionBatches, caption_vocabulary
from vqa.data.dataset import PreparedDataset
from vqa.data.text import Vocabulary
from vqa.errors import DatasetError
from vqa.features.backbones import get_backbone, model_grid_shape
from vqa.features.cache import FeatureCache
from vqa.features.extract import image_table
from vqa.models import build_captioner, get_decoder
from vqa.models.image_encoders import get_image_encoder
from vqa.models.recurrent import get_recurrent
from vqa.runs import atomic, files, locks
from vqa.training.checkpoint import (
    RunCheckpoint,
    fresh_state,
    library_versions,
    prepare_run_dir,
    set_seed_states,
    tensorboard,
)
from vqa.training.fit import finish_fit
from vqa.training.gradient_flow import gradient_flow_callbacks
from vqa.training.inputs import describe_image_input, resumed_split, split_by_image
from vqa.training.profile import write_image_profile
from vqa.training.schedule import learning_rate, training_advice

log = logging.getLogger(__name__)
MONITOR = "val_word_accuracy"  # next-word accuracy on the validation captions


def train_captioner(
    dataset: PreparedDataset,
    out: str | Path,
    config: Config,
    *,
    verbose: int = 2,
    overwrite: bool = False,
    callbacks: list | None = None,
) -> dict:
    """Train `config`'s caption decoder on the dataset's train captions; the summary is
    also written to RUN_DIR/training.json. Re-running after a crash resumes."""
    get_decoder(config.model.decoder)  # registered components, before any data is read
    get_recurrent(config.model.decoder_cell)
    get_image_encoder(config.model)
    get_backbone(config.model.backbone, config.model.backbone_image_size or None)
    with locks.exclusive(out, "training"):
        return _train(
            dataset, Path(out), config.for_dataset(dataset), verbose, overwrite, callbacks
        )


def _train(
    dataset: PreparedDataset,
    run: Path,
    config: Config,
    verbose: int,
    overwrite: bool,
    callbacks: list | None,
) -> dict:
    if dataset.captions is None:
        raise DatasetError(
            f"{dataset.root} has no captions.parquet: a caption decoder "
            "trains on a captions dataset (vqa prepare coco-captions, or "
            "vqa prepare scenes)."
        )
    named = [s for s in dataset.caption_splits if s.startswith("train")]
    if "train" not in named and len(named) != 1:
        raise DatasetError(
            f"{dataset.root} has no caption split to train on (one named "
            f"'train' or train*); its caption splits are "
            f"{dataset.caption_splits}."
        )
    train_c = dataset.caption_split("train" if "train" in named else named[0])
    if train_c["image_id"].nunique() < 2:
        raise DatasetError(
            f"{dataset.root}: the train captions need at least 2 images, so "
            "that some can be held out for validation."
        )
    state = prepare_run_dir(run, config, overwrite)
    fingerprint = {"dataset": dataset.name, "counts": dataset.meta.get("caption_counts")}
    if state is None:
        fit_c, val_c = split_by_image(train_c, config.train.validation_fraction, config.train.seed)
        words = caption_vocabulary(fit_c["caption"], config.train.min_word_count)
        words.save(run / files.CAPTION_VOCAB)
        save_config(config, run / files.CONFIG)
        atomic.write_json(sorted(val_c["image_id"].unique()), run / files.VALIDATION_IMAGES)
    else:
        fit_c, val_c = resumed_split(run, train_c, state, fingerprint)
        words = Vocabulary.load(run / files.CAPTION_VOCAB)

    image_ids = sorted(train_c["image_id"].unique())
    log.info("loading the inputs of %d training images", len(image_ids))
    images, rows = image_table(dataset, image_ids, **config.image_inputs())
    length, batch = config.model.max_caption_length, config.train.batch_size
    fit = CaptionBatches.from_captions(
        fit_c, images, rows, words, length, batch_size=batch, shuffle=True, seed=config.train.seed
    )
    val = CaptionBatches.from_captions(val_c, images, rows, words, length, batch_size=batch)
    log.info(
        "fit on %d captions (%d images), validate on %d captions (%d images); %d words",
        len(fit_c),
        fit_c["image_id"].nunique(),
        len(val_c),
        val_c["image_id"].nunique(),
        len(words),
    )
    keras.utils.set_random_seed(config.train.seed)
    if state is None:
        model = build_captioner(config.model, len(words), grid_shape=model_grid_shape(config.model))
        clip = {"global_clipnorm": config.train.clip_norm} if config.train.clip_norm else {}
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate(config, len(fit)), **clip),
            loss="sparse_categorical_crossentropy",
            weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="word_accuracy")],
            run_eagerly=config.train.run_eagerly,
        )
        state = fresh_state(fingerprint)
        initial_epoch = 0
    else:
        model = keras.models.load_model(run / files.CHECKPOINT_DIR / state["last_file"])
        model.run_eagerly = config.train.run_eagerly
        set_seed_states(model, state.get("seed_states"))
        initial_epoch = config.train.epochs if state["stopped_early"] else state["next_epoch"]
        log.info("resuming %s at epoch %d", run, initial_epoch + 1)
    watch = gradient_flow_callbacks(run, config, fit, len(fit))  # epoch 0's first batch
    fit.start_epoch(initial_epoch)
    checkpoint = RunCheckpoint(run, config.train.early_stopping_patience, state, MONITOR)
    start = time.perf_counter()
    try:
        model.fit(
            fit,
            validation_data=val,
            epochs=config.train.epochs,
            initial_epoch=initial_epoch,
            verbose=verbose,
            shuffle=False,
            callbacks=[*watch, checkpoint, *tensorboard(run), *(callbacks or [])],
        )
    finally:
        if isinstance(images, FeatureCache):
            images.close()
    history = finish_fit(run, images, state, f"validation word accuracy of {run.name}", MONITOR)
    write_image_profile(run, dataset, config, list(fit_c["image_id"]), list(val_c["image_id"]))
    advice = training_advice(history, state, len(fit), config)
    if advice:
        log.warning("%s: %s", run, advice)
    summary = {
        "task": "captioning",
        "best_epoch": state["best_epoch"] + 1,
        "best_val_word_accuracy": round(100 * state["best"], 2),
        "epochs_run": int(len(history)),
        "stopped_early": state["stopped_early"],
        "advice": advice,  # what to raise when it looks under-trained (None: nothing)
        "seconds_per_epoch": round(float(history["seconds"].mean()), 2),
        "fit_seconds_this_session": round(time.perf_counter() - start, 1),
        "parameters": int(model.count_params()),
        "n_fit_captions": int(len(fit_c)),
        "n_val_captions": int(len(val_c)),
        "n_words": len(words),
        "image": describe_image_input(config),
        "keras_backend": keras.backend.backend(),
        "seed": config.train.seed,
        "data": str(dataset.root.resolve()),  # what its own evaluation is on
        "versions": library_versions(),
    }
    atomic.write_json(summary, run / files.TRAINING)
    shutil.rmtree(run / files.CHECKPOINT_DIR, ignore_errors=True)
    return summary
