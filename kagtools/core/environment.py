"""Everything that knows about Kaggle's environment: roots, kernel detection, data directories,
and the fields of ``kernel-metadata.json``.

Inside a Kaggle kernel, competition files are under ``/kaggle/input/<slug>`` and outputs go to
``/kaggle/working``. Both roots are module attributes (tests may assign them) and can be moved
with ``KAGTOOLS_KAGGLE_INPUT`` / ``KAGTOOLS_KAGGLE_WORKING``, which is how a bundled kernel
script is run in a simulated layout: a subprocess has no other way to be told.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from kagtools.errors import KagtoolsError

__all__ = ["KAGGLE_INPUT_ROOT", "KAGGLE_WORKING_ROOT", "T4X2_MACHINE_SHAPE", "in_kaggle_kernel", "project_root",
           "shipped_dir", "resolve_data_dir", "candidate_data_dirs", "default_workdir", "kernel_slug", "kernel_metadata"]

KAGGLE_INPUT_ROOT = Path(os.environ.get("KAGTOOLS_KAGGLE_INPUT", "/kaggle/input"))
KAGGLE_WORKING_ROOT = Path(os.environ.get("KAGTOOLS_KAGGLE_WORKING", "/kaggle/working"))
# The accelerator name Kaggle's API takes for "GPU T4 x2" (kagglesdk's SaveKernel docs).
T4X2_MACHINE_SHAPE = "NvidiaTeslaT4"


def in_kaggle_kernel() -> bool:
    """True when running as a Kaggle kernel (Kaggle sets ``KAGGLE_KERNEL_RUN_TYPE``)."""
    return "KAGGLE_KERNEL_RUN_TYPE" in os.environ or KAGGLE_WORKING_ROOT.is_dir()


def project_root() -> Path:
    """The repository (or bundle) root that holds ``competitions/`` and ``pipelines/``."""
    return Path(__file__).resolve().parents[2]


def shipped_dir(kind: str) -> Path:
    """The shipped ``competitions`` or ``pipelines`` folder: inside the installed package (a
    wheel puts them in ``kagtools/shipped/``), else beside it (the checkout, a kernel bundle)."""
    inside = Path(__file__).resolve().parents[1] / "shipped" / kind
    return inside if inside.is_dir() else project_root() / kind


def default_workdir() -> Path:
    """Where ``runs/``, ``reports/`` and ``submissions/`` go: /kaggle/working in a kernel."""
    return KAGGLE_WORKING_ROOT if in_kaggle_kernel() else Path.cwd()


def candidate_data_dirs(slug: str, data_dir: str | os.PathLike | None = None, *,
                        recorded: Path | None = None) -> list[Path]:
    """The data directories tried, in order (DESIGN.md's order); the last is where
    ``kagtools download`` puts files. ``recorded`` is the folder the spec names (``kagtools
    init`` records it); it comes first, but a kernel, which cannot see it, goes on to its input."""
    if data_dir is not None:
        return [Path(data_dir)]
    dirs = [recorded] if recorded is not None else []
    if env := os.environ.get("KAGTOOLS_DATA_DIR"):
        dirs.append(Path(env) / slug)
    # Kaggle mounts a competition at /kaggle/input/<slug>; newer images nest it one level down.
    return [*dirs, KAGGLE_INPUT_ROOT / slug, KAGGLE_INPUT_ROOT / "competitions" / slug, Path("data") / slug]


def resolve_data_dir(slug: str, data_dir: str | os.PathLike | None = None, *,
                     recorded: Path | None = None) -> Path:
    """Find the competition's data: ``--data-dir``, the spec's ``data_dir``,
    ``$KAGTOOLS_DATA_DIR/<slug>``, ``/kaggle/input/<slug>``, ``./data/<slug>``; the first that
    exists wins."""
    dirs = candidate_data_dirs(slug, data_dir, recorded=recorded)
    for d in dirs:
        if d.is_dir():
            return d.absolute()  # symlinks kept: a spec records the folder as the user names it
    tried = ", ".join(str(d) for d in dirs)
    raise KagtoolsError(f"no data for '{slug}' (looked in {tried}); run `kagtools download {slug}` or pass --data-dir")


def kernel_slug(title: str) -> str:
    """The URL slug Kaggle derives from a kernel title (the client warns when ``id`` differs)."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def kernel_metadata(*, owner: str, title: str, code_file: str, competition: str,
                    is_private: bool = True, enable_gpu: bool = False, enable_internet: bool = False,
                    machine_shape: str | None = None, dataset_sources: list[str] | tuple[str, ...] = (),
                    model_sources: list[str] | tuple[str, ...] = (),
                    kernel_sources: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """``kernel-metadata.json`` with every field explicit.

    The ``kaggle`` client fills missing fields with defaults of its own, and some disagree with
    its documentation (``enable_internet`` defaults to true in the client), so nothing is left
    to it. A T4 x2 machine (``machine_shape``) implies a GPU.
    """
    if len(title) < 5:
        raise KagtoolsError(f"kernel title '{title}' is shorter than the 5 characters Kaggle requires")
    if not owner:
        raise KagtoolsError("kernel owner (your Kaggle username) is empty; pass --owner")
    return {
        "id": f"{owner}/{kernel_slug(title)}",
        "title": title,
        "code_file": code_file,
        "language": "python",
        "kernel_type": "script",
        "is_private": bool(is_private),
        "enable_gpu": bool(enable_gpu or machine_shape),
        "enable_tpu": False,
        "enable_internet": bool(enable_internet),
        "machine_shape": machine_shape,
        "competition_sources": [competition],
        "dataset_sources": list(dataset_sources),
        "model_sources": list(model_sources),
        "kernel_sources": list(kernel_sources),
        "keywords": [],
    }
