"""experiments/probes/glimpse_ablation.py: cut one hop's glimpse off from the fusion, or the
words the hops read."""

import sys

import keras
import numpy as np
import pytest
from conftest import ROOT

from vqa.runs import files

sys.path.insert(0, str(ROOT / "experiments" / "probes"))
from glimpse_ablation import main  # noqa: E402


def _kernel(run):
    model = keras.models.load_model(run / files.MODEL, compile=False)
    return model.get_layer("fusion").project_image.kernel.numpy()  # [2 hops x 16, 16]


@pytest.mark.parametrize("hop", [0, 1])
def test_only_that_hops_rows_are_zeroed(tiny_attention_run, tmp_path, hop):
    out = tmp_path / f"without{hop}"
    assert main([str(tiny_attention_run), str(out), "--hop", str(hop)]) == 0
    before, after = _kernel(tiny_attention_run), _kernel(out)
    cut = slice(16 * hop, 16 * (hop + 1))
    assert before[cut].any() and not after[cut].any()
    kept = np.delete(np.arange(32), np.arange(32)[cut])
    np.testing.assert_array_equal(after[kept], before[kept])
    assert (out / files.ANSWER_VOCAB).read_text() == (
        tiny_attention_run / files.ANSWER_VOCAB
    ).read_text()


def test_refuses_what_it_cannot_ablate(tiny_run, tiny_attention_run, tmp_path, capsys):
    assert main([str(tiny_run[0]), str(tmp_path / "a"), "--hop", "0"]) == 2
    assert "no other glimpse" in capsys.readouterr().err
    assert main([str(tiny_attention_run), str(tmp_path / "b"), "--hop", "2"]) == 2
    assert "--hop must be 0 to 1" in capsys.readouterr().err
    assert main([str(tiny_attention_run), str(tmp_path), "--hop", "0"]) == 2
    assert "exists" in capsys.readouterr().err


def test_words_cut_off_every_hops_word_projection(
    tiny_dataset, tiny_attention_run, tmp_path, capsys
):
    from dataclasses import replace

    from conftest import TINY_CONFIG

    from vqa.config import Config
    from vqa.training import train

    run = tmp_path / "words"
    train(
        tiny_dataset.root,
        run,
        Config(
            replace(TINY_CONFIG.model, attention_hops=2, attention_words=True), TINY_CONFIG.train
        ),
        verbose=0,
    )

    def values(path):
        layer = keras.models.load_model(path / files.MODEL, compile=False).get_layer("attention")
        return [v.kernel.numpy() for v in layer.word_value]

    assert all(v.any() for v in values(run))  # trained away from their zero start
    assert main([str(run), str(tmp_path / "cut"), "--words"]) == 0
    assert not any(v.any() for v in values(tmp_path / "cut"))
    assert "without the hops' word reading" in capsys.readouterr().out
    assert main([str(tiny_attention_run), str(tmp_path / "none"), "--words"]) == 2
    assert "attention_words: false" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # one of --hop and --words, not both
        main([str(run), str(tmp_path / "both"), "--words", "--hop", "0"])
