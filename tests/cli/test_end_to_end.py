"""The real path on tiny generated data: prepare -> train -> evaluate -> answer."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import TINY_CONFIG, draw_shape, make_tiny_dataset

from vqa import Answerer, evaluate_run
from vqa.cli import main
from vqa.config import save_config
from vqa.errors import ConfigError, ImageError, QuestionError, RunDirError
from vqa.runs import files
from vqa.training import RunCheckpoint, train


def test_run_dir_holds_everything_answering_needs(tiny_run):
    run, summary = tiny_run
    for name in (
        *files.NEEDED_TO_ANSWER,
        files.HISTORY,
        files.TRAINING,
        files.VALIDATION_IMAGES,
        files.MODEL_CARD,
        files.CURVES,
    ):
        assert (run / name).is_file(), name
    assert not (run / files.CHECKPOINT_DIR).exists()
    history = pd.read_csv(run / files.HISTORY)
    assert history["epoch"].tolist() == [1, 2]  # as the logs and the summary number them
    assert {"loss", "val_loss", "vqa_score", "val_vqa_score", "seconds"} <= set(history)
    assert summary["best_epoch"] in (1, 2) and summary["n_answers"] == 6


def test_run_dir_holds_tensorboard_scalars(tiny_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run, _ = tiny_run
    tags = {}
    for writer in ("train", "validation"):
        events = EventAccumulator(str(run / files.TENSORBOARD / writer))
        events.Reload()
        tags[writer] = set(events.Tags()["tensors"])
    assert {"epoch_loss", "epoch_vqa_score", "epoch_learning_rate", "epoch_seconds"} <= tags[
        "train"
    ]
    assert {"epoch_loss", "epoch_vqa_score"} <= tags["validation"]
    steps = [e.step for e in events.Tensors("epoch_vqa_score")]
    assert steps == [0, 1]  # one value an epoch, numbered as history.csv numbers them


def test_validation_images_are_held_out_of_fitting(tiny_run, tiny_dataset):
    run, summary = tiny_run
    val_images = set(json.loads((run / files.VALIDATION_IMAGES).read_text()))
    train = tiny_dataset.split("train")
    assert val_images and val_images < set(train["image_id"])
    assert summary["n_val_questions"] == train["image_id"].isin(val_images).sum()
    assert summary["n_fit_questions"] == len(train) - summary["n_val_questions"]


def test_evaluate_writes_metrics_and_official_results(tiny_run, tiny_dataset):
    run, _ = tiny_run
    metrics = evaluate_run(run, tiny_dataset.root, "test")
    test = tiny_dataset.split("test")
    assert metrics["n_questions"] == len(test)
    assert set(metrics["per_question_type"]) == set(test["question_type"])
    assert set(metrics["per_answer_type"]) == {"yes/no", "other"}
    assert json.loads((run / files.METRICS).read_text()) == metrics
    results = json.loads((run / files.PREDICTIONS).read_text())
    assert sorted(r["question_id"] for r in results) == sorted(test["question_id"])
    assert all(isinstance(r["answer"], str) for r in results)
    # Scoring the written results file gives the same numbers.
    from vqa.evaluation import score_results_file

    assert score_results_file(tiny_dataset.root, "test", run / files.PREDICTIONS) == metrics


def test_evaluating_another_dataset_or_split_keeps_the_runs_own_results(
    tiny_run, tiny_dataset, tmp_path
):
    """The run's own test evaluation (metrics, predictions, the card's accuracy) stays;
    another dataset of the same name, and the training split, are kept beside it."""
    run = tmp_path / "run"
    shutil.copytree(tiny_run[0], run)
    own = evaluate_run(run, tiny_dataset, "test")
    kept = {name: (run / name).read_bytes() for name in (files.METRICS, files.PREDICTIONS)}
    card = (run / files.MODEL_CARD).read_bytes()
    assert json.loads(card)["accuracy"]["overall"] == own["overall"]

    other = make_tiny_dataset(tmp_path / "other", n_images=6)
    assert other.name == tiny_dataset.name  # same name, another directory
    on_other = evaluate_run(run, other, "test")
    on_train = evaluate_run(run, tiny_dataset, "train")
    assert {name: (run / name).read_bytes() for name in kept} == kept
    assert (run / files.MODEL_CARD).read_bytes() == card
    where = {p.parent for p in (run / files.EVALUATIONS).rglob(files.METRICS)}
    assert len(where) == 2 and {p.name for p in where} == {"test", "train"}
    for metrics in (on_other, on_train):
        (path,) = [p for p in where if p.name == metrics["split"]]
        assert json.loads((path / files.METRICS).read_text()) == metrics
        assert len(json.loads((path / files.PREDICTIONS).read_text())) == metrics["n_questions"]
    assert on_other["n_questions"] == len(other.split("test")) != own["n_questions"]


def test_answerer_accepts_path_pil_and_array(tiny_run, tmp_path):
    run, _ = tiny_run
    answerer = Answerer.load(run)
    img = draw_shape("red", "circle")
    img.save(tmp_path / "x.png")
    results = [
        answerer.answer(image, "what color is the shape?", top_k=3)
        for image in (
            tmp_path / "x.png",
            str(tmp_path / "x.png"),
            img,
            np.asarray(img),
            img.resize((200, 100)),
            img.convert("L"),
        )
    ]
    for r in results:
        assert r.answer == r.top_k[0][0] and r.probability == r.top_k[0][1]
        assert len(r.top_k) == 3 and 0 < r.probability <= 1
        probs = [p for _, p in r.top_k]
        assert probs == sorted(probs, reverse=True)
    # The same pixels give the same answer whatever the container.
    assert results[0].top_k == results[1].top_k
    assert [a for a, _ in results[0].top_k] == [a for a, _ in results[2].top_k]
    np.testing.assert_allclose(
        [p for _, p in results[0].top_k], [p for _, p in results[3].top_k], rtol=1e-5
    )


def test_unknown_words_and_long_questions(tiny_run, caplog):
    answerer = Answerer.load(tiny_run[0])
    img = draw_shape("blue", "rectangle")
    r = answerer.answer(img, "  WHAT colour is the Zorblax?? ")
    assert r.unknown_words == ["colour", "zorblax"]
    with caplog.at_level("WARNING"):
        answerer.answer(img, "is there a red shape " * 5)
    assert "more than 8 words" in caplog.text


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda d: d / "missing.png", ImageError, "Image not found"),
        (
            lambda d: (d / "notes.txt").write_text("hello") and d / "notes.txt",
            ImageError,
            "Cannot read image",
        ),
        (
            lambda d: (d / "empty.png").write_bytes(b"") or d / "empty.png",
            ImageError,
            "Cannot read image",
        ),
        (lambda d: d, ImageError, "directory"),
    ],
)
def test_bad_images_are_clear_errors(tiny_run, tmp_path, make, error, match):
    answerer = Answerer.load(tiny_run[0])
    with pytest.raises(error, match=match):
        answerer.answer(make(tmp_path), "what color is the shape?")


def test_truncated_image_is_a_clear_error(tiny_run, tmp_path):
    draw_shape("red", "circle", size=200).save(tmp_path / "full.jpg", quality=95)
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="cut.jpg"):
        Answerer.load(tiny_run[0]).answer(tmp_path / "cut.jpg", "what shape?")


@pytest.mark.parametrize("question", ["", "   ", None])
def test_empty_question_is_a_clear_error(tiny_run, question):
    with pytest.raises(QuestionError, match="empty"):
        Answerer.load(tiny_run[0]).answer(draw_shape("red", "circle"), question)


def test_bad_array_is_a_clear_error(tiny_run):
    with pytest.raises(ImageError, match="uint8"):
        Answerer.load(tiny_run[0]).answer(np.zeros((4, 4, 3), "float64"), "what?")


def test_corrupt_vocabulary_is_a_clear_error(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run[0], run)
    (run / files.ANSWER_VOCAB).write_text("{not json")
    with pytest.raises(RunDirError, match="answer_vocab.json"):
        Answerer.load(run)


def test_not_a_run_dir(tmp_path):
    with pytest.raises(RunDirError, match="does not exist"):
        Answerer.load(tmp_path / "nope")
    with pytest.raises(RunDirError, match="lacks model.keras"):
        Answerer.load(tmp_path)


def test_checkpoint_keeps_the_best_epoch_not_the_last(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, name="d")])
    run = tmp_path
    (run / files.CHECKPOINT_DIR).mkdir()
    state = {
        "next_epoch": 0,
        "best": -1.0,
        "best_epoch": -1,
        "best_file": None,
        "last_file": None,
        "wait": 0,
        "stopped_early": False,
    }
    checkpoint = RunCheckpoint(run, patience=5, state=state)
    checkpoint.set_model(model)
    for epoch, score in enumerate([0.5, 0.7, 0.6]):
        model.get_layer("d").set_weights([np.full((1, 1), epoch, "float32"), np.zeros(1)])
        checkpoint.on_epoch_begin(epoch)
        checkpoint.on_epoch_end(epoch, {"val_vqa_score": score})
    assert state["best_epoch"] == 1 and state["last_file"] == "last-epoch2.keras"
    assert sorted(p.name for p in (run / files.CHECKPOINT_DIR).glob("*.keras")) == [
        "best-epoch1.keras",
        "last-epoch2.keras",
    ]
    best = keras.models.load_model(run / files.CHECKPOINT_DIR / state["best_file"])
    assert best.get_layer("d").get_weights()[0][0, 0] == 1.0


def test_early_stopping_on_a_plateau(tiny_dataset, tmp_path):
    # A learning rate too small to move the weights: validation never improves.
    config = TINY_CONFIG.with_train(
        epochs=6, early_stopping_patience=2, learning_rate=1e-12, learning_rate_schedule="constant"
    )
    summary = train(tiny_dataset.root, tmp_path / "run", config, verbose=0)
    assert summary["stopped_early"] and summary["epochs_run"] == 3
    assert summary["best_epoch"] == 1


def test_group_by_image_trains_on_whole_images_per_batch(tiny_dataset, tmp_path, monkeypatch):
    from vqa.data.batches import VQABatches

    seen = []  # (images, questions) of each training batch, as either input path plans it
    batch_rows = VQABatches.batch_rows

    def recording(self, i):
        rows, image_rows, about_image = batch_rows(self, i)
        if self.shuffle:
            seen.append((len(image_rows), len(rows)))
        return rows, image_rows, about_image

    monkeypatch.setattr(VQABatches, "batch_rows", recording)
    config = TINY_CONFIG.with_train(group_by_image=True)  # 4 questions an image, 16 a batch
    summary = train(tiny_dataset.root, tmp_path / "run", config, verbose=0)
    assert summary["epochs_run"] == 2
    assert sum(q for _, q in seen) >= 2 * summary["n_fit_questions"]  # keras may peek too
    assert all(images == questions // 4 for images, questions in seen)
    assert Answerer.load(tmp_path / "run").answer(draw_shape("red", "circle"), "what shape?")


def test_resume_with_another_config_is_refused(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    (run / files.CHECKPOINT_DIR).mkdir(parents=True)
    (run / files.CHECKPOINT_DIR / files.STATE).write_text("{}")
    save_config(TINY_CONFIG.with_train(epochs=9), run / files.CONFIG)
    with pytest.raises(ConfigError, match="different config"):
        train(tiny_dataset.root, run, TINY_CONFIG, verbose=0)


def test_finished_run_is_not_overwritten(tiny_run, tiny_dataset):
    with pytest.raises(RunDirError, match="already exists"):
        train(tiny_dataset.root, tiny_run[0], TINY_CONFIG, verbose=0)


def test_cli_train_evaluate_score_ask(tiny_dataset, tmp_path, capsys, monkeypatch):
    config = tmp_path / "tiny.yaml"
    save_config(TINY_CONFIG.with_train(epochs=1), config)
    run = tmp_path / "run"
    assert main(["train", str(tiny_dataset.root), "--config", str(config), "--out", str(run)]) == 0
    assert "best epoch 1 of 1" in capsys.readouterr().out
    # Training ends by writing the run's bundle, so that the first `vqa ask` skips Keras.
    assert files.current_bundle(run) == run / files.FAST_BUNDLE

    assert main(["evaluate", str(run), str(tiny_dataset.root), "--split", "test", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics == json.loads((run / files.METRICS).read_text())

    assert (
        main(
            [
                "score",
                str(tiny_dataset.root),
                "--split",
                "test",
                "--results",
                str(run / files.PREDICTIONS),
                "--json",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out) == metrics

    # One reference answer per question: both evaluators score exact match alike.
    assert (
        main(
            [
                "evaluate",
                str(run),
                str(tiny_dataset.root),
                "--split",
                "test",
                "--json",
                "--evaluator",
                "2017",
            ]
        )
        == 0
    )
    older = json.loads(capsys.readouterr().out)
    assert metrics["evaluator"] == "2021" and older["evaluator"] == "2017"
    assert {**older, "evaluator": "2021"} == metrics

    image = tiny_dataset.image_path(tiny_dataset.split("test")["image_id"].iloc[0])
    keras_answer = Answerer.load(run).answer(image, "What color is the shape?", top_k=2)

    def no_keras(*args, **kwargs):
        raise AssertionError("the Keras model was loaded")

    monkeypatch.setattr(Answerer, "load", no_keras)
    assert main(["ask", str(run), str(image), "What color is the shape?", "--top-k", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Q: What color is the shape?\nA: ") and " 2. " in out
    assert out.splitlines()[1].startswith(f"A: {keras_answer.answer} ")  # the bundle agrees


@pytest.mark.parametrize(
    "argv, match",
    [
        (["ask", "{run}", "{tmp}/missing.png", "what?"], "Image not found"),
        (["ask", "{run}", "{image}", "  "], "question is empty"),
        (["ask", "{tmp}", "{image}", "what?"], "Not a trained run directory"),
        (["evaluate", "{run}", "{tmp}", "--split", "test"], "Not a prepared dataset"),
        (["evaluate", "{run}", "{data}", "--split", "val2014"], "Split 'val2014' not found"),
        (["score", "{data}", "--results", "{tmp}/none.json"], "Results file not found"),
        (
            ["prepare", "clevr", "--root", "{tmp}/nowhere", "--out", "{tmp}/x"],
            "CLEVR root not found",
        ),
        (
            ["train", "{data}", "--config", "{tmp}/none.yaml", "--out", "{tmp}/r"],
            "Config file not found",
        ),
    ],
)
def test_cli_errors_are_one_line(tiny_run, tiny_dataset, tmp_path, capsys, argv, match):
    image = tiny_dataset.image_path(tiny_dataset.split("test")["image_id"].iloc[0])
    fields = {"run": tiny_run[0], "tmp": tmp_path, "image": image, "data": tiny_dataset.root}
    assert main([a.format(**fields) for a in argv]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and match in err[0], err


@pytest.mark.parametrize(
    "argv, match",
    [
        (["ask", "{run}", "{tmp}/missing.png", "what?"], "error: Image not found"),
        (["ask", "{run}", "{image}", ""], "error: The question is empty"),
        (["evaluate", "{tmp}", "{data}"], "error: Not a trained run directory"),
        (["train", "{tmp}", "--out", "{tmp}/r"], "error: Not a prepared dataset"),
        (["train", "{data}", "--out", "{data}"], "error: Run directory"),  # exists, not a run
        (["train", "{data}", "--out", "{data}", "--overwrite"], "error: Refusing to overwrite"),
    ],
)
def test_command_errors_come_before_tensorflow_loads(tiny_run, tiny_dataset, tmp_path, argv, match):
    import subprocess
    import sys

    image = tiny_dataset.image_path(tiny_dataset.split("test")["image_id"].iloc[0])
    fields = {"run": tiny_run[0], "tmp": tmp_path, "image": image, "data": tiny_dataset.root}
    proc = subprocess.run(
        [sys.executable, "-m", "vqa", *[a.format(**fields) for a in argv]],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    # Exactly one line: TensorFlow never started, so none of its start-up chatter.
    assert proc.stderr.splitlines() == [proc.stderr.strip()] and match in proc.stderr, proc.stderr


def test_overwrite_never_deletes_files_that_are_not_a_runs(tiny_dataset, tmp_path):
    (tmp_path / "notes.txt").write_text("precious")
    with pytest.raises(RunDirError, match="Refusing to overwrite"):
        train(tiny_dataset.root, tmp_path, TINY_CONFIG, verbose=0, overwrite=True)
    assert (tmp_path / "notes.txt").read_text() == "precious"


def test_overwrite_replaces_a_finished_run(tiny_run, tiny_dataset, tmp_path):
    run = shutil.copytree(tiny_run[0], tmp_path / "run")  # two epochs
    summary = train(
        tiny_dataset.root, run, TINY_CONFIG.with_train(epochs=1), verbose=0, overwrite=True
    )
    assert summary["epochs_run"] == 1
    assert len(pd.read_csv(run / files.HISTORY)) == 1


def test_an_unquoted_question_gets_a_hint(capsys):
    assert main(["ask", "runs/x", "cat.jpg", "what", "color", "is", "it"]) == 2
    assert capsys.readouterr().err.strip() == (
        'error: quote the question, as one argument: vqa ask runs/x cat.jpg "what color is it"'
    )


def test_every_option_with_a_default_shows_it_in_help():
    """argparse prints nothing for an option without help; every default is shown."""
    import argparse

    from vqa.cli.help import HelpFormatter
    from vqa.cli.main import build_parser

    def walk(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from walk(sub, f"{path} {name}")
            elif action.option_strings and action.default not in (None, False, "==SUPPRESS=="):
                yield path, action

    checked = 0
    for path, action in walk(build_parser(), "vqa"):
        text = HelpFormatter("vqa")._get_help_string(action)
        assert text.strip() and "default" in text, (path, action.option_strings)
        checked += 1
    assert checked > 20


@pytest.mark.parametrize("command", ["train", "ask", "extract", "evaluate", "prepare"])
def test_help_shows_defaults_choices_and_an_example(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    assert "example:\n  vqa " + command in text
    if command == "train":
        assert "(default: none)" in text and "{none,mirrored,multi-worker,data-parallel}" in text
        assert "override train.epochs (default: 10)" in text and "batch_size 64" in text
    if command == "extract":
        assert "backbone registered in" in text and "(default: efficientnet_lite0)" in text


def test_a_small_run_says_what_to_raise(tiny_run):
    """A dozen images at the default batch size take a few optimizer steps in all: the
    run says so in one line (training.json's advice, and a warning in the log)."""
    advice = tiny_run[1]["advice"]
    assert advice and "optimizer steps in all" in advice and "\n" not in advice


def test_training_advice_reads_the_history_and_the_steps():
    from vqa.config import Config, TrainConfig
    from vqa.training.schedule import training_advice

    config = Config(train=TrainConfig(epochs=10, batch_size=64, early_stopping_patience=3))
    history = pd.DataFrame({"loss": [2.0, 1.5, 1.2, 1.0, 0.9]})
    stopped = {"stopped_early": True, "best_epoch": 1}
    assert "10 optimizer steps in all (2 an epoch" in training_advice(history, stopped, 2, config)
    assert "stopped early with patience 3" in training_advice(history, stopped, 2, config)
    assert training_advice(history, stopped, 500, config) is None  # enough steps; it stopped
    improving = {"stopped_early": False, "best_epoch": 4}
    assert "still improved at the last epoch (5)" in training_advice(
        history, improving, 500, config
    )


def test_eager_steps_train_the_model_the_compiled_graph_does(tiny_run, tiny_dataset, tmp_path):
    """The tests' tiny runs step eagerly (TINY_CONFIG, as tiny_run); a user's run is
    compiled. Both train the same model: the same curve, up to the order float sums are
    taken in."""
    assert TINY_CONFIG.train.run_eagerly
    compiled = tmp_path / "compiled"
    train(tiny_dataset.root, compiled, TINY_CONFIG.with_train(run_eagerly=False), verbose=0)
    eager, compiled = (pd.read_csv(r / files.HISTORY) for r in (tiny_run[0], compiled))
    np.testing.assert_allclose(eager["loss"], compiled["loss"], rtol=1e-4)
    np.testing.assert_allclose(eager["val_vqa_score"], compiled["val_vqa_score"], atol=1e-6)
