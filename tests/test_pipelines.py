"""vqa.pipeline: the transformers-style call over a run, a captioning run or a bundle."""

import io

import pytest
from conftest import draw_shape

import vqa


def test_a_run_answers_as_a_transformers_pipeline_does(tiny_run):
    pipe = vqa.pipeline(tiny_run[0])
    assert pipe.task == "visual-question-answering"
    image = draw_shape("red", "circle")
    answers = vqa.Answerer.load(tiny_run[0]).answer(image, "what color is the shape?", top_k=2)
    got = pipe(image, "what color is the shape?", top_k=2)
    assert [(d["answer"], round(d["score"], 6)) for d in got] == [
        (a, round(p, 6)) for a, p in answers.top_k
    ]
    png = io.BytesIO()
    image.save(png, format="PNG")
    both = pipe(png.getvalue(), ["what color is the shape?", "what shape is it?"])
    assert len(both) == 2 and all(len(one) == 1 for one in both)  # top_k=1 each
    assert both[0][0]["answer"] == got[0]["answer"]
    with pytest.raises(ValueError, match="needs a question"):
        pipe(image)


def test_a_caption_run_gives_generated_text(tmp_path):
    from test_captioning import CONFIG, _write_dataset

    from vqa.cli import main

    data = _write_dataset(tmp_path / "data")
    config = tmp_path / "c.yaml"
    config.write_text(CONFIG.replace("DECODER", "attention").replace("epochs: 15", "epochs: 1"))
    assert main(["train", str(data), "--config", str(config), "--out", str(tmp_path / "run")]) == 0
    pipe = vqa.pipeline(tmp_path / "run")
    assert pipe.task == "image-to-text"
    (row,) = pipe(data / "images" / "0.png")
    assert isinstance(row["generated_text"], str)
    with pytest.raises(ValueError, match="takes no question"):
        pipe(data / "images" / "0.png", "what?")
