"""Installable: pyproject.toml matches requirements.txt, its console scripts resolve, and pretraining
workers import this same `ffclr` from any working directory (they run in the workspace folder:
`test_pretrain`'s job test starts real ones)."""
from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from ffclr.train import jobs

REPO = Path(__file__).resolve().parents[1]


def _requirement_lines(path: Path) -> set[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return {line for line in lines if line}


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_pyproject_installs_what_requirements_txt_lists():
    project = _pyproject()["project"]
    packaged = set(project["dependencies"]) | set(project["optional-dependencies"]["test"])
    assert packaged == _requirement_lines(REPO / "requirements.txt")
    assert not set(project["dependencies"]) & {"pytest>=8", "playwright>=1.50"}


def test_console_scripts_name_mains_that_return_exit_codes(capsys):
    scripts = _pyproject()["project"]["scripts"]
    assert set(scripts) == {"ffclr", "ffclr-app"}
    found = {}
    for name, target in scripts.items():
        module, attribute = re.fullmatch(r"([\w.]+):(\w+)", target).groups()
        found[name] = getattr(importlib.import_module(module), attribute)
    assert found["ffclr"]([]) == 2
    assert "COMMAND" in capsys.readouterr().out
    assert found["ffclr-app"].__module__ == "ui.main"


def test_worker_environment_imports_this_ffclr_from_an_unrelated_directory(tmp_path, monkeypatch):
    import ffclr
    import store

    monkeypatch.delenv("PYTHONPATH", raising=False)
    shown = subprocess.run(
        [sys.executable, "-c", "import ffclr.train.jobs, store; print(ffclr.__file__); "
                               "print(store.__file__)"],
        cwd=tmp_path, env=jobs.worker_env(), capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.split() == [ffclr.__file__, store.__file__]


def test_worker_environment_keeps_an_existing_pythonpath(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/somewhere/else")
    assert jobs.worker_env()["PYTHONPATH"].split(os.pathsep) == [str(jobs.PACKAGE_PARENT),
                                                          "/somewhere/else"]

