"""Dependencies point one way (docs/architecture.md): each stage imports only the stages before it;
`store` imports nothing of `ffclr` or `ui`; `ffclr` never imports `ui`."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STAGES = ["data", "demo", "model", "eval", "train", "detection", "annotate"]
"""In order: a stage may import the ones before it, never one after it."""
FORBIDDEN = {
    "store": ("ffclr", "ui"),
    "ffclr": ("ui",),
    **{f"ffclr/{stage}": tuple(f"ffclr.{later}" for later in STAGES[i + 1:]
                               + ["commands", "benchmarks"])
       for i, stage in enumerate(STAGES)},
}


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _violations(folder: str, forbidden: tuple[str, ...], root: Path = REPO) -> list[str]:
    return sorted(f"{path.relative_to(root)} imports {name}"
                  for path in (root / folder).rglob("*.py")
                  for name in imported_modules(path)
                  if any(name == f or name.startswith(f + ".") for f in forbidden))


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_imports_point_one_way(folder):
    assert _violations(folder, FORBIDDEN[folder]) == []


def test_the_checker_sees_a_backward_import(tmp_path):
    module = tmp_path / "ffclr" / "data" / "crops.py"
    module.parent.mkdir(parents=True)
    module.write_text("import ffclr.data.preprocess\n\n\ndef f():\n"
                      "    from ffclr.train.loop import pretrain\n")
    assert _violations("ffclr/data", FORBIDDEN["ffclr/data"], tmp_path) == [
        "ffclr/data/crops.py imports ffclr.train.loop",
        "ffclr/data/crops.py imports ffclr.train.loop.pretrain"]
