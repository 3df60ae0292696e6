"""The package layers: imports point down only, and a tabular command imports no torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import kagtools

# Lowest first: a module may import from its own layer and those before it, never after.
LAYERS = ["errors", "core", "features", "analysis", "dl", "models", "ensemble", "tuning", "workflow", "kaggle", "cli"]


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if parts[0] == "kagtools" and len(parts) > 1 and parts[1] in LAYERS else None


def test_every_import_points_down_a_layer():
    root = Path(kagtools.__file__).parent
    upward = []
    for path in root.rglob("*.py"):
        module = ".".join(("kagtools", *path.relative_to(root).with_suffix("").parts)).removesuffix(".__init__")
        own = _layer(module)
        for node in ast.walk(ast.parse(path.read_text())):  # lazy imports inside functions too
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            else:
                continue
            upward += [f"{module} imports {n}" for n in names
                       if own is not None and (_layer(n) or 0) > own]
    assert not upward, upward
    assert set(LAYERS[1:]) <= {p.name for p in root.iterdir() if p.is_dir()}


def test_help_and_models_import_no_torch_nor_sklearn():
    code = ("import sys; from kagtools.cli.main import build_parser; build_parser(); "
            "from kagtools.models import create_model; create_model('cf_biases'); "
            "print(sorted(m for m in ('torch', 'timm', 'transformers', 'optuna') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
