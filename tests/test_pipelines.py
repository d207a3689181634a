"""vqa.pipeline: the transformers-style call over a run or a bundle (over a captioning
run: test_captioning, on its trained runs)."""

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
