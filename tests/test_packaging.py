"""The install files agree, and the README's commands are the ones CI runs."""

import re
import tomllib

import yaml
from conftest import ROOT


def _name(requirement: str) -> str:
    return re.split(r"[=<>!~\[ ;]", requirement, maxsplit=1)[0].lower()


def test_environment_yml_lists_the_same_dependencies_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = set(project["dependencies"]) | set(project["optional-dependencies"]["test"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = {r for r in pip if not r.startswith("-e")}
    assert listed == wanted  # same names *and* the same version bounds
    assert "python=3.11" in env["dependencies"]


def test_readme_quick_start_has_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```(?:bash|sh)\n(.*?)```", quick, re.S)
    assert len(commands) == 2, commands
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[1].strip() in ci
    assert "vqa demo" in commands[0]


def test_public_api_resolves_and_import_is_light():
    import subprocess
    import sys

    code = (
        "import sys, vqa; assert 'keras' not in sys.modules, 'import vqa loaded keras'; "
        "[getattr(vqa, n) for n in vqa.__all__]; print(len(vqa.__all__))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) == 27


def test_the_api_loads_tensorflow_without_its_start_up_notes():
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    out = subprocess.run(
        [sys.executable, "-c", "import vqa; vqa.build_model; print('ok')"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok"
    assert out.stderr == "", out.stderr


def test_the_readme_python_api_needs_only_the_default_install():
    """The README's API example exports an ONNX bundle and answers from it: what that
    imports is in the plain `pip install -e .` of the quick start, not in an extra."""
    readme = (ROOT / "README.md").read_text()
    example = readme.split("## Python API", 1)[1].split("\n## ", 1)[0]
    assert "export_run(" in example and "runtime.load(" in example
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    installed = {_name(r) for r in project["dependencies"]}
    assert {"tf2onnx", "onnx", "onnxruntime"} <= installed
