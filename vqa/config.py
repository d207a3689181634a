"""Model and training configuration: frozen dataclasses, YAML in and out.

Defaults live here and nowhere else. A config file may set any subset of the
fields; unknown keys are an error that lists the valid ones.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vqa.errors import ConfigError

# Names a config may use; the registries in vqa.models hold what they build (a test
# keeps the two in step, so that config validation needs no Keras import). Fusions are
# checked against their own registry (vqa.models.fusions) when a model is built or a
# run starts: a fusion registered by the user's code is as valid as a built-in one.
QUESTION_ENCODER_CHOICES = ("lstm", "gru")
INPUT_CHOICES = ("both", "question", "image")  # question / image: the one-branch baselines
IMAGE_ENCODER_CHOICES = ("small_cnn", "pretrained")
BACKBONE_CHOICES = ("efficientnet_lite0", "mobilenet_v2", "resnet50", "efficientnet_b0")
LEARNING_RATE_SCHEDULES = ("constant", "cosine")
POOL_CHOICES = ("max", "flatten")


@dataclass(frozen=True)
class ModelConfig:
    """Sizes and choices of the network; what `build_model` needs besides vocab sizes."""

    image_encoder: str = "pretrained"  # pretrained (cached grid features) | small_cnn (pixels)
    backbone: str = "efficientnet_lite0"  # for image_encoder: pretrained
    # pretrained: the square input the backbone sees, a multiple of 32 (grid: size / 32).
    # 0: suit the dataset, its images' median short side rounded up to 32, within 64-224
    # (a run records the size it used).
    backbone_image_size: int = 0
    image_size: int = 64  # small_cnn: images are resized to image_size x image_size RGB
    cnn_filters: tuple[int, ...] = (16, 32, 64, 64)  # small_cnn: one strided block per entry
    # small_cnn: the question scales and shifts the channels of every CNN block
    # (conditional batch norm), so the image branch can look for what the question names
    conditioned_cnn: bool = False
    image_dim: int = 256  # image vector size after pooling the grid
    question_encoder: str = "lstm"  # lstm | gru
    question_layers: int = 1  # 1 to 3 stacked recurrent layers
    bidirectional: bool = False
    embedding_dim: int = 64
    word_vectors: str = ""  # GloVe-format text file to initialise the embedding ("" = none)
    question_dim: int = 128  # recurrent units (per direction)
    max_question_length: int = 14  # longer questions are truncated, with a warning
    # A registered fusion (vqa.models.fusions): concat | elementwise | mfb read the image
    # vector; relation | film read the grid's cells.
    fusion: str = "elementwise"
    fusion_dim: int = 256  # fused vector; relation: the width of g and f; film: channels
    # The fusion's own options, its constructor's arguments: mfb {factor: 5} (rank of each
    # output's bilinear form); relation {depth: 3} (layers of g, applied to every pair of
    # cells); film {blocks: 4} (residual conv blocks the question modulates).
    # Held as sorted (name, value) pairs, so that a config stays immutable and hashable;
    # a mapping is accepted, and YAML shows one.
    fusion_options: tuple = ()
    attention_hops: int = 0  # 0: pool the grid; 1 or 2: stacked soft attention over it
    # attention_hops 0: max (one vector of the channels' maxima over the cells) | flatten
    # (every cell with its own weights, so where things are stays known: Santoro et al.'s
    # CNN + MLP)
    pool_grid: str = "max"
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
    inputs: str = "both"  # both | question | image (the question-only / image-only baselines)
    classifier_dim: int = 256  # hidden layer between the fused vector and the answers
    dropout: float = 0.2

    def __post_init__(self) -> None:
        _check_types(self)
        if not self.fusion:
            raise ConfigError("fusion must name a registered fusion (vqa.models.fusions).")
        _check_choice("question_encoder", self.question_encoder, QUESTION_ENCODER_CHOICES)
        _check_choice("inputs", self.inputs, INPUT_CHOICES)
        _check_choice("pool_grid", self.pool_grid, POOL_CHOICES)
        if self.pool_grid != "max" and self.attention_hops:
            raise ConfigError(f"pool_grid: {self.pool_grid} is for the fusions of vectors "
                              "without attention; attention reads the cells itself.")
        if not 1 <= self.question_layers <= 3:
            raise ConfigError(f"question_layers must be 1, 2 or 3. Received: {self.question_layers}")
        if not 0 <= self.attention_hops <= 3:
            raise ConfigError(f"attention_hops must be 0 (no attention) to 3. "
                              f"Received: {self.attention_hops}")
        if self.attention_hops and self.inputs != "both":
            raise ConfigError("attention_hops needs both inputs. Received: "
                              f"inputs={self.inputs!r}")
        if self.attention_words and (not self.attention_hops or self.bidirectional):
            raise ConfigError("attention_words needs attention_hops >= 1 and a one-way "
                              "question encoder (bidirectional: false). Received: "
                              f"attention_hops={self.attention_hops}, "
                              f"bidirectional={self.bidirectional}")
        if self.attention_word_embeddings and not self.attention_words:
            raise ConfigError("attention_word_embeddings needs attention_words: true.")
        if self.attention_counts and not self.attention_hops:
            raise ConfigError("attention_counts needs attention_hops >= 1.")
        if self.attention_relative and self.attention_hops < 2:
            raise ConfigError("attention_relative needs attention_hops >= 2 (offsets from "
                              f"the previous hop). Received: attention_hops={self.attention_hops}")
        _check_choice("image_encoder", self.image_encoder, IMAGE_ENCODER_CHOICES)
        if self.conditioned_cnn and (self.image_encoder != "small_cnn"
                                     or self.inputs != "both"):
            raise ConfigError("conditioned_cnn needs image_encoder: small_cnn (a CNN trained "
                              "with the model) and both inputs. Received: image_encoder="
                              f"{self.image_encoder!r}, inputs={self.inputs!r}")
        if self.backbone not in BACKBONE_CHOICES:
            raise ConfigError(f"Unknown backbone {self.backbone!r}. Expected one of "
                              f"{list(BACKBONE_CHOICES)}.")
        if self.backbone_image_size and (self.backbone_image_size < 32
                                         or self.backbone_image_size % 32):
            raise ConfigError(f"backbone_image_size must be 0 (suit the dataset) or a "
                              f"multiple of 32. Received: {self.backbone_image_size}")
        for name in ("image_size", "image_dim", "embedding_dim", "question_dim",
                     "max_question_length", "fusion_dim", "classifier_dim", "attention_dim"):
            _check_positive(name, getattr(self, name))
        if not self.cnn_filters or min(self.cnn_filters) <= 0:
            raise ConfigError(
                f"Invalid value for cnn_filters: expected a non-empty list of positive "
                f"integers. Received: cnn_filters={list(self.cnn_filters)}")
        if self.image_encoder == "small_cnn" and self.image_size % (2 ** len(self.cnn_filters)):
            raise ConfigError(
                f"image_size must be divisible by 2**len(cnn_filters)="
                f"{2 ** len(self.cnn_filters)}. Received: image_size={self.image_size}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1). Received: dropout={self.dropout}")


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
    min_word_count: int = 1  # rarer question words map to the unknown token
    seed: int = 0

    def __post_init__(self) -> None:
        _check_types(self)
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0. Received: seed={self.seed}")
        for name in ("batch_size", "epochs", "max_answers", "min_word_count"):
            if getattr(self, name) is not None:
                _check_positive(name, getattr(self, name))
        _check_choice("learning_rate_schedule", self.learning_rate_schedule,
                      LEARNING_RATE_SCHEDULES)
        if self.learning_rate <= 0:
            raise ConfigError(f"learning_rate must be > 0. Received: {self.learning_rate}")
        if not 0 <= self.warmup_epochs < self.epochs:
            raise ConfigError(f"warmup_epochs must be >= 0 and below epochs ({self.epochs}). "
                              f"Received: warmup_epochs={self.warmup_epochs}")
        if self.clip_norm < 0:
            raise ConfigError(f"clip_norm must be >= 0 (0: no clipping). "
                              f"Received: {self.clip_norm}")
        if self.fine_tune and not 0 < self.backbone_learning_rate <= self.learning_rate:
            raise ConfigError("backbone_learning_rate must be > 0 and at most learning_rate. "
                              f"Received: {self.backbone_learning_rate}")
        if self.early_stopping_patience < 0:
            raise ConfigError("early_stopping_patience must be >= 0. "
                              f"Received: {self.early_stopping_patience}")
        if not 0.0 < self.validation_fraction < 1.0:
            raise ConfigError("validation_fraction must be in (0, 1). "
                              f"Received: {self.validation_fraction}")


@dataclass(frozen=True)
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if self.train.fine_tune and self.model.image_encoder != "pretrained":
            raise ConfigError("fine_tune needs model.image_encoder: pretrained (a backbone "
                              f"to fine-tune). Received: image_encoder="
                              f"{self.model.image_encoder!r}")

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
        return {"backbone": model.backbone, "image_size": model.backbone_image_size,
                "fine_tune": self.train.fine_tune}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "Config":
        data = dict(data or {})
        unknown = set(data) - {"model", "train"}
        if unknown:
            raise ConfigError(f"Unknown config section(s) {sorted(unknown)}. "
                              "Expected one of ['model', 'train'].")
        return cls(model=_section(ModelConfig, data.get("model")),
                   train=_section(TrainConfig, data.get("train")))

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["model"]["cnn_filters"] = list(self.model.cnn_filters)
        out["model"]["fusion_options"] = dict(self.model.fusion_options)
        return out

    def for_dataset(self, dataset: Any) -> "Config":
        """This config as a run on `dataset` (a PreparedDataset) uses it: a backbone input
        size left at 0 becomes the one that suits the dataset's images
        (`PreparedDataset.backbone_input_size`). Runs record this resolved config."""
        if self.model.backbone_image_size or self.model.image_encoder != "pretrained":
            return self
        size = dataset.backbone_input_size()
        return Config(dataclasses.replace(self.model, backbone_image_size=size), self.train)

    def with_train(self, **overrides: Any) -> "Config":
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
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"Config file {path} is not valid YAML: {exc}") from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"Config file {path} must hold a mapping with sections "
                          "'model' and 'train'.")
    try:
        return Config.from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def save_config(config: Config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))


def _section(cls: type, data: dict[str, Any] | None) -> Any:
    if data is None:
        return cls()
    if not isinstance(data, dict):
        raise ConfigError(f"Config section for {cls.__name__} must be a mapping. "
                          f"Received: {data!r}")
    if cls is ModelConfig:
        data = _with_fusion_options(data)
    valid = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - valid
    if unknown:
        near = {k: difflib.get_close_matches(k, valid, n=1) for k in sorted(unknown)}
        hints = "".join(f" Did you mean {m[0]!r} for {k!r}?" for k, m in near.items() if m)
        raise ConfigError(f"Unknown {cls.__name__} key(s) {sorted(unknown)}.{hints} "
                          f"Valid keys: {sorted(valid)}")
    try:
        return cls(**data)
    except TypeError as exc:
        raise ConfigError(f"Invalid {cls.__name__}: {exc}") from None


# Options that vqa 0.1.0 kept as model keys, and the fusion each belongs to: a config or
# run written then still loads, its option moved into fusion_options.
# Their 0.1.0 defaults are the options' defaults, and are left out.
_OLD_FUSION_KEYS = {"mfb_factor": ("mfb", "factor", 5), "relation_layers": ("relation", "depth", 3),
                    "film_blocks": ("film", "blocks", 4)}


def _with_fusion_options(data: dict[str, Any]) -> dict[str, Any]:
    data = dict(data)
    if not set(_OLD_FUSION_KEYS) & set(data):
        return data
    options = data.get("fusion_options") or {}
    if not isinstance(options, dict):
        return data  # the type check names the problem
    options = dict(options)
    fusion = data.get("fusion", ModelConfig.fusion)
    for key, (owner, option, default) in _OLD_FUSION_KEYS.items():
        if key in data:
            value = data.pop(key)
            if fusion != owner:
                continue
            if option in options and options[option] != value:
                raise ConfigError(f"{key}: {value} and fusion_options.{option}: "
                                  f"{options[option]} disagree; keep fusion_options only.")
            if value != default:
                options[option] = value
    data["fusion_options"] = options
    return data


def _check_types(section: Any) -> None:
    """Check each field against its annotation; convert what YAML gives loosely.

    PyYAML reads `1e-3` as a string and `[16, 32]` as a list: both are accepted for
    float and tuple fields. Booleans are never taken for numbers.
    """
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        if f.type in ("int", "int | None"):
            ok = ((isinstance(value, int) and not isinstance(value, bool))
                  or (value is None and f.type == "int | None"))
        elif f.type == "float":
            try:
                ok = not isinstance(value, bool)
                value = float(value) if ok else value
            except (TypeError, ValueError):
                ok = False
        elif f.type == "str":
            ok = isinstance(value, str)
        elif f.type == "bool":
            ok = isinstance(value, bool)
        elif f.name == "fusion_options":  # options by name
            pairs = value.items() if isinstance(value, dict) else value
            try:
                pairs = tuple(sorted((k, v) for k, v in pairs))
                ok = all(isinstance(k, str) for k, _ in pairs)
            except (TypeError, ValueError):
                ok = False
            value = pairs if ok else value
        else:  # tuple[int, ...]
            ok = (isinstance(value, (list, tuple)) and all(
                isinstance(v, int) and not isinstance(v, bool) for v in value))
            value = tuple(value) if ok else value
        if not ok:
            expected = "a mapping of options" if f.name == "fusion_options" else f.type
            raise ConfigError(f"Invalid value for {f.name}: expected {expected}. "
                              f"Received: {f.name}={getattr(section, f.name)!r}")
        object.__setattr__(section, f.name, value)


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"Invalid value for {name}. Expected one of {list(choices)}. "
                          f"Received: {name}={value!r}")


def _check_positive(name: str, value: float) -> None:
    if value <= 0:
        raise ConfigError(f"{name} must be positive. Received: {name}={value!r}")
