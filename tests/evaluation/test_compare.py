"""`vqa compare`: variants trained side by side, the long CSV, the table and the plots."""

import json

import pandas as pd
import pytest
import yaml
from conftest import TINY_CONFIG

from vqa.cli import main as vqa_main
from vqa.config import save_config
from vqa.evaluation.compare import ANSWER_PRIOR, answer_prior


def _configs(tmp_path):
    out = []
    for name, section, model in (
        ("product", "fusion", {}),
        ("attention", "attention", {"attention_hops": 1}),
        ("question-only", "fusion", {"inputs": "question"}),
    ):
        path = tmp_path / f"{name}.yaml"
        save_config(TINY_CONFIG, path)
        data = yaml.safe_load(path.read_text())
        data[section].update(model)
        data["attention"]["attention_dim"] = 8
        data["train"]["epochs"] = 1
        path.write_text(yaml.safe_dump(data))
        out.append(path)
    return out


@pytest.fixture(scope="module")
def compared(tiny_dataset, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("compare")
    configs = _configs(tmp)
    argv = [
        "compare",
        str(tiny_dataset.root),
        *map(str, configs),
        "--runs",
        str(tmp / "runs"),
        "--results",
        str(tmp / "results"),
    ]
    assert vqa_main(argv) == 0
    return tmp, configs, argv


def test_long_csv_has_every_variant_and_question_type(compared, tiny_dataset):
    tmp, _, _ = compared
    table = pd.read_csv(tmp / "results" / "table.csv")
    assert {
        "variant",
        "question_type",
        "accuracy",
        "n_questions",
        "parameters",
        "seconds_per_epoch",
        "best_epoch",
    } <= set(table.columns)
    assert set(table["variant"]) == {ANSWER_PRIOR, "product", "attention", "question-only"}
    test = tiny_dataset.split("test")
    for _, rows in table.groupby("variant"):
        counts = dict(zip(rows["question_type"], rows["n_questions"]))
        assert counts == {"overall": len(test), **test["question_type"].value_counts()}
        assert rows["accuracy"].between(0, 100).all()
    run = tmp / "runs" / "tiny" / "attention"
    metrics = json.loads((run / "metrics.json").read_text())
    overall = table[(table["variant"] == "attention") & (table["question_type"] == "overall")]
    assert overall["accuracy"].item() == metrics["overall"]
    assert overall["parameters"].item() > 0


def test_markdown_and_plots(compared):
    tmp, _, argv = compared
    md = (tmp / "results" / "README.md").read_text()
    assert "| answer prior |" in md and "| attention |" in md
    assert "![curves](curves.png)" in md
    for png in ("curves.png", "confusion-product.png", "confusion-question-only.png"):
        assert (tmp / "results" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rerun_skips_done_variants_unless_forced(compared, capsys):
    tmp, configs, argv = compared
    model = tmp / "runs" / "tiny" / "product" / "model.keras"
    before = model.stat().st_mtime_ns
    assert vqa_main(argv) == 0
    assert model.stat().st_mtime_ns == before
    assert vqa_main(argv[:2] + [str(configs[0])] + argv[5:] + ["--force"]) == 0
    assert model.stat().st_mtime_ns != before


def test_answer_prior_is_the_most_frequent_answer_per_type():
    train = pd.DataFrame(
        {
            "question_type": ["color", "color", "color", "shape"],
            "answer": ["red", "blue", "red", "circle"],
        }
    )
    test = pd.DataFrame({"question_id": [1, 2, 3], "question_type": ["color", "shape", "new"]})
    assert answer_prior(train, test) == {1: "red", 2: "circle", 3: "red"}


def test_training_with_word_vectors_and_clipping(tiny_dataset, tmp_path):
    import dataclasses

    import keras
    import numpy as np

    from vqa.data.text import Vocabulary
    from vqa.training import train

    glove = tmp_path / "glove.txt"
    glove.write_text("color " + " ".join(["0.5"] * 8) + "\nshape " + " ".join(["-1"] * 8) + "\n")
    model = dataclasses.replace(
        TINY_CONFIG.model, word_vectors=str(glove), question_encoder="gru", bidirectional=True
    )
    config = dataclasses.replace(TINY_CONFIG, model=model).with_train(epochs=1, clip_norm=1.0)
    run = tmp_path / "run"
    train(tiny_dataset, run, config, verbose=0)
    words = Vocabulary.load(run / "question_vocab.json")
    loaded = keras.models.load_model(run / "model.keras", compile=False)
    weights = keras.ops.convert_to_numpy(
        loaded.get_layer("question_encoder").get_layer("word_embedding").embeddings
    )
    # One epoch of small steps moves the loaded vector only a little.
    np.testing.assert_allclose(weights[words.index["color"]], 0.5, atol=0.05)


def test_seeds_train_each_variant_once_per_seed_and_give_the_spread(tiny_dataset, tmp_path, capsys):
    config = tmp_path / "product.yaml"
    save_config(TINY_CONFIG.with_train(epochs=1), config)
    argv = [
        "compare",
        str(tiny_dataset.root),
        str(config),
        "--runs",
        str(tmp_path / "runs"),
        "--results",
        str(tmp_path / "results"),
        "--seeds",
        "3,4",
    ]
    assert vqa_main(argv) == 0
    assert str(tmp_path / "results" / "README.md") in capsys.readouterr().out
    table = pd.read_csv(tmp_path / "results" / "table.csv")
    overall = table[(table["variant"] == "product") & (table["question_type"] == "overall")]
    assert sorted(overall["seed"]) == [3, 4]
    for seed in (3, 4):
        run = tmp_path / "runs" / "tiny" / "product" / f"seed{seed}"
        assert json.loads((run / "training.json").read_text())["seed"] == seed
        assert (
            overall.loc[overall["seed"] == seed, "accuracy"].item()
            == json.loads((run / "metrics.json").read_text())["overall"]
        )
    row = next(
        line
        for line in (tmp_path / "results" / "README.md").read_text().splitlines()
        if line.startswith("| product |")
    )
    mean, spread = overall["accuracy"].mean(), overall["accuracy"].std()
    assert (
        f"{mean:.2f} ± {spread:.2f}" in row
        and "mean ± standard deviation of 2 seeds"
        in (tmp_path / "results" / "README.md").read_text()
    )
    assert row.endswith("| 1 of 1, 1 of 1 |")
    assert vqa_main(argv[:-1] + ["3,x"]) == 1
    assert "--seeds takes whole numbers" in capsys.readouterr().err
