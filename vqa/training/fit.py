"""The fit loop: split the training questions by image, encode them, build or resume
the model, `model.fit` with the run's checkpoint (vqa.training.checkpoint), and write
the run's summary.

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
from dataclasses import asdict, replace
from pathlib import Path

import keras
import pandas as pd

from vqa.config import Config, load_config, save_config
from vqa.data.dataset import PreparedDataset
from vqa.data.text import Vocabulary, load_word_vectors
from vqa.errors import ConfigError, DatasetError, RunDirError
from vqa.features.backbones import get_backbone, model_grid_shape
from vqa.features.cache import FeatureCache, Manifest, backbone_for_answering
from vqa.features.extract import image_table
from vqa.models import build_model, check_fusion, soft_crossentropy, vqa_score
from vqa.models.fusions import canonical_options
from vqa.models.image_encoders import get_image_encoder
from vqa.models.optimizers import TwoRateAdam
from vqa.models.recurrent import get_recurrent
from vqa.runs import atomic, files, locks
from vqa.runs.model_card import write_card
from vqa.training import distribute
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
from vqa.training.inputs import (
    build_vocabularies,
    describe_image_input,
    encode_split,
    resumed_split,
    split_by_image,
)
from vqa.training.profile import write_image_profile
from vqa.training.schedule import learning_rate, training_advice
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
    get_image_encoder(config.model)
    get_backbone(config.model.backbone, config.model.backbone_image_size or None)
    get_recurrent(config.model.question_encoder)
    check_fusion(config.model)
    canonical = canonical_options(config.model)
    return Config(replace(config.model, fusion_options=canonical), config.train)


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
    """Train a model on the train split of a prepared dataset (or its directory).

    Returns the summary also written to RUN_DIR/training.json.

    Re-running the same command after a crash resumes from the last finished epoch.
    `out` ends up holding everything answering needs (see vqa.runs.files).
    `verbose` is passed to `fit`; by default a progress bar on a terminal and one
    line per epoch otherwise (logs, CI). `callbacks` are more keras callbacks for `fit`
    (they run after the run's own checkpointing at the end of each epoch). `strategy`
    spreads each batch over devices or machines (vqa.training.distribute.STRATEGIES); with
    multi-worker only the chief writes `out`, the other workers a temporary directory.
    `init_from` (a finished run with the same model config) starts the weights, and the
    vocabularies, from that run's best epoch instead of at random: to train a run on for
    more epochs, or on other data with the same words and answers. The optimizer starts
    afresh. A resumed run takes its weights from its checkpoint.
    """
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    if not isinstance(config, Config):
        config = load_config(config)
    config = checked_config(config)  # before any data is read
    replicas = distribute.start(strategy, config.train.batch_size)  # before any TF op
    if replicas.is_chief:  # one process writes a run directory at a time
        with locks.exclusive(out, "training"):
            return _train(
                data, Path(out), config, replicas, verbose, overwrite, callbacks, init_from
            )
    with tempfile.TemporaryDirectory(prefix=f"vqa-worker{replicas.worker}-") as scratch:
        return _train(
            data, Path(scratch) / "run", config, replicas, verbose, True, callbacks, init_from
        )


def _train(
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
    source = None if init_from is None else init_source(init_from, config, run)
    state = prepare_run_dir(run, config, overwrite)
    if state is not None and replicas.workers > 1:
        raise ConfigError(
            f"{run} holds an unfinished run; multi-worker runs do not resume. "
            "Pass --overwrite to every worker to start again."
        )
    fingerprint = {"dataset": dataset.name, "counts": dataset.meta["counts"]}

    if dataset.train_split is None:
        raise DatasetError(
            f"{dataset.root} has no split to train on (one named 'train' or "
            f"train*); its splits are {dataset.splits}."
        )
    train_q = dataset.split(dataset.train_split)
    if train_q["image_id"].nunique() < 2:
        raise DatasetError(
            f"{dataset.root}: the train split needs at least 2 images, so that "
            "some can be held out for validation."
        )
    if state is None:
        fit_q, val_q = split_by_image(train_q, config.train.validation_fraction, config.train.seed)
        if source is None:
            words, answers = build_vocabularies(fit_q, config, dataset.answer_vocabulary_size)
        else:  # the source's ids, so that its embedding and answer rows line up
            words = Vocabulary.load(source / files.QUESTION_VOCAB)
            answers = Vocabulary.load(source / files.ANSWER_VOCAB)
        words.save(run / files.QUESTION_VOCAB)
        answers.save(run / files.ANSWER_VOCAB)
        save_config(config, run / files.CONFIG)
        atomic.write_json(sorted(val_q["image_id"].unique()), run / files.VALIDATION_IMAGES)
    else:
        fit_q, val_q = resumed_split(run, train_q, state, fingerprint)
        words = Vocabulary.load(run / files.QUESTION_VOCAB)
        answers = Vocabulary.load(run / files.ANSWER_VOCAB)

    image_ids = sorted(train_q["image_id"].unique())
    log.info("loading the inputs of %d training images", len(image_ids))
    images, rows = image_table(dataset, image_ids, **config.image_inputs())
    fit = encode_split(
        fit_q, images, rows, words, answers, config, shuffle=True, drop_unanswerable=True
    )
    val = encode_split(
        val_q, images, rows, words, answers, config, shuffle=False, drop_unanswerable=False
    )
    log.info(
        "fit on %d questions (%d images), validate on %d questions (%d images); "
        "%d words, %d answers",
        len(fit.questions),
        fit_q["image_id"].nunique(),
        len(val.questions),
        val_q["image_id"].nunique(),
        len(words),
        len(answers),
    )
    if len(fit.questions) == 0:
        raise DatasetError(
            f"{dataset.root}: no training question has an answer in the answer vocabulary."
        )

    fit_batches = distribute.for_replicas(fit.batches, replicas, training=True)
    val_batches = distribute.for_replicas(val.batches, replicas, training=False)
    # Seeded here, after the features: extracting them builds the backbone, which draws
    # random numbers, and the model must not depend on whether the cache existed.
    keras.utils.set_random_seed(config.train.seed)
    if state is None:
        with replicas.scope():
            model, optimizer = _new_model(config, words, len(answers), len(fit_batches))
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
                loss=soft_crossentropy,
                weighted_metrics=[vqa_score],
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
    watch = gradient_flow_callbacks(run, config, fit.batches, len(fit.batches) // replicas.count)
    fit.batches.start_epoch(initial_epoch)
    if replicas.count == 1:  # gathered by tf.data where it can be: a faster epoch
        fit_batches = gathered_in_tf(fit.batches) or fit_batches
        val_batches = gathered_in_tf(val.batches) or val_batches

    checkpoint = RunCheckpoint(run, config.train.early_stopping_patience, state)
    start = time.perf_counter()
    try:
        # shuffle=False: VQABatches orders each epoch from (seed, epoch) itself. Keras'
        # own shuffle would reorder the batches with Python's global random state, which
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
    history = finish_fit(run, images, state, f"validation accuracy of {run.name}")
    steps = max(1, len(fit.batches) // replicas.count)
    advice = training_advice(history, state, steps, config)
    if advice:
        log.warning("%s: %s", run, advice)
    summary = {
        "best_epoch": state["best_epoch"] + 1,
        "best_val_vqa_score": round(100 * state["best"], 2),
        "epochs_run": int(len(history)),
        "stopped_early": state["stopped_early"],
        "advice": advice,  # what to raise when it looks under-trained (None: nothing)
        "seconds_per_epoch": round(float(history["seconds"].mean()), 2),
        "fit_seconds_this_session": round(time.perf_counter() - start, 1),
        "parameters": int(model.count_params()),
        "n_fit_questions": int(len(fit.questions)),
        "n_val_questions": int(len(val.questions)),
        "n_words": len(words),
        "n_answers": len(answers),
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
        run, dataset, config, list(fit.questions["image_id"]), list(val.questions["image_id"])
    )
    write_card(
        run,
        dataset=dataset.name,
        source=dataset.meta.get("source", ""),
        image=describe_image_input(config),
        questions=list(fit.questions["question"]),
        question_types=list(fit.questions["question_type"]),
        answers=list(fit.questions["answer"]),
        n_words=len(words),
        n_answers=len(answers),
    )
    atomic.write_json(summary, run / files.TRAINING)
    shutil.rmtree(run / files.CHECKPOINT_DIR, ignore_errors=True)
    return summary


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


def _new_model(
    config: Config, words: Vocabulary, n_answers: int, steps_per_epoch: int
) -> tuple[keras.Model, keras.optimizers.Optimizer]:
    """The model and its optimizer; fine-tuning puts the backbone inside, slower."""
    rate = learning_rate(config, steps_per_epoch)
    clip = {"global_clipnorm": config.train.clip_norm} if config.train.clip_norm else {}
    vectors = None
    if config.model.word_vectors:
        vectors, coverage = load_word_vectors(
            config.model.word_vectors, words, config.model.embedding_dim, config.train.seed
        )
        log.info(
            "word vectors for %.1f%% of the %d question words from %s",
            100 * coverage,
            len(words) - 2,
            config.model.word_vectors,
        )
    if not config.train.fine_tune:
        return (
            build_model(
                config.model,
                len(words),
                n_answers,
                word_vectors=vectors,
                grid_shape=model_grid_shape(config.model),
            ),
            keras.optimizers.Adam(rate, **clip),
        )
    backbone = get_backbone(config.model.backbone, config.model.backbone_image_size or None).build(
        include_top=False
    )
    model = build_model(
        config.model, len(words), n_answers, backbone=backbone, word_vectors=vectors
    )
    optimizer = TwoRateAdam(
        [v.path for v in backbone.trainable_variables],
        config.train.backbone_learning_rate / config.train.learning_rate,
        learning_rate=rate,
        **clip,
    )
    return model, optimizer
