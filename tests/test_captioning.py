"""The caption decoders end to end on a tiny captions dataset: train through the CLI,
caption with each decoding, explain, evaluate and score, and the refusals."""

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT
from PIL import Image
from test_images import AWKWARD

from vqa.cli import main
from vqa.errors import ConfigError, ImageError

COLOURS = {"red": (220, 30, 30), "green": (30, 190, 30), "blue": (30, 30, 220)}


def _write_dataset(root):
    """120 images of one coloured square, left or right; two true captions each."""
    (root / "images").mkdir(parents=True)
    images, captions = [], []
    for i in range(120):
        colour, side = list(COLOURS)[i % 3], ("left", "right")[(i // 3) % 2]
        pixels = np.full((32, 32, 3), 255, np.uint8)
        x = 2 if side == "left" else 18
        pixels[10:22, x : x + 12] = COLOURS[colour]
        Image.fromarray(pixels).save(root / "images" / f"{i}.png")
        images.append({"image_id": str(i), "path": f"{i}.png", "width": 32, "height": 32})
        split = "train" if i < 108 else "test"
        for text in (f"a {colour} square on the {side}", f"the {colour} square is on the {side}"):
            captions.append(
                {"caption_id": len(captions), "image_id": str(i), "split": split, "caption": text}
            )
    pd.DataFrame(images).to_parquet(root / "images.parquet")
    empty = pd.DataFrame(
        {
            c: pd.Series(dtype="int64" if c == "question_id" else object)
            for c in (
                "question_id",
                "image_id",
                "split",
                "question",
                "answers",
                "answer",
                "question_type",
                "answer_type",
            )
        }
    )
    empty.to_parquet(root / "questions.parquet")
    table = pd.DataFrame(captions)
    table.to_parquet(root / "captions.parquet")
    counts = {s: int(n) for s, n in table["split"].value_counts().items()}
    (root / "meta.json").write_text(
        json.dumps(
            {
                "name": "squares",
                "source": "test",
                "format_version": 1,
                "image_root": "images",
                "counts": {},
                "caption_counts": counts,
            }
        )
    )
    return root


CONFIG = """
image: {image_encoder: small_cnn, image_size: 32, cnn_filters: [16, 32], image_dim: 64}
attention: {attention_dim: 64}
caption: {decoder: DECODER, decoder_dim: 64, word_dim: 32, max_caption_length: 10}
train: {epochs: 15, batch_size: 16, learning_rate: 0.003, validation_fraction: 0.2,
        early_stopping_patience: 15}
"""


def _config_text(decoder: str) -> str:
    """The squares config; the pooled twin trains 2 epochs, as its tests read its maps
    and its rows of a table, not how good its captions are."""
    text = CONFIG.replace("DECODER", decoder)
    return text if decoder == "attention" else text.replace("epochs: 15", "epochs: 2")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("captions")
    data = _write_dataset(root / "data")
    out = {}
    for decoder in ("attention", "pooled"):
        config = root / f"{decoder}.yaml"
        config.write_text(_config_text(decoder))
        assert (
            main(["train", str(data), "--config", str(config), "--out", str(root / decoder)]) == 0
        )
        out[decoder] = root / decoder
    return data, out


@pytest.fixture(scope="module")
def captioner(runs):
    from vqa import Captioner

    return Captioner.load(runs[1]["attention"])


def test_captions_name_what_is_in_the_image(runs, captioner):
    data, _ = runs
    right = warned = 0
    for i in range(108, 120):
        colour, side = list(COLOURS)[i % 3], ("left", "right")[(i // 3) % 2]
        result = captioner.caption(data / "images" / f"{i}.png")
        right += colour in result.caption.split() and side in result.caption.split()
        warned += bool(result.warnings)
    assert right >= 9, right  # of 12 test images
    assert warned <= 1, warned  # its own kind of image is not foreign


def test_each_word_has_its_probability_and_attention_map(captioner, runs):
    result = captioner.caption(runs[0] / "images" / "110.png", decode="beam", beam_size=3)
    assert result.caption == " ".join(w.word for w in result.words) and result.words
    for word in result.words:
        assert 0 < word.probability <= 1
        assert word.attention.shape == (8, 8) and abs(word.attention.sum() - 1) < 1e-4
    assert np.isclose(
        result.log_probability, sum(np.log(w.probability) for w in result.words), atol=1.0
    )  # plus the end token's
    assert result.log_probability < 0


def test_beam_of_one_is_greedy_and_wider_beams_score_at_least_as_high(captioner, runs):
    images = [runs[0] / "images" / f"{i}.png" for i in range(108, 120)]
    greedy = captioner.caption_batch(images, "greedy")
    one = captioner.caption_batch(images, "beam", beam_size=1)
    wide = captioner.caption_batch(images, "beam", beam_size=4)
    assert [r.caption for r in one] == [r.caption for r in greedy]
    for g, w in zip(greedy, wide):
        assert w.log_probability >= g.log_probability - 1e-6


def test_sampling_is_reproducible_with_a_seed_and_varies_without(captioner, runs):
    image = runs[0] / "images" / "109.png"
    first = captioner.caption(image, "sample", temperature=1.5, seed=3)
    again = captioner.caption(image, "sample", temperature=1.5, seed=3)
    assert again.to_dict() == first.to_dict()
    seen = {captioner.caption(image, "sample", temperature=1.5, seed=s).caption for s in range(8)}
    assert len(seen) > 1


def test_the_pooled_twin_has_no_attention_maps(runs):
    from vqa import Captioner

    result = Captioner.load(runs[1]["pooled"]).caption(runs[0] / "images" / "110.png")
    assert result.words and all(w.attention is None for w in result.words)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"decode": "top-k"}, "Unknown decoding"),
        ({"decode": "beam", "beam_size": 0}, "beam_size"),
        ({"decode": "sample", "temperature": 0}, "temperature"),
    ],
)
def test_bad_decoding_requests_are_refused_in_one_line(captioner, runs, kwargs, message):
    from vqa.errors import VQAError

    with pytest.raises(VQAError, match=message) as info:
        captioner.caption(runs[0] / "images" / "110.png", **kwargs)
    assert "\n" not in str(info.value)


def test_every_awkward_image_is_captioned_or_refused_in_one_line(captioner, tmp_path):
    for name, (make, expected) in AWKWARD.items():
        make(tmp_path / name)
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            try:
                result = captioner.caption(tmp_path / name, "beam", beam_size=2)
            except ImageError as exc:
                assert expected != "answered", (name, exc)
                assert "\n" not in str(exc) and name in str(exc) and expected in str(exc)
                continue
        assert expected == "answered" and result.words, name


def test_the_cli_captions_explains_evaluates_and_scores(runs, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("vqa.metrics.meteor.shutil.which", lambda name: None)  # no METEOR:
    data, run = runs[0], runs[1]["attention"]  # its Java takes seconds, and is tested apart
    picture = tmp_path / "explain.png"
    assert (
        main(
            [
                "caption",
                str(run),
                str(data / "images" / "115.png"),
                "--decode",
                "beam",
                "--explain",
                str(picture),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "square" in out and Image.open(picture).size[0] > 300
    assert main(["evaluate", str(run), str(data), "--decode", "greedy", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["n_images"] == 12 and metrics["CIDEr-D"] > 50 and metrics["BLEU-4"] > 20
    results = run / "captions-test-greedy.json"
    assert main(["score", str(data), "--results", str(results), "--json"]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert {k: scored[k] for k in ("BLEU-4", "CIDEr-D")} == {
        k: metrics[k] for k in ("BLEU-4", "CIDEr-D")
    }
    assert main(["caption", str(run), str(tmp_path / "missing.png")]) != 0
    assert "missing.png" in capsys.readouterr().err


def test_an_unknown_decoder_is_refused_with_the_registered_ones(tmp_path):
    from vqa.config import ModelConfig
    from vqa.models import build_captioner

    with pytest.raises(ConfigError, match="attention.*pooled"):
        build_captioner(ModelConfig(image_encoder="small_cnn", decoder="transformer"), 10)


def test_the_server_gives_a_caption_next_to_the_answers(tiny_attention_run, captioner):
    import io
    import threading

    from http_client import _ask, _multipart, _png, _request
    from PIL import Image
    from sklearn.datasets import load_sample_image

    from vqa.answering import Answerer
    from vqa.runs.image_profile import FOREIGN
    from vqa.serve import make_server

    httpd = make_server(Answerer.load(tiny_attention_run), port=0, captioner=captioner)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        status, reply = _ask(httpd, _png("blue"), "what color is the shape?")
        assert status == 200 and reply["answer"] and reply["caption"]["caption"]
        assert reply["caption"]["words"][0]["probability"] > 0
        assert FOREIGN not in reply["warnings"]
        # A photograph, asked of runs trained on shapes: the answer and the caption say so.
        photo = io.BytesIO()
        Image.fromarray(load_sample_image("flower.jpg")).save(photo, format="PNG")
        status, reply = _ask(httpd, photo.getvalue(), "what color is the shape?")
        assert status == 200 and FOREIGN in reply["warnings"]
        assert FOREIGN in reply["caption"]["warnings"]
        body, kind = _multipart({"decode": "greedy"}, {"image": ("x.png", _png("red"))})
        status, alone = _request(httpd, "POST", "/api/caption", body, {"Content-Type": kind})
        assert status == 200 and alone["decode"] == "greedy" and alone["caption"]
        body, kind = _multipart(
            {"decode": "beam", "beam_size": "0"}, {"image": ("x.png", _png("red"))}
        )
        status, refused = _request(httpd, "POST", "/api/caption", body, {"Content-Type": kind})
        assert status == 400 and "beam_size" in refused["error"]
        body, kind = _multipart({}, {"image": ("x.png", b"not an image")})
        status, refused = _request(httpd, "POST", "/api/caption", body, {"Content-Type": kind})
        assert status == 415 and "x.png" in refused["error"]
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_the_readme_captioning_example_runs(runs, tmp_path, monkeypatch, capsys):
    text = (ROOT / "README.md").read_text()
    block = text.split("## Captioning\n", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "captions").symlink_to(runs[1]["attention"])
    (tmp_path / "photo.png").write_bytes((runs[0] / "images" / "112.png").read_bytes())
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert "square" in printed[0] and printed[1].endswith("(8, 8)")


def test_a_caption_run_starts_from_a_finished_one_and_resumes_after_a_crash(runs, tmp_path):
    """Warm-started from the trained run (`--init-from`), crashed after its first epoch,
    then resumed: the caption task's own state (its vocabulary, its rows' fingerprint)
    lets the one fit loop go on. That a resumed run ends as an uninterrupted one does is
    the loop's, proven on VQA runs in test_robustness."""
    import keras

    from vqa.config import load_config
    from vqa.errors import RunDirError
    from vqa.training import train

    source = runs[1]["attention"]
    config = load_config(source / "config.yaml").with_train(epochs=2, early_stopping_patience=2)

    class Crash(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                raise KeyboardInterrupt  # after the run's own checkpoint of epoch 1

    warm = {"verbose": 0, "init_from": source}
    run = tmp_path / "crashed"
    with pytest.raises(KeyboardInterrupt):
        train(runs[0], run, config, callbacks=[Crash()], **warm)
    before = pd.read_csv(run / "history.csv")
    summary = train(runs[0], run, config, **warm)
    resumed = pd.read_csv(run / "history.csv")
    assert resumed["epoch"].tolist() == [1, 2] and summary["epochs_run"] == 2
    assert resumed["seconds"].iloc[0] == before["seconds"].iloc[0]  # not trained again

    assert summary["initialised_from"] == str(source)
    assert (run / "caption_vocab.json").read_text() == (source / "caption_vocab.json").read_text()
    # The first epoch goes on from the trained weights, not random ones (46% after one).
    best = json.loads((source / "training.json").read_text())["best_val_word_accuracy"]
    assert 100 * resumed["val_word_accuracy"].iloc[0] > best - 5
    (tmp_path / "vqa-run").mkdir()
    (tmp_path / "vqa-run" / "question_vocab.json").write_text("[]")
    with pytest.raises(RunDirError, match="is a VQA run"):
        train(runs[0], tmp_path / "other", config, verbose=0, init_from=tmp_path / "vqa-run")


def test_each_kind_of_run_refuses_the_other_kinds_commands(runs, tiny_attention_run, capsys):
    caption_run = str(runs[1]["attention"])
    assert main(["ask", caption_run, str(runs[0] / "images" / "1.png"), "what?"]) != 0
    assert "is a captioning run" in capsys.readouterr().err
    assert main(["caption", str(tiny_attention_run), str(runs[0] / "images" / "1.png")]) != 0
    assert "is a VQA run" in capsys.readouterr().err


def test_compare_tables_the_decoders_and_retrains_only_a_changed_config(runs, tmp_path):
    import shutil

    data, trained = runs
    store, results = tmp_path / "runs", tmp_path / "results"
    configs = []
    for decoder, run in trained.items():  # the fixture's runs, where compare keeps them
        shutil.copytree(run, store / "squares" / decoder)
        configs.append(tmp_path / f"{decoder}.yaml")
        configs[-1].write_text(_config_text(decoder))
    argv = [
        "compare",
        str(data),
        *map(str, configs),
        "--runs",
        str(store),
        "--results",
        str(results),
    ]
    assert main(argv) == 0
    table = pd.read_csv(results / "table.csv")
    assert sorted(table["variant"].unique()) == ["attention", "pooled"]
    assert sorted(table["decode"].unique()) == ["beam 3", "greedy", "sample T=1"]
    assert table["CIDEr-D"].between(0, 1000).all()
    assert table.groupby("variant")["epochs_run"].max().to_dict() == {"attention": 15, "pooled": 2}
    readme = (results / "README.md").read_text()
    assert "| attention | beam 3 |" in readme and "| pooled | sample T=1 |" in readme
    # the same configs again: nothing retrained; the pooled one changed: it alone is
    configs[1].write_text(CONFIG.replace("DECODER", "pooled").replace("epochs: 15", "epochs: 1"))
    attention_run = store / "squares" / "attention" / "training.json"
    before = attention_run.read_text()
    assert main(argv) == 0
    table = pd.read_csv(results / "table.csv").set_index(["variant", "decode"])
    assert table.loc[("pooled", "greedy"), "epochs_run"] == 1
    assert table.loc[("attention", "greedy"), "epochs_run"] == 15
    assert attention_run.read_text() == before


def test_the_compare_readme_gives_every_column_over_the_seeds():
    from vqa.evaluation.compare_captions import SCORES, _markdown

    rows = [
        {
            "variant": "attention",
            "decode": "greedy",
            "seed": seed,
            **{k: 10.0 + seed for k in SCORES},
            "validation_word_accuracy": 60.0 + 2 * seed,
            "parameters": 1234,
            "seconds_per_epoch": 100.0 + 10 * seed,
        }
        for seed in (0, 1, 2)
    ]
    readme = _markdown(pd.DataFrame(rows), "squares", "test", 7, "vqa compare ...")
    assert "(7 images, one caption each)" in readme and "3 seeds" in readme
    row = next(line for line in readme.splitlines() if line.startswith("| attention |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2 : 2 + len(SCORES) - 1] == ["11.00 ± 1.00"] * (len(SCORES) - 1)
    assert cells[-3:] == ["62.00 ± 2.00", "1,234", "110.0"]  # means, not the first seed's


def test_a_caption_run_gives_generated_text_as_a_pipeline(runs):
    import vqa

    data, trained = runs
    pipe = vqa.pipeline(trained["attention"])
    assert pipe.task == "image-to-text"
    (row,) = pipe(data / "images" / "0.png")
    assert (
        row["generated_text"]
        == vqa.Captioner.load(trained["attention"]).caption(data / "images" / "0.png").caption
    )
    with pytest.raises(ValueError, match="takes no question"):
        pipe(data / "images" / "0.png", "what?")
