"""experiments/probes/template_accuracy.py: accuracy per question template of our scenes."""

import json
import sys

import pytest
from conftest import ROOT

from data_prep import scenes

sys.path.insert(0, str(ROOT / "experiments" / "probes"))
from template_accuracy import main, template_accuracy  # noqa: E402


@pytest.fixture(scope="module")
def scenes_data(tmp_path_factory):
    return scenes.prepare(tmp_path_factory.mktemp("scenes") / "data", images=30).root


def _questions(data):
    return json.loads((data / "clevr/questions/CLEVR_test_questions.json").read_text())["questions"]


def test_each_template_counts_its_own_questions(scenes_data, tmp_path, capsys):
    asked = _questions(scenes_data)
    # Right on every question but "same" ones, where the answer is flipped.
    given = [
        {
            "question_id": q["question_index"],
            "answer": (
                {"yes": "no", "no": "yes"}[q["answer"]]
                if scenes.FORMS[q["question_family_index"]] == "same"
                else q["answer"]
            ),
        }
        for q in reversed(asked)
    ]  # order must not matter
    (tmp_path / "predictions.json").write_text(json.dumps(given))
    table = template_accuracy(tmp_path, scenes_data).set_index("template")
    same = sum(scenes.FORMS[q["question_family_index"]] == "same" for q in asked)
    assert 0 < same < len(asked)
    assert table.loc["same", "accuracy"] == 0 and table.loc["same", "n"] == same
    others = table.drop(index=["same", "overall"])
    assert (others["accuracy"] == 100).all() and others["n"].sum() == len(asked) - same
    assert table.loc["overall", "accuracy"] == pytest.approx(100 * (1 - same / len(asked)))
    assert main([str(tmp_path), str(scenes_data)]) == 0
    assert "overall" in capsys.readouterr().out


def test_predictions_of_another_split_or_none_are_refused(scenes_data, tmp_path):
    with pytest.raises(FileNotFoundError, match="vqa evaluate"):
        template_accuracy(tmp_path, scenes_data)
    asked = _questions(scenes_data)[:-1]
    (tmp_path / "predictions.json").write_text(
        json.dumps([{"question_id": q["question_index"], "answer": q["answer"]} for q in asked])
    )
    with pytest.raises(ValueError, match="Evaluate the run on this split"):
        template_accuracy(tmp_path, scenes_data)
