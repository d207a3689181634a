"""vqa.runs.atomic: one naming scheme for half-written files, nothing left on an error, and a
run directory with a crash's leftovers (ours, or vqa 0.1.0's) still clears."""

import os

import pytest

from vqa.runs import atomic, files


def test_temporary_names_keep_the_extensions_last():
    pid = os.getpid()
    assert atomic.temp_path("run/model.keras").name == f"model.tmp{pid}.keras"
    assert atomic.temp_path("w/lite0.weights.h5").name == f"lite0.tmp{pid}.weights.h5"
    assert atomic.temp_path("plain").name == f"plain.tmp{pid}"
    for name in ("model.keras", "lite0.weights.h5", "history.csv", "plain"):
        assert atomic.original_name(atomic.temp_path(name).name) == name
    # vqa 0.1.0's names
    assert atomic.original_name("model.tmp.keras") == "model.keras"
    assert atomic.original_name("history.csv.tmp") == "history.csv"
    assert atomic.original_name("notes.txt") == "notes.txt"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "state.json"
    atomic.write_json({"epoch": 1}, target)
    with pytest.raises(RuntimeError):
        with atomic.atomic_write(target) as tmp:
            tmp.write_text('{"epoch": 2')
            raise RuntimeError("crash mid-write")
    assert target.read_text() == '{\n  "epoch": 1\n}' and os.listdir(tmp_path) == ["state.json"]


def test_a_run_left_by_a_crash_clears_with_its_leftovers(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    for name in (
        "config.yaml",
        "history.csv.tmp",
        "model.tmp.keras",
        atomic.temp_path("training.json").name,
    ):
        (run / name).write_text("x")
    files.clear_run_dir(run)
    assert list(run.iterdir()) == []
    (run / "mine.txt").write_text("not a run's")
    with pytest.raises(files.RunDirError, match="mine.txt"):
        files.clear_run_dir(run)
