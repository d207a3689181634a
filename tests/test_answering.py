"""Answerer: the attention map, batches, explanations, and `vqa ask --explain / --batch`."""

import dataclasses
import io
import json

import numpy as np
import pandas as pd
import pytest
from conftest import draw_shape
from PIL import Image

from vqa.answering import Answerer, AnswerResult
from vqa.cli import main
from vqa.errors import ImageError, QuestionError
from vqa.visualize import draw_explanation


@pytest.fixture(scope="module")
def plain(tiny_run):
    return Answerer.load(tiny_run[0])


@pytest.fixture(scope="module")
def attentive(tiny_attention_run):
    return Answerer.load(tiny_attention_run)


def test_attention_is_the_grid_averaged_over_the_hops_and_sums_to_1(attentive):
    r = attentive.answer(draw_shape("red", "circle"), "what color is the shape?")
    assert r.attention.shape == (8, 8)  # 32 px through two stride-2 blocks
    assert r.attention.dtype == np.float32 and (r.attention >= 0).all()
    assert r.attention.sum() == pytest.approx(1.0, abs=1e-5)
    inputs = {
        "image": np.asarray(draw_shape("red", "circle").resize((32, 32)), "float32")[None],
        "about_image": np.zeros(1, "int32"),
        "question": attentive.words.encode_question("what color is the shape?", 8).ids[None],
    }
    # The explaining model is the loaded model: the same probabilities.
    probs = attentive.model.predict_on_batch(inputs)
    assert r.probability == pytest.approx(float(np.max(probs)), rel=1e-5)
    # Each hop's map, from the pixels the answerer made of the image.
    inputs["image"] = attentive._grids(
        attentive.preprocessing.pixels(draw_shape("red", "circle"))[None]
    )
    hops = attentive._explained.predict_on_batch(inputs)[1][0]  # [2 hops, 64 cells]
    assert not np.allclose(hops[0], hops[1])
    np.testing.assert_allclose(r.attention.ravel(), hops.mean(axis=0), rtol=1e-4, atol=1e-7)
    assert r.hop_attention.shape == (2, 8, 8)  # and each hop's own map
    np.testing.assert_allclose(r.hop_attention.reshape(2, -1), hops, rtol=1e-4, atol=1e-7)
    assert not r.hop_attention.flags.writeable and not r.attention.flags.writeable


def test_a_model_without_attention_gives_none(plain):
    result = plain.answer(draw_shape("red", "circle"), "what shape?")
    assert result.attention is None and result.hop_attention is None


def test_answer_result_stays_frozen_and_comparable(attentive):
    r = attentive.answer(draw_shape("blue", "rectangle"), "what shape?")
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.answer = "circle"
    assert r == dataclasses.replace(r, attention=None)  # arrays take no part in ==


def test_answer_batch_gives_what_answer_gives_one_by_one(attentive, tmp_path):
    images = [
        draw_shape(c, s, size)
        for c, s, size in (
            ("red", "circle", 48),
            ("blue", "rectangle", 100),
            ("red", "rectangle", 20),
        )
    ]
    images[1].save(tmp_path / "b.png")
    inputs = [images[0], tmp_path / "b.png", np.asarray(images[2])]
    questions = ["What color is the shape?", "what shape is in the image?", "is there a red shape?"]
    batch = attentive.answer_batch(inputs, questions, top_k=2)
    for image, question, result in zip(inputs, questions, batch):
        one = attentive.answer(image, question, top_k=2)
        assert result.question == question and result.answer == one.answer
        np.testing.assert_allclose(
            [p for _, p in result.top_k], [p for _, p in one.top_k], rtol=1e-4
        )
        np.testing.assert_allclose(result.attention, one.attention, rtol=1e-4, atol=1e-7)
    # Batches larger than batch_size are cut into several model calls.
    again = attentive.answer_batch(inputs * 3, questions * 3, top_k=2, batch_size=4)
    assert [r.question for r in again] == questions * 3
    np.testing.assert_allclose(
        [p for _, p in again[7].top_k], [p for _, p in batch[1].top_k], rtol=1e-4
    )


def test_a_bad_row_does_not_sink_the_batch(plain, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    img = draw_shape("red", "circle")
    images = [img, tmp_path / "notes.txt", img, img]
    questions = ["what shape?", "what shape?", "   ", "what color?"]
    results = plain.answer_batch(images, questions, on_error="return")
    assert isinstance(results[0], AnswerResult) and isinstance(results[3], AnswerResult)
    assert isinstance(results[1], ImageError) and "notes.txt" in str(results[1])
    assert isinstance(results[2], QuestionError)
    with pytest.raises(ImageError, match="notes.txt"):
        plain.answer_batch(images, questions)  # on_error="raise", the default
    with pytest.raises(ValueError, match="one question per image"):
        plain.answer_batch(images, questions[:2])
    with pytest.raises(ValueError, match="on_error"):
        plain.answer_batch(images, questions, on_error="skip")
    assert plain.answer_batch([], []) == []


def test_questions_as_people_type_them(plain, caplog):
    img = draw_shape("blue", "circle")
    clean = plain.answer(img, "what color is the shape")
    for typed in ("  WHAT color is the SHAPE?!  ", "What color, is the shape...\t\n"):
        assert plain.answer(img, typed).top_k == clean.top_k
    r = plain.answer(img, "What colour is the blorp?")
    assert r.unknown_words == ["colour", "blorp"]
    with caplog.at_level("WARNING", logger="vqa.answering"):
        long = plain.answer(img, "what color is the shape " * 4)  # 20 words, 8 are read
    assert "more than 8 words" in caplog.text
    assert long.top_k == plain.answer(img, "what color is the shape what color is").top_k


@pytest.mark.parametrize("fixture", ["attentive", "plain"])
def test_explain_writes_the_image_each_hops_heat_map_and_the_answers(request, fixture, tmp_path):
    answerer = request.getfixturevalue(fixture)
    out = tmp_path / "why.png"
    img = draw_shape("red", "circle", 200)
    result = answerer.explain(img, "what color is the zorblax?", out, top_k=3)
    assert result.unknown_words == ["zorblax"] and len(result.top_k) == 3
    hops = fixture == "attentive"  # two hops: a picture for each, then the answers
    assert (result.attention is not None) == hops
    with Image.open(out) as png:
        assert png.format == "PNG" and png.size == (1250 if hops else 850, 400)
        drawn = np.asarray(png.convert("RGB"))

    # Without attention the picture is the answer's Grad-CAM.
    cam = None if hops else answerer.grad_cam(img, "what color is the zorblax?", result.answer)

    def redraw(grad_cam=cam, **changes) -> np.ndarray:
        again = io.BytesIO()
        draw_explanation(
            img, dataclasses.replace(result, **changes), (0, 0, 200, 200), again, grad_cam=grad_cam
        )
        return np.asarray(Image.open(again).convert("RGB"))

    assert np.array_equal(redraw(), drawn)  # so that a difference below means something
    if not hops:
        assert cam is not None and not np.array_equal(redraw(grad_cam=None), drawn)
    if hops:  # each hop's own map is drawn: the hops swapped give another picture
        assert not np.array_equal(redraw(hop_attention=result.hop_attention[::-1]), drawn)
        mean_only = redraw(hop_attention=None)  # one map: one picture, the mean's
        assert mean_only.shape == (400, 850, 3)
        assert not np.array_equal(mean_only, redraw(hop_attention=None, attention=None))


def test_cli_ask_explain(tiny_attention_run, tmp_path, capsys):
    draw_shape("blue", "rectangle").save(tmp_path / "x.png")
    assert (
        main(
            [
                "ask",
                str(tiny_attention_run),
                str(tmp_path / "x.png"),
                "what shape?",
                "--explain",
                str(tmp_path / "why.png"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert out.startswith("Q: what shape?\nA: ") and f"explanation: {tmp_path / 'why.png'}" in out
    assert Image.open(tmp_path / "why.png").format == "PNG"


def test_cli_ask_batch_writes_one_row_per_question(tiny_run, tmp_path, capsys):
    (tmp_path / "images").mkdir()
    draw_shape("red", "circle").save(tmp_path / "images" / "a.png")
    (tmp_path / "images" / "bad.png").write_bytes(b"not an image")
    rows = [
        ("images/a.png", "What color is the shape?"),
        ("images/bad.png", "what shape?"),
        ("images/missing.jpg", "what shape?"),
        ("", "what shape?"),
        ("images/a.png", ""),
        ("images/a.png", "is there a BLUE zorblax?"),
    ] * 15
    pd.DataFrame(rows, columns=["image", "question"]).to_csv(tmp_path / "q.csv", index=False)
    out = tmp_path / "answers.csv"
    assert (
        main(
            [
                "ask",
                str(tiny_run[0]),
                "--batch",
                str(tmp_path / "q.csv"),
                "--out",
                str(out),
                "--top-k",
                "2",
            ]
        )
        == 1  # some rows failed: a script must notice
    )
    assert "30 of 90 questions answered, 60 failed" in capsys.readouterr().out
    answers = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(answers.columns) == [
        "image",
        "question",
        "answer",
        "probability",
        "top_k",
        "unknown_words",
        "error",
    ]
    assert answers[["image", "question"]].values.tolist() == [list(r) for r in rows]
    good, bad = answers.iloc[0], answers.iloc[1:5]
    assert good["error"] == "" and good["answer"] == json.loads(good["top_k"])[0][0]
    assert len(json.loads(good["top_k"])) == 2 and 0 < float(good["probability"]) <= 1
    assert answers.iloc[5]["unknown_words"] == "zorblax"
    errors = bad["error"].tolist()
    assert "bad.png" in errors[0] and "Image not found" in errors[1]
    assert errors[2] == "no image given" and "question is empty" in answers.iloc[4]["error"]
    assert (bad["answer"] == "").all()


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--batch", "{tmp}/none.csv"], "Questions file not found"),
        (["--batch", "{tmp}/wrong.csv"], "needs the columns image and question"),
        (["--batch", "{tmp}/empty.csv"], "Cannot read"),
        (["--batch", "{tmp}/wrong.csv", "--out", "{tmp}/no/such/dir/a.csv"], "does not exist"),
        (["{tmp}/x.png", "what?", "--batch", "{tmp}/wrong.csv"], "give no IMAGE, QUESTION"),
        (["{tmp}/x.png"], "Give an IMAGE and a QUESTION"),
        (["{tmp}/x.png", "what?", "--explain", "{tmp}/no/such/dir/x.png"], "does not exist"),
    ],
)
def test_cli_ask_errors_are_one_line(tiny_run, tmp_path, capsys, argv, match):
    pd.DataFrame({"picture": ["a.png"], "question": ["what?"]}).to_csv(tmp_path / "wrong.csv")
    (tmp_path / "empty.csv").write_text("")
    draw_shape("red", "circle").save(tmp_path / "x.png")
    assert main(["ask", str(tiny_run[0]), *[a.format(tmp=tmp_path) for a in argv]]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and match in err[0], err


def test_batches_of_any_size_trace_the_model_at_most_twice(tiny_run):
    """Keras traces predict once for the first batch size and once more with a free
    batch dimension (reduce_retracing); every later size reuses that graph, so the
    server's micro-batches and answer_batch of any size never trace again."""
    import keras

    if keras.backend.backend() != "tensorflow":
        pytest.skip("tracing counts are TensorFlow's")
    answerer = Answerer.load(tiny_run[0])
    image = draw_shape("red", "circle")
    for n in (1, 7, 64, 3, 33, 2, 5):
        answerer.answer_batch([image] * n, ["what color is the shape?"] * n)
    assert answerer.model.predict_function.experimental_get_tracing_count() <= 2
