"""The fusion registry. A fusion is a Keras layer class, registered under a name with
what it reads besides the question vector:

    "vector"  the image vector (the grid pooled, or attended by attention_hops):
              call([question [batch, q_dim], image [batch, v_dim]]) -> [batch, units]
    "grid"    the grid itself, cell by cell (attention does not apply):
              call([question [batch, q_dim], grid [batch, rows, cols, c]]) -> [batch, units]
              A grid fusion whose class sets `reads_words = True` also takes, with
              `attention_words: true`, [..., word_states [batch, L, w], token_ids [batch, L]].

Its constructor takes `units` (the config's fusion_dim) first; its other arguments, with
their defaults, are the fusion's own options (in a config file, keys of the `fusion:`
section next to `fusion` itself), validated by the constructor and echoed by
`get_config`; they may not share a name with a config field. A new fusion is one class:

    @keras.saving.register_keras_serializable(package="my_package")
    @register_fusion("sum", reads="vector")
    class SumFusion(keras.layers.Layer):
        def __init__(self, units, scale=1.0, **kwargs): ...
"""

from __future__ import annotations

import difflib
import inspect
from typing import Any

from vqa.config import ModelConfig
from vqa.errors import ConfigError
from vqa.registry import Registry, constructor_options

READS = ("vector", "grid")
FUSIONS = Registry("fusion", "vqa.models.fusions.register_fusion")  # name -> layer class


def register_fusion(name: str, *, reads: str = "vector", layer_name: str = "fusion"):
    """Class decorator: make the layer class `name`'s fusion. `layer_name` is the name of
    the layer in built models (kept for the fusions whose runs already use another)."""
    if reads not in READS:
        raise ValueError(
            f"Invalid value for argument reads. Expected one of {list(READS)}. "
            f"Received: reads={reads!r}"
        )

    def register(cls: type) -> type:
        if "units" not in inspect.signature(cls.__init__).parameters:
            raise TypeError(
                f"A fusion's constructor takes `units` (the fused size) first; "
                f"{cls.__name__}.__init__ does not."
            )
        taken = sorted(set(fusion_options(cls)) & set(ModelConfig.__dataclass_fields__))
        if taken:
            raise TypeError(
                f"{cls.__name__}'s options {taken} have the names of config "
                "fields; name them otherwise."
            )
        FUSIONS.add(name, cls)
        cls.fusion_name, cls.reads, cls.layer_name = name, reads, layer_name
        return cls

    return register


def fusion_options(cls: type) -> dict[str, Any]:
    """A fusion's own options and their defaults: its constructor's arguments after
    `units`."""
    return constructor_options(cls, passed=("units",))


def get_fusion(name: str) -> type:
    return FUSIONS.named(name)


def check_fusion(model_config, construct: bool = True) -> type:
    """The fusion class a model config names, after checking its options and what the
    rest of the model must be for what it reads. Raises ConfigError.

    `construct` also builds one such layer, so that its constructor validates the
    option values; the builder passes False (it constructs the real one, and a spare
    would draw from the random streams the model's weights are then drawn from)."""
    cls = get_fusion(model_config.fusion)
    name, options = model_config.fusion, dict(model_config.fusion_options)
    allowed = fusion_options(cls)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        near = {k: difflib.get_close_matches(k, list(allowed), n=1) for k in unknown}
        hints = "".join(f" Did you mean {m[0]!r} for {k!r}?" for k, m in near.items() if m)
        raise ConfigError(
            f"Unknown option(s) {unknown} of fusion {name} (in the fusion "
            f"section).{hints} Its options, with their defaults: {allowed}."
        )
    for key, value in options.items():
        if not _same_kind(value, allowed[key]):
            raise ConfigError(
                f"Option {key} of fusion {name} must be of the kind of "
                f"its default, {allowed[key]!r}. Received: {key}={value!r}"
            )
    if construct:
        make_fusion(cls, model_config)
    if model_config.attention_words and cls.reads == "vector" and not model_config.attention_hops:
        raise ConfigError(
            "attention_words needs attention_hops >= 1 (each hop reads the words), or a "
            "fusion of the grid that reads them (referent). Received: attention_hops=0"
        )
    if (
        model_config.attention_words
        and cls.reads == "grid"
        and not getattr(cls, "reads_words", False)
    ):
        raise ConfigError(
            f"attention_words: fusion {name} does not read the words; referent does, "
            "or attention_hops >= 1 with a fusion of vectors."
        )
    if cls.reads == "grid":
        if model_config.inputs != "both":
            raise ConfigError(
                f"fusion: {name} needs both inputs (it reads the grid with the "
                f"question). Received: inputs={model_config.inputs!r}"
            )
        if model_config.attention_hops:
            raise ConfigError(
                f"attention_hops needs a fusion of vectors; {name} reads every "
                "cell already. Received: attention_hops="
                f"{model_config.attention_hops}"
            )
        if model_config.pool_grid != "max":
            raise ConfigError(
                f"pool_grid: {model_config.pool_grid} is for the fusions of "
                f"vectors without attention; {name} reads the cells itself."
            )
    return cls


def make_fusion(cls: type, model_config, **kwargs):
    """The fusion layer of a model config; a bad option value is a ConfigError."""
    try:
        return cls(model_config.fusion_dim, **dict(model_config.fusion_options), **kwargs)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"fusion {model_config.fusion}: {exc}") from None


def canonical_options(model_config) -> tuple:
    """The fusion options without those set to their default: the same model whether a
    config writes a default out or not (what resuming and `vqa compare` compare)."""
    defaults = fusion_options(get_fusion(model_config.fusion))
    return tuple(
        (k, v)
        for k, v in model_config.fusion_options
        if not (k in defaults and defaults[k] == v and type(defaults[k]) is type(v))
    )


def _same_kind(value: Any, default: Any) -> bool:
    if default is None or default is inspect.Parameter.empty:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, (int, float)):  # an int where a float is expected is fine
        return (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and (isinstance(default, float) or isinstance(value, int))
        )
    return isinstance(value, type(default))
