"""The rules a config's values must keep, one function per section of the file (each
takes the section's dataclass); vqa.config calls them. No Keras here: a config is
checked before TensorFlow is imported."""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any

from vqa.errors import ConfigError

# The choices a config's plain fields may take. Image encoders, fusions, decoders,
# recurrent units and backbones are checked against their own registries (vqa.models,
# vqa.features.backbones) when a model is built or a run starts: one registered by the
# user's code is as valid as a built-in one, and config validation needs no Keras.
INPUT_CHOICES = ("both", "question", "image")  # question / image: the one-branch baselines
LEARNING_RATE_SCHEDULES = ("constant", "cosine")
POOL_CHOICES = ("max", "flatten")


def check_image(model) -> None:
    """The image section: the encoder, its backbone or CNN, the pooling."""
    check_name("image_encoder", model.image_encoder, "vqa.models.image_encoders")
    check_name("backbone", model.backbone, "vqa.features.backbones")  # and its input size
    for name in ("image_size", "image_dim"):
        check_positive(name, getattr(model, name))
    if not model.cnn_filters or min(model.cnn_filters) <= 0:
        raise ConfigError(
            f"Invalid value for cnn_filters: expected a non-empty list of positive "
            f"integers. Received: cnn_filters={list(model.cnn_filters)}"
        )
    check_choice("pool_grid", model.pool_grid, POOL_CHOICES)
    if model.pool_grid != "max" and model.attention_hops:
        raise ConfigError(
            f"pool_grid: {model.pool_grid} is for the fusions of vectors "
            "without attention; attention reads the cells itself."
        )


def check_question(model) -> None:
    """The question section: the recurrent encoder."""
    check_name("question_encoder", model.question_encoder, "vqa.models.recurrent")
    if not 1 <= model.question_layers <= 4:
        raise ConfigError(f"question_layers must be 1 to 4. Received: {model.question_layers}")
    for name in ("embedding_dim", "question_dim", "max_question_length"):
        check_positive(name, getattr(model, name))


def check_attention(model) -> None:
    """The attention section: hops over the cells, and what each hop reads."""
    if not 0 <= model.attention_hops <= 3:
        raise ConfigError(
            f"attention_hops must be 0 (no attention) to 3. Received: {model.attention_hops}"
        )
    if model.attention_hops and model.inputs != "both":
        raise ConfigError(f"attention_hops needs both inputs. Received: inputs={model.inputs!r}")
    check_positive("attention_dim", model.attention_dim)
    check_name("attention", model.attention, "vqa.models.attention")
    if model.attention != "soft" and not model.attention_hops:
        raise ConfigError(
            f"attention: {model.attention} needs attention_hops >= 1 (0 pools the grid)."
        )
    if model.attention_words and model.bidirectional:  # what reads them: check_fusion
        raise ConfigError(
            "attention_words needs a one-way question encoder (bidirectional: false). "
            f"Received: bidirectional={model.bidirectional}"
        )
    if model.attention_word_embeddings and not model.attention_words:
        raise ConfigError("attention_word_embeddings needs attention_words: true.")
    if model.attention_counts and not model.attention_hops:
        raise ConfigError("attention_counts needs attention_hops >= 1.")
    if model.attention_relative and model.attention_hops < 2:
        raise ConfigError(
            "attention_relative needs attention_hops >= 2 (offsets from "
            f"the previous hop). Received: attention_hops={model.attention_hops}"
        )


def check_fusion(model) -> None:
    """What a config can check without the registry; the registered fusion checks its
    options and what it reads (vqa.models.fusions.check_fusion)."""
    if not model.fusion:
        raise ConfigError("fusion must name a registered fusion (vqa.models.fusions).")
    check_choice("inputs", model.inputs, INPUT_CHOICES)
    check_positive("fusion_dim", model.fusion_dim)


def check_classifier(model) -> None:
    """The classifier section."""
    check_positive("classifier_dim", model.classifier_dim)
    if not 0.0 <= model.dropout < 1.0:
        raise ConfigError(f"dropout must be in [0, 1). Received: dropout={model.dropout}")


def check_caption(model) -> None:
    """The caption section (the decoder's name is checked by its registry)."""
    check_name("decoder_cell", model.decoder_cell, "vqa.models.recurrent")
    if not 1 <= model.decoder_layers <= 4:
        raise ConfigError(f"decoder_layers must be 1 to 4. Received: {model.decoder_layers}")
    for name in ("decoder_dim", "word_dim", "max_caption_length"):
        check_positive(name, getattr(model, name))
    if model.attention_penalty < 0:
        raise ConfigError(f"attention_penalty must be >= 0. Received: {model.attention_penalty}")


def check_train(train) -> None:
    """The train section (a TrainConfig)."""
    if train.seed < 0:
        raise ConfigError(f"seed must be >= 0. Received: seed={train.seed}")
    for name in ("batch_size", "epochs", "max_answers", "min_word_count"):
        if getattr(train, name) is not None:
            check_positive(name, getattr(train, name))
    check_choice("learning_rate_schedule", train.learning_rate_schedule, LEARNING_RATE_SCHEDULES)
    if train.learning_rate <= 0:
        raise ConfigError(f"learning_rate must be > 0. Received: {train.learning_rate}")
    if not 0 <= train.warmup_epochs < train.epochs:
        raise ConfigError(
            f"warmup_epochs must be >= 0 and below epochs ({train.epochs}). "
            f"Received: warmup_epochs={train.warmup_epochs}"
        )
    if train.batch_norm_images < 0:
        raise ConfigError(
            f"batch_norm_images must be >= 0 (0: off). Received: {train.batch_norm_images}"
        )
    if train.clip_norm < 0:
        raise ConfigError(f"clip_norm must be >= 0 (0: no clipping). Received: {train.clip_norm}")
    if train.fine_tune and not 0 < train.backbone_learning_rate <= train.learning_rate:
        raise ConfigError(
            "backbone_learning_rate must be > 0 and at most learning_rate. "
            f"Received: {train.backbone_learning_rate}"
        )
    if train.early_stopping_patience < 0:
        raise ConfigError(
            f"early_stopping_patience must be >= 0. Received: {train.early_stopping_patience}"
        )
    if not 0.0 < train.validation_fraction < 1.0:
        raise ConfigError(
            f"validation_fraction must be in (0, 1). Received: {train.validation_fraction}"
        )


def check_types(section: Any) -> None:
    """Check each field against its annotation; convert what YAML gives loosely.

    PyYAML reads `1e-3` as a string and `[16, 32]` as a list: both are accepted for
    float and tuple fields. Booleans are never taken for numbers.
    """
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        if f.type in ("int", "int | None"):
            ok = (isinstance(value, int) and not isinstance(value, bool)) or (
                value is None and f.type == "int | None"
            )
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
            ok = isinstance(value, (list, tuple)) and all(
                isinstance(v, int) and not isinstance(v, bool) for v in value
            )
            value = tuple(value) if ok else value
        if not ok:
            expected = "a mapping of options" if f.name == "fusion_options" else f.type
            raise ConfigError(
                f"Invalid value for {f.name}: expected {expected}. "
                f"Received: {f.name}={getattr(section, f.name)!r}"
            )
        object.__setattr__(section, f.name, value)


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(
            f"Invalid value for {name}. Expected one of {list(choices)}. Received: {name}={value!r}"
        )


def check_name(name: str, value: str, registry: str) -> None:
    """A component's name, which its registry (`registry`, a module) checks later."""
    if not (isinstance(value, str) and value):
        raise ConfigError(
            f"{name} must name a component registered in {registry}. Received: {name}={value!r}"
        )


def check_positive(name: str, value: float) -> None:
    if value <= 0:
        raise ConfigError(f"{name} must be positive. Received: {name}={value!r}")


# Reading a config file's sections into the dataclasses' fields.


def model_fields(data: dict[str, Any], sections: dict[str, tuple[str, ...]]) -> dict[str, Any]:
    """ModelConfig's fields from the model sections (`sections`: name -> its keys) of a
    config file. A key of another
    section, or a near miss of one, is an error; any other key of the fusion section is
    one of the fusion's own options (which the fusion checks)."""
    fields: dict[str, Any] = {}
    options: dict[str, Any] = {}
    owner = {key: name for name, keys in sections.items() for key in keys}
    for name, keys in sections.items():
        section = data.get(name)
        if section is None:
            continue
        if not isinstance(section, dict):
            raise ConfigError(f"Config section {name} must be a mapping. Received: {section!r}")
        for key, value in section.items():
            if key in keys or _OLD_MODEL_KEYS.get(key) == name:
                fields[key] = value
            elif key in owner:
                raise ConfigError(f"{key} belongs in section {owner[key]}, not {name}.")
            elif name == "fusion" and not difflib.get_close_matches(key, keys, n=1, cutoff=0.8):
                options[key] = value
            else:
                raise ConfigError(
                    f"Unknown key {key!r} in section {name}."
                    f"{near({key}, keys)} Valid keys: {list(keys)}"
                    + (" and the fusion's own options" if name == "fusion" else "")
                )
    if options:
        given = fields.get("fusion_options") or {}
        if not isinstance(given, dict):
            raise ConfigError(
                f"Invalid value for fusion_options: expected a mapping of "
                f"options. Received: fusion_options={given!r}"
            )
        both = sorted(k for k in set(options) & set(given) if options[k] != given[k])
        if both:
            raise ConfigError(
                f"fusion option(s) {both} set twice, in fusion_options and "
                "beside it, to different values; keep one."
            )
        fields["fusion_options"] = {**given, **options}
    return fields


def near(unknown: set[str], valid: Any) -> str:
    """ " Did you mean ...?" for each unknown key close to a valid one."""
    near = {k: difflib.get_close_matches(k, list(valid), n=1) for k in sorted(unknown)}
    return "".join(f" Did you mean {m[0]!r} for {k!r}?" for k, m in near.items() if m)


# Options that vqa 0.1.0 kept as model keys, and the fusion each belongs to: a config or
# run written then still loads, its option moved into fusion_options.
# Their 0.1.0 defaults are the options' defaults, and are left out.
_OLD_FUSION_KEYS = {
    "mfb_factor": ("mfb", "factor", 5),
    "relation_layers": ("relation", "depth", 3),
    "film_blocks": ("film", "blocks", 4),
}


# Model keys that configs and runs written before the image encoder registry hold, and
# their section: `conditioned_cnn: true` (with `image_encoder: small_cnn`) is now
# `image_encoder: conditioned_cnn`.
_OLD_MODEL_KEYS = {"conditioned_cnn": "image"}


def with_image_encoder(data: dict[str, Any]) -> dict[str, Any]:
    """A model section with the `conditioned_cnn` flag of earlier configs made the image
    encoder it named (`false` is dropped)."""
    if "conditioned_cnn" not in data:
        return data
    data = dict(data)
    flag = data.pop("conditioned_cnn")
    if not isinstance(flag, bool):
        raise ConfigError(
            f"Invalid value for conditioned_cnn: expected bool. Received: {flag!r} (it "
            "is now written image_encoder: conditioned_cnn)"
        )
    if flag:
        encoder = data.get("image_encoder", "pretrained")
        if encoder not in ("small_cnn", "conditioned_cnn"):
            raise ConfigError(
                "conditioned_cnn needs image_encoder: small_cnn (now written "
                f"image_encoder: conditioned_cnn). Received: image_encoder={encoder!r}"
            )
        data["image_encoder"] = "conditioned_cnn"
    return data


def with_fusion_options(data: dict[str, Any], default_fusion: str) -> dict[str, Any]:
    """A model section with the fusion options vqa 0.1.0 kept as model keys moved into
    fusion_options (for the fusion, `default_fusion` where none is named)."""
    data = dict(data)
    if not set(_OLD_FUSION_KEYS) & set(data):
        return data
    options = data.get("fusion_options") or {}
    if not isinstance(options, dict):
        return data  # the type check names the problem
    options = dict(options)
    fusion = data.get("fusion", default_fusion)
    for key, (owner, option, default) in _OLD_FUSION_KEYS.items():
        if key in data:
            value = data.pop(key)
            if fusion != owner:
                continue
            if option in options and options[option] != value:
                raise ConfigError(
                    f"{key}: {value} and fusion_options.{option}: "
                    f"{options[option]} disagree; keep fusion_options only."
                )
            if value != default:
                options[option] = value
    data["fusion_options"] = options
    return data
