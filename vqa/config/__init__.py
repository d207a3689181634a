"""Model and training configuration: frozen dataclasses, YAML in and out.

Defaults live here and nowhere else. A config file has one section per component
(`SECTIONS`: image, question, attention, fusion, classifier, train) and may set any
subset of their fields; unknown keys are an error that lists the valid ones.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vqa.config import checks
from vqa.config.checks import (  # noqa: F401
    INPUT_CHOICES,
    LEARNING_RATE_SCHEDULES,
    POOL_CHOICES,
)
from vqa.errors import ConfigError


@dataclass(frozen=True)
class ModelConfig:
    """Sizes and choices of the network; what `build_model` needs besides vocab sizes.

    A config file writes these in the sections of `MODEL_SECTIONS` (image, question,
    attention, fusion, classifier), each checked by its own rules below."""

    # image: the branch that turns an image into a grid of cells, and the grid into a vector
    # A registered image encoder (vqa.models.image_encoders): pretrained (cached grid
    # features) | small_cnn (pixels) | conditioned_cnn (pixels; the question scales and
    # shifts the channels of every CNN block, so the image branch can look for what the
    # question names)
    image_encoder: str = "pretrained"
    backbone: str = "efficientnet_lite0"  # for image_encoder: pretrained
    # pretrained: the square input the backbone sees, a multiple of 32 (grid: size / 32).
    # 0: suit the dataset, its images' median short side rounded up to 32, within 64-224
    # (a run records the size it used).
    backbone_image_size: int = 0
    image_size: int = 64  # pixel encoders: images are resized to image_size x image_size RGB
    cnn_filters: tuple[int, ...] = (16, 32, 64, 64)  # small_cnn: one strided block per entry
    image_dim: int = 256  # image vector size after pooling the grid
    # attention_hops 0: max (one vector of the channels' maxima over the cells) | flatten
    # (every cell with its own weights, so where things are stays known: Santoro et al.'s
    # CNN + MLP)
    pool_grid: str = "max"

    # question: token ids to a vector (or to every word's state, for attention_words)
    question_encoder: str = "lstm"  # a recurrent unit (vqa.models.recurrent): lstm | gru | rnn
    question_layers: int = 1  # 1 to 4 stacked recurrent layers
    bidirectional: bool = False
    embedding_dim: int = 64
    word_vectors: str = ""  # GloVe-format text file to initialise the embedding ("" = none)
    question_dim: int = 128  # recurrent units (per direction)
    max_question_length: int = 14  # longer questions are truncated, with a warning

    # attention: stacked attention over the grid's cells, in place of the pooling
    attention: str = "soft"  # a registered attention (vqa.models.attention): soft | hard
    attention_hops: int = 0  # 0: pool the grid; 1 or 2: stacked attention over it
    attention_dim: int = 256  # attention: the space cells and question are scored in
    grid_coordinates: bool = False  # attention: give each cell its (x, y), for "left of"
    # attention: each hop also reads its own words of the question (a soft attention over
    # the recurrent layer's states), so that "Is the cube the same colour as the sphere?"
    # can look for the cube and the sphere in turn
    attention_words: bool = False
    # attention_words: each hop reads the words' embeddings next to their recurrent states
    # (a one-way layer's state holds everything up to its word: "as many red objects as
    # squares?" has no state of "squares" alone)
    attention_word_embeddings: bool = False
    # attention: each hop also gives how many cells it marks (a sum of sigmoids of its
    # cell scores), for "Are there as many red objects as squares?"
    attention_counts: bool = False
    # attention, 2 hops or more: each hop after the first also scores every cell's offset
    # from where the previous hop looked, for "left of the red circle", "closest to it"
    attention_relative: bool = False

    # fusion: what combines the question with the image
    inputs: str = "both"  # both | question | image (the question-only / image-only baselines)
    # A registered fusion (vqa.models.fusions): concat | elementwise | mfb read the image
    # vector; relation | film read the grid's cells.
    fusion: str = "elementwise"
    fusion_dim: int = 256  # fused vector; relation: the width of g and f; film: channels
    # The fusion's own options, its constructor's arguments: mfb {factor: 5} (rank of each
    # output's bilinear form); relation {depth: 3} (layers of g, applied to every pair of
    # cells); film {blocks: 4} (residual conv blocks the question modulates). A config
    # file writes them in the fusion section, next to `fusion`; the fusion's constructor
    # checks them when a model is built or a run starts.
    # Held as sorted (name, value) pairs, so that a config stays immutable and hashable;
    # a mapping is accepted.
    fusion_options: tuple = ()

    # classifier: from the fused vector to the answers
    classifier_dim: int = 256  # hidden layer between the fused vector and the answers
    dropout: float = 0.2

    # caption: a caption decoder in place of the answer classifier (vqa.models.decoders);
    # the image section's grid feeds it, the question, fusion and classifier sections
    # are not used
    decoder: str = ""  # "" (a VQA model) | a registered decoder: attention | pooled
    decoder_cell: str = "lstm"  # a registered recurrent unit, as question_encoder
    decoder_layers: int = 1  # 1 to 4 stacked recurrent layers
    decoder_dim: int = 256  # recurrent units
    word_dim: int = 128  # caption word embedding
    # attention: the doubly stochastic penalty (Xu et al. 2015, eq. 14), pushing the
    # attention of all steps together to cover every cell about once
    attention_penalty: float = 1.0
    max_caption_length: int = 16  # words; longer captions are truncated in training

    def __post_init__(self) -> None:
        checks.check_types(self)
        for check in (
            checks.check_image,
            checks.check_question,
            checks.check_attention,
            checks.check_fusion,
            checks.check_classifier,
            checks.check_caption,
        ):
            check(self)


# The sections of a config file that hold ModelConfig's fields, in their order there.
MODEL_SECTIONS = {
    "image": (
        "image_encoder",
        "backbone",
        "backbone_image_size",
        "image_size",
        "cnn_filters",
        "image_dim",
        "pool_grid",
    ),
    "question": (
        "question_encoder",
        "question_layers",
        "bidirectional",
        "embedding_dim",
        "word_vectors",
        "question_dim",
        "max_question_length",
    ),
    "attention": (
        "attention",
        "attention_hops",
        "attention_dim",
        "grid_coordinates",
        "attention_words",
        "attention_word_embeddings",
        "attention_counts",
        "attention_relative",
    ),
    "fusion": ("inputs", "fusion", "fusion_dim", "fusion_options"),
    "classifier": ("classifier_dim", "dropout"),
    "caption": (
        "decoder",
        "decoder_cell",
        "decoder_layers",
        "decoder_dim",
        "word_dim",
        "attention_penalty",
        "max_caption_length",
    ),
}
SECTIONS = (*MODEL_SECTIONS, "train")


@dataclass(frozen=True)
class TrainConfig:
    """How to fit: optimisation, stopping, the validation carve-out."""

    batch_size: int = 64
    # Each image's questions together in a batch, so the image branch (the small CNN;
    # the gathering of cached grids) runs once per image in it rather than per question:
    # faster epochs where images have many questions, less varied batches.
    group_by_image: bool = False
    epochs: int = 10
    learning_rate: float = 1e-3
    learning_rate_schedule: str = "cosine"  # constant | cosine (decays to 0 over `epochs`)
    warmup_epochs: float = 0.0  # ramp the learning rate up from 0 over these (fractional) epochs
    fine_tune: bool = False  # pretrained: train the backbone too, end to end from pixels
    backbone_learning_rate: float = 1e-5  # fine_tune: the backbone's (smaller) learning rate
    early_stopping_patience: int = 3  # epochs without val improvement before stopping
    validation_fraction: float = 0.1  # of training *images*, held out for model selection
    # Answer vocabulary: the most frequent training answers. None: the size the dataset
    # was prepared with (meta.json answer_vocabulary_size), else every training answer.
    max_answers: int | None = None
    clip_norm: float = 0.0  # clip gradients to this global norm (0: no clipping)
    # Re-estimate the image encoder's batch-norm statistics at each epoch's end, before
    # validation, from this many training images and the epoch's last weights, in place
    # of the running averages of its last batches (0: keep those).
    batch_norm_images: int = 0
    # Log the gradient reaching each word of the question (a caption decoder: from the
    # loss at each caption's last word), ten times an epoch, with the global norm before
    # clipping (RUN/gradient_flow.csv, .png, TensorBoard).
    log_gradient_flow: bool = False
    min_word_count: int = 1  # rarer question words map to the unknown token
    seed: int = 0
    # Run each training step as Python rather than a compiled graph: to step through a
    # layer of your own (slower on real data; faster for a run of a few steps, as the
    # tests' tiny runs, which skip the graph's tracing).
    run_eagerly: bool = False

    def __post_init__(self) -> None:
        checks.check_types(self)
        checks.check_train(self)


@dataclass(frozen=True)
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if self.train.fine_tune and self.model.image_encoder != "pretrained":
            raise ConfigError(
                "fine_tune needs model.image_encoder: pretrained (a backbone "
                f"to fine-tune). Received: image_encoder="
                f"{self.model.image_encoder!r}"
            )

    @property
    def is_captioner(self) -> bool:
        """Whether this config makes a caption decoder rather than a VQA model."""
        return bool(self.model.decoder)

    @property
    def pixels_in(self) -> bool:
        """Whether the model's "image" input is pixels (else a cached feature grid)."""
        return self.model.image_encoder != "pretrained" or self.train.fine_tune

    def image_inputs(self) -> dict[str, Any]:
        """What the model's "image" input is made from, as `features.image_table` takes
        it: a backbone (None: the small CNN's pixels) at an input size, fine-tuned or not."""
        model = self.model
        if model.image_encoder != "pretrained":
            return {"backbone": None, "image_size": model.image_size}
        return {
            "backbone": model.backbone,
            "image_size": model.backbone_image_size,
            "fine_tune": self.train.fine_tune,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Config:
        """A config from its file's mapping: the sections of `SECTIONS`, or the single
        flat `model:` section (and `train:`) that vqa 0.1 wrote, which still loads."""
        data = dict(data or {})
        unknown = set(data) - {*SECTIONS, "model"}
        if unknown:
            raise ConfigError(
                f"Unknown config section(s) {sorted(unknown)}."
                f"{checks.near(unknown, SECTIONS)} Expected some of {list(SECTIONS)}."
            )
        if "model" in data:
            if set(data) & set(MODEL_SECTIONS):
                raise ConfigError(
                    f"A config holds the sections {list(MODEL_SECTIONS)} or one "
                    "model: section (the layout of vqa 0.1), not both. Received: "
                    f"{sorted(data)}"
                )
            model = _section(ModelConfig, data["model"])
        else:
            model = _section(ModelConfig, checks.model_fields(data, MODEL_SECTIONS))
        return cls(model=model, train=_section(TrainConfig, data.get("train")))

    def to_dict(self) -> dict[str, Any]:
        """The config as its file holds it: one mapping per section, the fusion's own
        options next to `fusion`."""
        model = dataclasses.asdict(self.model)
        model["cnn_filters"] = list(self.model.cnn_filters)
        out = {
            name: {key: model[key] for key in keys if key != "fusion_options"}
            for name, keys in MODEL_SECTIONS.items()
        }
        out["fusion"].update(self.model.fusion_options)
        if not self.is_captioner and out["caption"] == {
            key: getattr(ModelConfig, key) for key in MODEL_SECTIONS["caption"]
        }:
            del out["caption"]  # a VQA model's file holds no caption section
        out["train"] = dataclasses.asdict(self.train)
        return out

    def for_dataset(self, dataset: Any) -> Config:
        """This config as a run on `dataset` (a PreparedDataset) uses it: a backbone input
        size left at 0 becomes the one that suits the dataset's images
        (`PreparedDataset.backbone_input_size`). Runs record this resolved config."""
        if self.model.backbone_image_size or self.model.image_encoder != "pretrained":
            return self
        size = dataset.backbone_input_size()
        return Config(dataclasses.replace(self.model, backbone_image_size=size), self.train)

    def with_train(self, **overrides: Any) -> Config:
        """A copy with some training fields changed (e.g. epochs for a quick run)."""
        return Config(self.model, dataclasses.replace(self.train, **overrides))


def load_config(path: str | Path | None) -> Config:
    """Read a YAML config; `None` gives the defaults."""
    if path is None:
        return Config()
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Config file not found: {path}")
    try:
        import yaml  # here: the command line's parser reads the defaults without it

        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:  # PyYAML's own message spans six lines: one here
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"Config file {path} is not valid YAML{where}: {problem}.") from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(
            f"Config file {path} must hold a mapping of sections, some of {list(SECTIONS)}."
        )
    try:
        return Config.from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


# Every backbone's own input size: what a run saved before runs recorded the size they
# used (vqa 0.1.0, `backbone_image_size: 0`) ran at.
BACKBONE_OWN_SIZE = 224


def load_run_config(run: str | Path) -> Config:
    """A run directory's config as the run used it: its image spec resolved (a recorded
    `backbone_image_size: 0` is the backbones' own size), for everything that answers,
    captions, evaluates or exports with the run."""
    from vqa.runs import files

    config = load_config(Path(run) / files.CONFIG)
    if config.model.image_encoder == "pretrained" and not config.model.backbone_image_size:
        model = dataclasses.replace(config.model, backbone_image_size=BACKBONE_OWN_SIZE)
        config = Config(model, config.train)
    return config


def trained_with(run: str | Path, config: Config) -> bool:
    """Whether the run directory holds a finished training made with this config."""
    from vqa.runs import files

    run = Path(run)
    return (
        (run / files.TRAINING).is_file()
        and (run / files.CONFIG).is_file()
        and load_config(run / files.CONFIG) == config
    )


def save_config(config: Config, path: str | Path) -> None:
    import yaml

    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))


def _section(cls: type, data: dict[str, Any] | None) -> Any:
    if data is None:
        return cls()
    if not isinstance(data, dict):
        raise ConfigError(
            f"Config section for {cls.__name__} must be a mapping. Received: {data!r}"
        )
    if cls is ModelConfig:
        data = checks.with_fusion_options(checks.with_image_encoder(data), ModelConfig.fusion)
    valid = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - valid
    if unknown:
        raise ConfigError(
            f"Unknown {cls.__name__} key(s) {sorted(unknown)}."
            f"{checks.near(unknown, valid)} Valid keys: {sorted(valid)}"
        )
    try:
        return cls(**data)
    except TypeError as exc:
        raise ConfigError(f"Invalid {cls.__name__}: {exc}") from None
