"""experiments/glimpse_ablation.py: cut one hop's glimpse off from the fusion."""

import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from vqa import run_dir as files

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
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
        tiny_attention_run / files.ANSWER_VOCAB).read_text()


def test_refuses_what_it_cannot_ablate(tiny_run, tiny_attention_run, tmp_path, capsys):
    assert main([str(tiny_run[0]), str(tmp_path / "a"), "--hop", "0"]) == 2
    assert "no other glimpse" in capsys.readouterr().err
    assert main([str(tiny_attention_run), str(tmp_path / "b"), "--hop", "2"]) == 2
    assert "--hop must be 0 to 1" in capsys.readouterr().err
    assert main([str(tiny_attention_run), str(tmp_path), "--hop", "0"]) == 2
    assert "exists" in capsys.readouterr().err
