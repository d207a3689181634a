"""`vqa demo` on the real easy-VQA data: a one-epoch run by default, the full one when slow."""

import json
import re

import pytest

from vqa.cli import main


def _run_demo(tmp_path, capsys, *extra):
    assert main(["demo", "--out", str(tmp_path), *extra]) == 0
    out = capsys.readouterr().out
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    return out, metrics


def test_demo_one_epoch_end_to_end(tmp_path, capsys):
    out, metrics = _run_demo(tmp_path, capsys, "--epochs", "1")
    for step in ("1/5 prepare", "2/5 extract", "3/5 train", "4/5 evaluate", "5/5 ask"):
        assert step in out
    assert metrics["split"] == "test" and metrics["n_questions"] == 9673
    assert set(metrics["per_question_type"]) == {"color", "shape", "yes/no", "yes/no negated"}
    assert len(re.findall(r"Q: .*\n\s+A: \S+ \(\d+\.\d%\)", out)) == 2
    assert metrics["overall"] > 40  # one epoch is well above chance (13 answers)
    # easy-VQA's 64 px images are seen at 64 px by default (a 2x2 grid), not scaled to 224.
    assert (tmp_path / "easy-vqa" / "features" / "efficientnet_lite0-64px.h5").is_file()
    assert "at 64 px" in out
    # A second run reuses the prepared data and the trained model.
    out, _ = _run_demo(tmp_path, capsys)
    assert "already prepared" in out and "already trained" in out


@pytest.mark.slow
def test_demo_default_model_reaches_99_percent(tmp_path, capsys):
    _, metrics = _run_demo(tmp_path, capsys)
    assert metrics["overall"] >= 99.0, metrics
