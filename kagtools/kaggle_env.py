"""Everything that knows about Kaggle's environment: roots, kernel detection, data directories.

Inside a Kaggle kernel, competition files are under ``/kaggle/input/<slug>`` and outputs go to
``/kaggle/working``. Both roots are module attributes so tests can point them elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

from kagtools.errors import KagtoolsError

__all__ = [
    "KAGGLE_INPUT_ROOT",
    "KAGGLE_WORKING_ROOT",
    "in_kaggle_kernel",
    "project_root",
    "resolve_data_dir",
    "default_workdir",
]

KAGGLE_INPUT_ROOT = Path("/kaggle/input")
KAGGLE_WORKING_ROOT = Path("/kaggle/working")


def in_kaggle_kernel() -> bool:
    """True when running as a Kaggle kernel (Kaggle sets ``KAGGLE_KERNEL_RUN_TYPE``)."""
    return "KAGGLE_KERNEL_RUN_TYPE" in os.environ or KAGGLE_WORKING_ROOT.is_dir()


def project_root() -> Path:
    """The repository (or bundle) root that holds ``competitions/`` and ``pipelines/``."""
    return Path(__file__).resolve().parent.parent


def default_workdir() -> Path:
    """Where ``runs/``, ``reports/`` and ``submissions/`` go: /kaggle/working in a kernel."""
    if in_kaggle_kernel():
        return KAGGLE_WORKING_ROOT
    return Path.cwd()


def candidate_data_dirs(slug: str, data_dir: str | os.PathLike | None = None) -> list[Path]:
    """The data directories tried, in order (DESIGN.md's order)."""
    if data_dir is not None:
        return [Path(data_dir)]
    dirs = []
    env = os.environ.get("KAGTOOLS_DATA_DIR")
    if env:
        dirs.append(Path(env) / slug)
    dirs.append(KAGGLE_INPUT_ROOT / slug)
    dirs.append(Path("data") / slug)
    return dirs


def resolve_data_dir(slug: str, data_dir: str | os.PathLike | None = None) -> Path:
    """Find the competition's data: ``--data-dir``, ``$KAGTOOLS_DATA_DIR/<slug>``,
    ``/kaggle/input/<slug>``, ``./data/<slug>``; the first that exists wins."""
    dirs = candidate_data_dirs(slug, data_dir)
    for d in dirs:
        if d.is_dir():
            return d.resolve()
    tried = ", ".join(str(d) for d in dirs)
    raise KagtoolsError(
        f"no data for '{slug}' (looked in {tried}); run `kagtools download {slug}` "
        f"or pass --data-dir"
    )
