"""The code stays linted and formatted (ruff, configured in pyproject.toml)."""

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT


@pytest.mark.parametrize("command", [["check", "."], ["format", "--check", "."]])
def test_ruff_is_clean(command):
    ruff = Path(sys.executable).with_name("ruff")
    done = subprocess.run([str(ruff), *command], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
