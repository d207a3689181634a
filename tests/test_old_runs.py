"""A run written by vqa 0.1.0 (tests/fixtures/run-0.1.0, made by make_run_0_1_0.py before
the restructure) still loads and answers as it did then: the same answers, top 3 and
probabilities, and each hop's attention map."""

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import draw_shape

FIXTURES = Path(__file__).parent / "fixtures"


def test_a_0_1_0_run_answers_as_before():
    from vqa.answering import Answerer

    expected = json.loads((FIXTURES / "run-0.1.0-expected.json").read_text())
    answerer = Answerer.load(FIXTURES / "run-0.1.0")
    assert len(expected) == 16
    for row in expected:
        got = answerer.answer(draw_shape(*row["image"]), row["question"], top_k=3)
        assert got.answer == row["answer"]
        assert [a for a, _ in got.top_k] == [a for a, _ in row["top_k"]]
        assert got.probability == pytest.approx(row["probability"], rel=1e-5)
        assert [p for _, p in got.top_k] == pytest.approx([p for _, p in row["top_k"]],
                                                          rel=1e-5)
        assert got.unknown_words == row["unknown_words"]
        np.testing.assert_allclose(got.hop_attention, row["hop_attention"], atol=1e-6)
