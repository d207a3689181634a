"""`vqa demo` on the real easy-VQA data: a one-epoch run by default, the full one when slow;
the README's Python API example runs against the one-epoch run."""

import contextlib
import io
import json
import math
import re

import pytest
from conftest import ROOT

from vqa.cli import main

README = ROOT / "README.md"


def _run_demo(out, *extra):
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["demo", "--out", str(out), *extra]) == 0
    metrics = json.loads((out / "run" / "metrics.json").read_text())
    return printed.getvalue(), metrics


@pytest.fixture(scope="module")
def one_epoch_demo(tmp_path_factory):
    """The demo trained for one epoch, once for this module: (its --out folder, its
    printed output, its metrics). The folder is named vqa-demo, as the README's is."""
    out = tmp_path_factory.mktemp("demo") / "vqa-demo"
    printed, metrics = _run_demo(out, "--epochs", "1")
    return out, printed, metrics


def test_demo_one_epoch_end_to_end(one_epoch_demo):
    out_dir, out, metrics = one_epoch_demo
    for step in ("1/5 prepare", "2/5 extract", "3/5 train", "4/5 evaluate", "5/5 ask"):
        assert step in out
    assert metrics["split"] == "test" and metrics["n_questions"] == 9673
    assert set(metrics["per_question_type"]) == {"color", "shape", "yes/no", "yes/no negated"}
    assert len(re.findall(r"Q: .*\n\s+A: \S+ \(\d+\.\d%\)", out)) == 2
    assert metrics["overall"] > 40  # one epoch is well above chance (13 answers)
    # easy-VQA's 64 px images are seen at 64 px by default (a 2x2 grid), not scaled to 224.
    assert (out_dir / "easy-vqa" / "features" / "efficientnet_lite0-64px.h5").is_file()
    assert "at 64 px" in out
    # The run's bundle is written as training ends: `vqa ask RUN` skips TensorFlow.
    from vqa.runs.files import current_bundle

    assert current_bundle(out_dir / "run") is not None and "answers from it" in out
    # A second run reuses the prepared data and the trained model.
    out, _ = _run_demo(out_dir)
    assert "already prepared" in out and "already trained" in out


def _readme_python_block(section: str) -> str:
    text = README.read_text().split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return text.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_api_example_runs_on_the_demo_run(one_epoch_demo, monkeypatch):
    from vqa.data.text import Vocabulary
    from vqa.errors import ImageError

    out_dir, _, _ = one_epoch_demo
    monkeypatch.chdir(out_dir.parent)  # the example's paths are relative to vqa-demo/'s folder
    namespace = {}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(_readme_python_block("Python API"), "README.md", "exec"), namespace)

    answers = set(Vocabulary.load(out_dir / "run" / "answer_vocab.json").tokens)
    r = namespace["r"]
    assert r.answer in answers
    assert r.top_k[0] == (r.answer, r.probability)
    probabilities = [p for _, p in r.top_k]
    assert len(r.top_k) == 3 and probabilities == sorted(probabilities, reverse=True)
    assert 0 < sum(probabilities) <= 1 + 1e-5 and r.probability > 1 / len(answers)
    assert r.unknown_words == []
    good, bad = namespace["results"]
    assert good.answer in answers and isinstance(bad, ImageError)
    assert "no-such-image.png" in str(bad)
    assert printed.getvalue().splitlines()[-1] == "0.9"
    assert printed.getvalue().splitlines()[-2] == r.answer  # the bundle answers as the run
    assert (out_dir / "bundle" / "model.onnx").is_file()
    assert math.isclose(
        float(printed.getvalue().splitlines()[0].split()[1]), r.probability, rel_tol=1e-6
    )


@pytest.mark.slow
def test_demo_default_model_reaches_99_percent(tmp_path):
    _, metrics = _run_demo(tmp_path)
    assert metrics["overall"] >= 99.0, metrics
