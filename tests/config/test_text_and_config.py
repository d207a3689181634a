import pytest
from conftest import ROOT

from vqa.config import Config, ModelConfig, TrainConfig, load_config, save_config
from vqa.data.text import PAD, UNK, Vocabulary, tokenize
from vqa.errors import ConfigError


def test_tokenize_ignores_case_punctuation_and_spaces():
    assert tokenize("  Is there NOT a blue shape?? ") == [
        "is",
        "there",
        "not",
        "a",
        "blue",
        "shape",
    ]
    assert tokenize("What's the color,of it!") == ["what's", "the", "color", "of", "it"]
    assert tokenize("?!") == []


def test_words_of_any_script_are_kept_and_unknown_ones_reported():
    assert tokenize("¿Qué color tiene el café?") == ["qué", "color", "tiene", "el", "café"]
    assert tokenize("Сколько кошек?") == ["сколько", "кошек"]
    assert tokenize("snake_case t-shirt") == ["snake", "case", "t", "shirt"]
    words = Vocabulary.for_questions(["what color is the café?"])
    encoded = words.encode_question("¿Qué color tiene el café?", 8)
    assert encoded.unknown_words == ["qué", "tiene", "el"]  # reported, not dropped


def test_question_vocabulary_reserves_pad_and_unknown():
    vocab = Vocabulary.for_questions(["is it red?", "is it blue?"])
    assert vocab.tokens[:2] == [PAD, UNK]
    encoded = vocab.encode_question("Is it GREEN?", max_length=5)
    assert encoded.ids.tolist() == [vocab.index["is"], vocab.index["it"], 1, 0, 0]
    assert encoded.unknown_words == ["green"] and not encoded.truncated
    long = vocab.encode_question("is it red is it blue is it", max_length=4)
    assert long.truncated and len(long.ids) == 4


def test_min_count_drops_rare_words():
    vocab = Vocabulary.for_questions(["red red blue"], min_count=2)
    assert "red" in vocab and "blue" not in vocab


def test_answer_vocabulary_ranks_by_frequency_then_name(tmp_path):
    vocab = Vocabulary.for_answers(["no", "yes", "yes", "red", "blue", "no"], max_size=3)
    assert vocab.tokens == ["no", "yes", "blue"]
    vocab.save(tmp_path / "a.json")
    assert Vocabulary.load(tmp_path / "a.json").tokens == vocab.tokens


def test_config_round_trips_through_yaml(tmp_path):
    config = Config(ModelConfig(fusion="concat", cnn_filters=(8, 16)), TrainConfig(epochs=3))
    save_config(config, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == config


def test_partial_config_file_keeps_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("fusion:\n  fusion: concat\n")
    config = load_config(path)
    assert config.model.fusion == "concat" and config.train == TrainConfig()


def test_every_model_field_has_one_section_in_field_order():
    import dataclasses

    from vqa.config import MODEL_SECTIONS

    listed = [key for keys in MODEL_SECTIONS.values() for key in keys]
    assert listed == [f.name for f in dataclasses.fields(ModelConfig)]


def test_a_saved_config_is_written_in_sections_with_the_fusion_options_inline(tmp_path):
    import yaml

    config = Config(
        ModelConfig(fusion="mfb", fusion_options={"factor": 3}, attention_hops=1, image_dim=32),
        TrainConfig(epochs=2),
    )
    save_config(config, tmp_path / "c.yaml")
    data = yaml.safe_load((tmp_path / "c.yaml").read_text())
    assert list(data) == ["image", "question", "attention", "fusion", "classifier", "train"]
    assert data["fusion"] == {"inputs": "both", "fusion": "mfb", "fusion_dim": 256, "factor": 3}
    assert data["image"]["image_dim"] == 32 and data["attention"]["attention_hops"] == 1
    assert load_config(tmp_path / "c.yaml") == config


def test_the_flat_model_section_of_vqa_0_1_still_loads(tmp_path):
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text(
        "model:\n  fusion: mfb\n  mfb_factor: 3\n  attention_hops: 1\n"
        "  image_dim: 32\ntrain:\n  epochs: 2\n"
    )
    new.write_text(
        "image:\n  image_dim: 32\nattention:\n  attention_hops: 1\n"
        "fusion:\n  fusion: mfb\n  factor: 3\ntrain:\n  epochs: 2\n"
    )
    assert load_config(old) == load_config(new)
    assert load_config(new).model.fusion_options == (("factor", 3),)


@pytest.mark.parametrize(
    "text, match",
    [
        # a key in the wrong place says where it goes
        ("image:\n  attention_hops: 1\n", "attention_hops belongs in section attention, not image"),
        (
            "question:\n  question_dims: 8\n",
            r"Unknown key 'question_dims' in section question. Did you mean 'question_dim'",
        ),
        ("fusion:\n  fusion_dm: 8\n", r"Did you mean 'fusion_dim' for 'fusion_dm'\?"),
        (
            "imag:\n  image_dim: 8\n",
            r"Unknown config section\(s\) \['imag'\]. Did you mean 'image'",
        ),
        ("model:\n  image_dim: 8\nimage:\n  image_dim: 8\n", "not both"),
        ("fusion:\n  fusion: mfb\n  factor: 3\n  fusion_options: {factor: 4}\n", "set twice"),
        ("fusion: mfb\n", "Config section fusion must be a mapping"),
        # a bad value, in any section
        ("fusion:\n  fusion_options: [1]\n", "fusion_options: expected a mapping"),
        (
            "model:\n  fusoin: concat\n",
            r"Unknown ModelConfig key\(s\) \['fusoin'\]. Did you mean 'fusion' for 'fusoin'\?",
        ),
        ("training:\n  epochs: 2\n", "Unknown config section"),
        ("train:\n  validation_fraction: 1.5\n", "validation_fraction"),
        ("image:\n  backbone: ''\n", "backbone must name a component"),
        ("- a\n- b\n", "mapping"),
        ("train:\n  epochs: 2.5\n", "expected int"),
        ("train:\n  epochs: true\n", "expected int"),
        ("image:\n  cnn_filters: '16'\n", "expected tuple"),
        ("image:\n  cnn_filters: [a, b]\n", "expected tuple"),
        ("train:\n  learning_rate: fast\n", "expected float"),
        ("train:\n  seed: -1\n", "seed must be >= 0"),
        ("train:\n  fine_tune: true\n  backbone_learning_rate: 0.1\n", "at most learning_rate"),
        ("image:\n  image_encoder: small_cnn\ntrain:\n  fine_tune: true\n", "fine_tune needs"),
        ("train:\n  fine_tune: 1\n", "expected bool"),
        ("image: [\n", "not valid YAML"),
    ],
)
def test_bad_config_names_the_problem(tmp_path, text, match):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config(path)


def test_invalid_yaml_is_one_line_with_its_place(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  epochs: 2\n    seed: 1\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "\n" not in message and "line 3, column" in message, message


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_yaml_scientific_notation_is_a_float(tmp_path):
    # PyYAML reads 1e-3 as a string; a learning rate is written that way all the time.
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  learning_rate: 1e-3\n")
    assert load_config(path).train.learning_rate == 0.001


@pytest.mark.parametrize("schedule, at_end", [("cosine", 0.0), ("constant", 1e-3)])
def test_warmup_ramps_the_learning_rate_up_then_follows_the_schedule(schedule, at_end):
    from vqa.training.schedule import learning_rate as _learning_rate

    config = Config(
        train=TrainConfig(
            epochs=4, learning_rate=1e-3, warmup_epochs=0.5, learning_rate_schedule=schedule
        )
    )
    rate = _learning_rate(config, steps_per_epoch=100)  # 50 warm-up steps of 400
    at = [float(rate(step)) for step in (0, 25, 50, 51, 399)]
    assert at[0] == 0.0
    assert at[1] == pytest.approx(5e-4)
    assert at[2] == pytest.approx(1e-3)
    assert at[3] == pytest.approx(1e-3, rel=1e-3)
    assert at[4] == pytest.approx(at_end, abs=1e-6)


def test_warmup_must_end_before_the_last_epoch():
    with pytest.raises(ConfigError, match="warmup_epochs must be >= 0 and below epochs"):
        TrainConfig(epochs=2, warmup_epochs=2)


@pytest.mark.parametrize(
    "path",
    sorted((ROOT / "experiments" / "configs").rglob("*.yaml")),
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_shipped_experiment_configs_load(path):
    load_config(path)  # unknown keys and bad values are errors
    assert path.read_text().startswith("#")  # each says what variant it is
    assert "\nmodel:" not in path.read_text()  # the sections, not vqa 0.1's flat layout
