"""`vqa export` and vqa.runtime: a run as an ONNX bundle that answers as the run does,
without TensorFlow."""

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, TINY_CONFIG, draw_shape

from vqa.cli import main as vqa_main
from vqa.errors import RunDirError, VQAError
from vqa.runs.image_profile import FOREIGN

QUESTIONS = [
    "What color is the shape?",
    "what shape is in the image?",
    "is there a red shape?",
    "is there a purple zebra?",
]


def _images():
    """The same four images as each kind the API accepts."""
    import io

    images = [
        draw_shape(c, s)
        for c, s in (
            ("red", "circle"),
            ("blue", "rectangle"),
            ("blue", "circle"),
            ("red", "rectangle"),
        )
    ]
    png = io.BytesIO()
    images[1].save(png, format="PNG")
    return [images[0], png.getvalue(), np.asarray(images[2]), images[3].resize((200, 120))]


@pytest.fixture(scope="module")
def pretrained_run(tmp_path_factory):
    """A run on cached backbone features (the demo's kind; the tests' tiny backbone, the
    demo test exports the real Lite0): the bundle holds the backbone."""
    import tiny_backbone
    from conftest import make_tiny_dataset

    from vqa.config import Config, ModelConfig
    from vqa.training import train

    tmp = tmp_path_factory.mktemp("pretrained")
    config = Config(
        ModelConfig(
            image_encoder="pretrained",
            backbone=tiny_backbone.NAME,
            image_dim=16,
            embedding_dim=8,
            question_dim=16,
            max_question_length=8,
            fusion_dim=16,
            classifier_dim=16,
        ),
        TINY_CONFIG.train.__class__(**{**TINY_CONFIG.train.__dict__, "epochs": 1}),
    )
    train(make_tiny_dataset(tmp / "tiny"), tmp / "run", config, verbose=0)
    return tmp / "run"


@pytest.fixture(scope="module", params=["attention", "pretrained"])
def exported(request, tmp_path_factory, tiny_attention_run):
    run = (
        tiny_attention_run
        if request.param == "attention"
        else request.getfixturevalue("pretrained_run")
    )
    bundle = tmp_path_factory.mktemp("bundles") / request.param
    assert vqa_main(["export", str(run), "--out", str(bundle)]) == 0
    return run, bundle


def test_the_bundle_holds_one_graph_and_what_answering_needs(exported):
    run, bundle = exported
    info = json.loads((bundle / "bundle.json").read_text())
    assert sorted(p.name for p in bundle.iterdir()) == sorted(
        [
            "bundle.json",
            "model.onnx",
            "question_vocab.json",
            "answer_vocab.json",
            "model_card.json",
            "image_profile.npz",  # foreign-image warnings, numpy only
        ]
    )
    assert info["format"] == "onnx" and info["inputs"]["pixels"]["shape"][0] is None
    assert max(info["check"]["max_abs_difference"].values()) < 1e-4
    import onnxruntime

    session = onnxruntime.InferenceSession(str(bundle / "model.onnx"))
    assert [i.name for i in session.get_inputs()] == ["pixels", "question"]
    shapes = {o.name: o.shape for o in session.get_outputs()}
    assert set(shapes) == set(info["outputs"])
    assert isinstance(shapes["answers"][0], str)  # a dynamic batch
    assert ("attention" in shapes) == (info["grid_shape"] is not None)


def test_the_runtime_answers_as_the_run_does(exported):
    from vqa import Answerer, runtime

    run, bundle = exported
    keras_answers = Answerer.load(run).answer_batch(_images(), QUESTIONS, top_k=3)
    onnx_answers = runtime.load(bundle).answer_batch(_images(), QUESTIONS, top_k=3)
    for k, o in zip(keras_answers, onnx_answers):
        assert type(o).__name__ == "AnswerResult"
        assert o.answer == k.answer and [a for a, _ in o.top_k] == [a for a, _ in k.top_k]
        np.testing.assert_allclose([p for _, p in o.top_k], [p for _, p in k.top_k], atol=1e-5)
        assert o.unknown_words == k.unknown_words and o.warnings == k.warnings
        if k.attention is None:
            assert o.attention is None
        else:
            np.testing.assert_allclose(o.hop_attention, k.hop_attention, atol=1e-5)
            assert o.attention.shape == k.attention.shape
    assert onnx_answers[3].unknown_words == ["purple", "zebra"]
    # A photograph, asked of a model trained on coloured shapes: both warn of it.
    from sklearn.datasets import load_sample_image

    photo = load_sample_image("china.jpg")
    for answerer in (Answerer.load(run), runtime.load(bundle)):
        assert FOREIGN in answerer.answer(photo, QUESTIONS[1]).warnings


def test_importing_and_answering_with_the_runtime_never_loads_tensorflow(exported):
    _, bundle = exported
    script = f"""
import sys
class Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "keras", "jax", "torch"):
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Blocked())
from PIL import Image
from vqa import runtime
model = runtime.load({str(bundle)!r})
result = model.answer(Image.new("RGB", (60, 40), (220, 30, 30)), "what color is the shape?")
print(result.answer, round(result.probability, 3), model.summary is not None)
import runpy
Image.new("RGB", (60, 40), (30, 30, 220)).save({str(bundle / "probe.png")!r})
sys.argv = ["vqa.runtime", {str(bundle)!r}, {str(bundle / "probe.png")!r}, "what color?"]
try:
    runpy.run_module("vqa.runtime", run_name="__main__")  # python -m vqa.runtime
except SystemExit as done:
    assert done.code == 0
assert not any(m.split(".")[0] in ("tensorflow", "keras") for m in sys.modules)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert done.returncode == 0, done.stderr
    answer, probability, has_card = done.stdout.splitlines()[0].split()
    assert 0 < float(probability) <= 1 and has_card == "True"
    assert done.stdout.splitlines()[1] == "Q: what color?"  # the command's answer
    (bundle / "probe.png").unlink()


def test_vqa_ask_answers_from_a_bundle(exported, tmp_path, capsys):
    run, bundle = exported
    image = tmp_path / "shape.png"
    draw_shape("blue", "circle").save(image)
    outputs = []
    for source in (run, bundle):
        assert vqa_main(["ask", str(source), str(image), "what shape is in the image?"]) == 0
        outputs.append(capsys.readouterr().out.splitlines())
    assert outputs[0][:2] == outputs[1][:2]  # the question and the answer
    assert outputs[1][-1].startswith("model: trained on tiny")
    if json.loads((bundle / "bundle.json").read_text())["grid_shape"]:  # --explain too
        why = tmp_path / "why.png"
        assert vqa_main(["ask", str(bundle), str(image), "what shape?", "--explain", str(why)]) == 0
        assert why.stat().st_size > 5_000


def test_export_refuses_in_one_line(tiny_run, tmp_path, capsys):
    run, _ = tiny_run
    (tmp_path / "taken").mkdir()
    for argv, message in (
        (["export", str(tmp_path / "nothing"), "--out", str(tmp_path / "b")], "not"),
        (["export", str(run), "--out", str(tmp_path / "taken")], "exists; pass --overwrite"),
    ):
        assert vqa_main(argv) == 1
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    from vqa.export import export_run

    with pytest.raises(VQAError, match=r"Unknown export format 'tflite'. Expected one of"):
        export_run(run, tmp_path / "b", format="tflite")
    assert not (tmp_path / "b").exists()


def test_the_runtime_refuses_what_it_cannot_read(tiny_run, tmp_path):
    from vqa import runtime

    run, _ = tiny_run
    with pytest.raises(RunDirError, match="Not an exported bundle"):
        runtime.load(run)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "bundle.json").write_text(json.dumps({"format": "saved_model"}))
    for name in ("question_vocab.json", "answer_vocab.json"):
        (tmp_path / "b" / name).write_text((run / name).read_text())
    with pytest.raises(
        RunDirError, match="holds a saved_model export; vqa.runtime answers from ONNX bundles"
    ):
        runtime.load(tmp_path / "b")


@pytest.mark.parametrize(
    "fmt, model_file", [("saved_model", "saved_model"), ("litert", "model.tflite")]
)
def test_the_other_formats_export(tiny_run, tmp_path, fmt, model_file):
    from vqa.export import export_run

    run, _ = tiny_run
    info = export_run(run, tmp_path / fmt, format=fmt)
    assert info["format"] == fmt and (tmp_path / fmt / model_file).exists()
    assert (tmp_path / fmt / "answer_vocab.json").is_file()


def test_vqa_serve_answers_from_a_bundle(exported):
    import http.client
    import threading

    from vqa import runtime
    from vqa.serve import make_server

    run, bundle = exported
    model = runtime.load(bundle)
    httpd = make_server(model, port=0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        image = io_png(draw_shape("red", "circle"))
        boundary = "b0undary"
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="question"\r\n\r\n'
                f"what color is the shape?\r\n--{boundary}\r\nContent-Disposition: form-data; "
                f'name="image"; filename="x.png"\r\n\r\n'
            ).encode()
            + image
            + f"\r\n--{boundary}--\r\n".encode()
        )
        connection = http.client.HTTPConnection(*httpd.server_address[:2], timeout=60)
        connection.request(
            "POST",
            "/api/answer",
            body,
            {"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        reply = json.loads(connection.getresponse().read())
        connection.close()
    finally:
        httpd.shutdown()
        httpd.server_close()
    expected = model.answer(draw_shape("red", "circle"), "what color is the shape?")
    assert reply["answer"] == expected.answer and reply["model"] == model.summary
    assert (reply["attention"] is None) == (expected.attention is None)


def io_png(img) -> bytes:
    import io

    buffer = io.BytesIO()
    img.save(buffer, "PNG")
    return buffer.getvalue()


def test_ask_run_writes_its_own_bundle_and_then_answers_from_it(tiny_run, tmp_path, capsys):
    """The first `vqa ask RUN` answers with Keras and exports RUN/bundle; the next ones
    answer from it, without loading the Keras model, until model.keras changes."""
    import shutil

    import vqa.answering
    from vqa.runs import files

    run = tmp_path / "run"
    shutil.copytree(tiny_run[0], run)
    image = tmp_path / "shape.png"
    draw_shape("red", "circle").save(image)
    ask = ["ask", str(run), str(image), "what shape is in the image?"]
    assert vqa_main(ask) == 0
    first = capsys.readouterr().out.splitlines()
    info = json.loads((run / files.FAST_BUNDLE / "bundle.json").read_text())
    assert info["source_model_sha256"] == files.model_digest(run)

    def no_keras(*args, **kwargs):
        raise AssertionError("the Keras model was loaded")

    keras_load, vqa.answering.Answerer.load = vqa.answering.Answerer.load, no_keras
    try:
        assert vqa_main(ask) == 0
        assert capsys.readouterr().out.splitlines()[:2] == first[:2]  # the same answer
        info["source_model_sha256"] = "0" * 64  # as if the run were trained again
        (run / files.FAST_BUNDLE / "bundle.json").write_text(json.dumps(info))
        with pytest.raises(AssertionError, match="Keras model was loaded"):
            vqa_main(ask)
    finally:
        vqa.answering.Answerer.load = keras_load
