"""What a run learns, as the one fit loop (vqa.training.fit) sees it: to answer questions
or to caption images. A task names the rows it trains on, makes and keeps their
vocabularies, encodes them into batches, and builds the model with its head's loss and
metrics. Everything else (the run directory, split by image, checkpoints, resume, the
learning-rate plan, the summary) is the fit loop's, the same for both."""

from __future__ import annotations

import logging
from dataclasses import replace

import keras
import pandas as pd

from vqa.config import Config
from vqa.data.captions import CaptionBatches, caption_vocabulary
from vqa.data.dataset import PreparedDataset
from vqa.data.text import Vocabulary, load_word_vectors
from vqa.errors import ConfigError, DatasetError
from vqa.features.backbones import get_backbone, model_grid_shape
from vqa.models import build_captioner, build_model, check_fusion, soft_crossentropy, vqa_score
from vqa.models.decoders import get_decoder
from vqa.models.fusions import canonical_options
from vqa.models.image_encoders import get_image_encoder
from vqa.models.optimizers import TwoRateAdam
from vqa.models.recurrent import get_recurrent
from vqa.runs import files
from vqa.runs.model_card import write_card
from vqa.training.inputs import build_vocabularies, describe_image_input, encode_split
from vqa.training.schedule import learning_rate

log = logging.getLogger(__name__)


class Task:
    """One task's part of training. Subclasses set:

    name: what training.json records as its "task".
    rows: what one training row is ("questions"), for the summary's counts.
    monitor: the validation metric that keeps the best epoch, and in words (`measure`).
    vocabularies: each vocabulary's name -> its file in the run directory.
    needed: the files a finished run of it holds (vqa.runs.files).
    strategies: the distribution strategies its batches can be spread by.
    """

    name: str
    rows: str
    monitor: str
    measure: str
    vocabularies: dict[str, str]
    needed: tuple[str, ...]
    strategies: tuple[str, ...]

    def checked(self, config: Config) -> Config:
        """`config` with its components checked against their registries, as a run
        records it; before any data is read."""
        get_image_encoder(config.model)
        get_backbone(config.model.backbone, config.model.backbone_image_size)
        return config

    def train_rows(self, dataset: PreparedDataset) -> pd.DataFrame:
        """The rows of the dataset's train split (questions or captions)."""
        raise NotImplementedError

    def fingerprint(self, dataset: PreparedDataset) -> dict:
        """The data a run trains on, checked when it resumes."""
        raise NotImplementedError

    def new_vocabularies(
        self, fit_rows: pd.DataFrame, config: Config, dataset: PreparedDataset
    ) -> dict[str, Vocabulary]:
        raise NotImplementedError

    def encode(self, rows, images, image_rows, vocabularies, config, *, training: bool):
        """(the rows kept, their batches: a keras.utils.PyDataset)."""
        raise NotImplementedError

    def new_model(
        self, config: Config, vocabularies: dict[str, Vocabulary], steps_per_epoch: int
    ) -> tuple[keras.Model, keras.optimizers.Optimizer]:
        raise NotImplementedError

    def compiled(self) -> dict:
        """The loss and metrics for `model.compile` (weighted: padding rows count 0)."""
        raise NotImplementedError

    def after_fit(self, run, dataset, config, fit_rows, vocabularies) -> None:
        """What the task keeps beside the trained model."""


def adam(config: Config, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """Adam on the config's learning-rate plan, with its gradient clipping."""
    return keras.optimizers.Adam(learning_rate(config, steps_per_epoch), **_clipping(config))


def _clipping(config: Config) -> dict:
    """The optimizer's argument for the config's gradient clipping (none: {})."""
    return {"global_clipnorm": config.train.clip_norm} if config.train.clip_norm else {}


class Answers(Task):
    """Visual question answering: an answer classifier over the top answers, trained on
    the soft scores of each question's human answers."""

    name = "vqa"
    rows = "questions"
    monitor = "val_vqa_score"
    measure = "accuracy"
    vocabularies = {"words": files.QUESTION_VOCAB, "answers": files.ANSWER_VOCAB}
    needed = files.NEEDED_TO_ANSWER
    strategies = ("none", "mirrored", "multi-worker", "data-parallel")

    def checked(self, config: Config) -> Config:
        """... and the fusion's options written without their defaults."""
        super().checked(config)
        get_recurrent(config.model.question_encoder)
        check_fusion(config.model)
        return Config(
            replace(config.model, fusion_options=canonical_options(config.model)), config.train
        )

    def train_rows(self, dataset):
        if dataset.train_split is None:
            raise DatasetError(
                f"{dataset.root} has no split to train on (one named 'train' or "
                f"train*); its splits are {dataset.splits}."
            )
        return dataset.split(dataset.train_split)

    def fingerprint(self, dataset):
        return {"dataset": dataset.name, "counts": dataset.meta["counts"]}

    def new_vocabularies(self, fit_rows, config, dataset):
        words, answers = build_vocabularies(fit_rows, config, dataset.answer_vocabulary_size)
        return {"words": words, "answers": answers}

    def encode(self, rows, images, image_rows, vocabularies, config, *, training):
        # A training question none of whose answers is in the vocabulary teaches nothing.
        part = encode_split(
            rows,
            images,
            image_rows,
            vocabularies["words"],
            vocabularies["answers"],
            config,
            shuffle=training,
            drop_unanswerable=training,
        )
        if training and len(part.questions) == 0:
            raise DatasetError(
                "No training question has an answer in the answer vocabulary: raise "
                "train.max_answers, or leave it null for the dataset's own count."
            )
        return part.questions, part.batches

    def new_model(self, config, vocabularies, steps_per_epoch):
        """The model and its optimizer; fine-tuning puts the backbone inside, slower."""
        words, n_answers = vocabularies["words"], len(vocabularies["answers"])
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
            grid = model_grid_shape(config.model)
            model = build_model(
                config.model, len(words), n_answers, word_vectors=vectors, grid_shape=grid
            )
            return model, adam(config, steps_per_epoch)
        spec = get_backbone(config.model.backbone, config.model.backbone_image_size)
        backbone = spec.build(include_top=False)
        model = build_model(
            config.model, len(words), n_answers, backbone=backbone, word_vectors=vectors
        )
        optimizer = TwoRateAdam(
            [v.path for v in backbone.trainable_variables],
            config.train.backbone_learning_rate / config.train.learning_rate,
            learning_rate=learning_rate(config, steps_per_epoch),
            **_clipping(config),
        )
        return model, optimizer

    def compiled(self):
        return {"loss": soft_crossentropy, "weighted_metrics": [vqa_score]}

    def after_fit(self, run, dataset, config, fit_rows, vocabularies):
        write_card(  # what `vqa ask` tells about the run
            run,
            dataset=dataset.name,
            source=dataset.meta.get("source", ""),
            image=describe_image_input(config),
            questions=list(fit_rows["question"]),
            question_types=list(fit_rows["question_type"]),
            answers=list(fit_rows["answer"]),
            n_words=len(vocabularies["words"]),
            n_answers=len(vocabularies["answers"]),
        )


class Captions(Task):
    """Image captioning: a registered caption decoder trained by teacher forcing, the
    next word's cross-entropy over the real words (the padding weighs 0)."""

    name = "captioning"
    rows = "captions"
    monitor = "val_word_accuracy"  # next-word accuracy on the validation captions
    measure = "next-word accuracy"
    vocabularies = {"words": files.CAPTION_VOCAB}
    needed = files.NEEDED_TO_CAPTION
    strategies = ("none",)

    def checked(self, config):
        super().checked(config)
        get_decoder(config.model.decoder)
        get_recurrent(config.model.decoder_cell)
        if config.train.fine_tune:
            raise ConfigError(
                "A caption decoder trains on the backbone's cached grid or a small CNN: "
                "train.fine_tune is for VQA models."
            )
        return config

    def train_rows(self, dataset):
        if dataset.captions is None:
            raise DatasetError(
                f"{dataset.root} has no captions.parquet: a caption decoder trains on a "
                "captions dataset (vqa prepare coco-captions, or vqa prepare scenes)."
            )
        named = [s for s in dataset.caption_splits if s.startswith("train")]
        if "train" not in named and len(named) != 1:
            raise DatasetError(
                f"{dataset.root} has no caption split to train on (one named 'train' or "
                f"train*); its caption splits are {dataset.caption_splits}."
            )
        return dataset.caption_split("train" if "train" in named else named[0])

    def fingerprint(self, dataset):
        return {"dataset": dataset.name, "counts": dataset.meta.get("caption_counts")}

    def new_vocabularies(self, fit_rows, config, dataset):
        return {"words": caption_vocabulary(fit_rows["caption"], config.train.min_word_count)}

    def encode(self, rows, images, image_rows, vocabularies, config, *, training):
        batches = CaptionBatches.from_captions(
            rows,
            images,
            image_rows,
            vocabularies["words"],
            config.model.max_caption_length,
            batch_size=config.train.batch_size,
            shuffle=training,
            seed=config.train.seed,
        )
        return rows, batches

    def new_model(self, config, vocabularies, steps_per_epoch):
        grid = model_grid_shape(config.model)
        model = build_captioner(config.model, len(vocabularies["words"]), grid_shape=grid)
        return model, adam(config, steps_per_epoch)

    def compiled(self):
        return {
            "loss": "sparse_categorical_crossentropy",
            "weighted_metrics": [keras.metrics.SparseCategoricalAccuracy(name="word_accuracy")],
        }


ANSWERS, CAPTIONS = Answers(), Captions()


def task_for(config: Config) -> Task:
    """The task `config`'s head learns: a caption decoder's or an answer classifier's."""
    return CAPTIONS if config.is_captioner else ANSWERS
