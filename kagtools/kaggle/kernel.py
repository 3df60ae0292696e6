"""Kaggle kernels: a pipeline as one self-contained script, its run inside the kernel, and the
import of what it made back into the local ``runs/<slug>/``.

``build_kernel`` writes ``kernels/<slug>/kernel.py`` and ``kernel-metadata.json``. The script
carries, as one base64 zip, the kagtools modules the pipeline imports (found by reading their
imports, not by installing anything), the pipeline module, ``competitions/<slug>.toml`` and the
local ``folds.csv``: the kernel trains on the very folds the local runs used, so its runs blend
with them. Inside the kernel :func:`run_in_kernel` does what ``kagtools submit`` does: every
pipeline model, a blend, the best run, a validated ``submission.csv`` in ``/kaggle/working``.
"""

from __future__ import annotations

import ast
import base64
import importlib.util
import io
import json
import shutil
import sys
import textwrap
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kagtools
from kagtools.core.environment import T4X2_MACHINE_SHAPE, default_workdir, kernel_metadata
from kagtools.core.io import atomic_dir, read_json, write_json, write_text
from kagtools.core.runs import Run, git_sha, load_run, run_root
from kagtools.errors import KagtoolsError

__all__ = ["CODE_FILE", "KernelBundle", "kernel_dir", "bundle_sources", "render_script", "build_kernel",
           "read_kernel_id", "run_in_kernel", "import_kernel_runs", "kernel_log_text"]

CODE_FILE = "kernel.py"
SUMMARY_FILE = "kagtools-kernel.json"
IMPORTED_PREFIX = "kernel-"
FOLD_FILES = ("folds.csv", "folds.json")
# The kagtools code a kernel always runs: the runner below and what it calls.
_ENTRY_MODULES = ("kagtools.kaggle.kernel", "kagtools.workflow.submit")


@dataclass(frozen=True)
class KernelBundle:
    """A built kernel folder."""

    folder: Path
    metadata: dict[str, Any]
    files: tuple[str, ...]
    folds_hash: str | None

    @property
    def script(self) -> Path:
        return self.folder / CODE_FILE


def kernel_dir(workdir: str | Path, slug: str) -> Path:
    return Path(workdir) / "kernels" / slug


def _copy_folds(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for name in FOLD_FILES:
        shutil.copyfile(src / name, dst / name)


# ---------------------------------------------------------------------------------------------
# What goes into the bundle


def _module_file(name: str) -> tuple[Path, str] | None:
    """``(file, archive name)`` of a kagtools/pipelines module, found without importing it."""
    parts = name.split(".")
    top = sys.modules.get(parts[0]) or importlib.util.find_spec(parts[0])
    # A package's folders: `pipelines` may span the project's and the shipped ones (first wins).
    for location in getattr(top, "__path__", None) or getattr(top, "submodule_search_locations", None) or []:
        base = Path(location).joinpath(*parts[1:])
        if (base / "__init__.py").is_file():
            return base / "__init__.py", "/".join([*parts, "__init__.py"])
        if len(parts) > 1 and base.with_suffix(".py").is_file():
            return base.with_suffix(".py"), "/".join(parts) + ".py"
    return None


def _imported_names(source: str, module: str, is_package: bool) -> set[str]:
    """Every module name an ``import`` in ``source`` may load, at any depth (lazy ones too)."""
    names: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # may be submodules
    return names


def bundle_sources(roots: list[str] | tuple[str, ...], *, packages: tuple[str, ...] = ("kagtools",)) -> dict[str, Path]:
    """Archive name -> file of every module reachable from ``roots`` by imports, within
    ``packages``, with the ``__init__.py`` of each package on the way."""
    todo, seen, files = list(roots), set(), {}
    while todo:
        name = todo.pop()
        if name in seen or name.split(".")[0] not in packages:
            continue
        seen.add(name)
        found = _module_file(name)
        if found is None:
            continue  # an attribute imported with "from x import y", not a module
        path, arc = found
        files[arc] = path
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]
        todo += _imported_names(path.read_text(), name, arc.endswith("__init__.py"))
    return dict(sorted(files.items()))


def _pipeline_model_modules(spec) -> list[str]:
    """Modules that register the models of every profile of the pipeline (the kernel picks one)."""
    from kagtools.models import get_model_class
    from kagtools.workflow.pipeline import load_pipeline, pipeline_models

    module = load_pipeline(spec)
    profiles = list(getattr(module, "PROFILES", {}) or {}) or [None]
    names = {model for p in profiles for model, _ in pipeline_models(spec, p).values()}
    return sorted({get_model_class(n).__module__ for n in names})


# ---------------------------------------------------------------------------------------------
# The script

_SCRIPT = '''"""{title}: the kagtools pipeline for the Kaggle competition '{slug}', as one script.

Built by `kagtools kernel push {slug}` on {built}{sha}. Read it top to bottom: the competition's
spec and pipeline in plain text (PLAIN), then the short driver (main); the kagtools library
rides along at the bottom (BUNDLE: {n_files} files, zipped, base64), so the kernel needs
neither pip nor the internet. Edit the pipeline locally and push again.

It reads /kaggle/input/{slug}, trains every model of the pipeline{profile_note} on the bundled
folds (hash {folds_hash}), blends, and writes /kaggle/working/submission.csv and the run
artifacts under /kaggle/working/runs/{slug}/ (`kagtools kernel output {slug}` imports them).
"""

import base64
import io
import sys
import tempfile
import zipfile
from pathlib import Path

SLUG = {slug!r}
PROFILE = {profile!r}

PLAIN = {{}}
{plain}

def main() -> None:
    with tempfile.TemporaryDirectory(prefix="kagtools-bundle-", ignore_cleanup_errors=True) as root:
        with zipfile.ZipFile(io.BytesIO(base64.b64decode("".join(BUNDLE)))) as zf:
            zf.extractall(root)
        for name, text in PLAIN.items():
            (Path(root) / name).parent.mkdir(parents=True, exist_ok=True)
            (Path(root) / name).write_bytes(text.encode("utf-8"))
        sys.path.insert(0, root)
        from kagtools.kaggle.kernel import run_in_kernel

        run_in_kernel(SLUG, profile=PROFILE, bundle_root=root)


# The kagtools library, {n_zipped} files: {file_list}
BUNDLE = (
{bundle}
)

if __name__ == "__main__":
    main()
'''


def _literal(text: str) -> str:
    """``text`` as a Python literal a person can read: a raw triple-quoted string when it can be."""
    quotes = "'" * 3
    if quotes in text or text.endswith("\\") or "\r" in text:
        return repr(text)
    return "r" + quotes + text + quotes


def render_script(slug: str, files: dict[str, bytes], *, profile: str | None, title: str,
                  folds_hash: str | None, built: str, sha: str | None = None, plain: tuple[str, ...] = ()) -> str:
    """The kernel script: the ``plain`` files as readable text at the top, the other ``files``
    (archive name -> bytes) zipped, base64, in a tuple of lines at the bottom."""
    buf = io.BytesIO()
    zipped = {name: data for name, data in sorted(files.items()) if name not in plain}
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, data in zipped.items():
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))  # same input, same script
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    text = base64.b64encode(buf.getvalue()).decode()
    lines = "\n".join(f'    "{text[i:i + 96]}",' for i in range(0, len(text), 96))
    names = textwrap.fill(", ".join(zipped), width=96, subsequent_indent="# ")
    shown = "".join(f"\n# ---- {name} ----\nPLAIN[{name!r}] = {_literal(files[name].decode('utf-8'))}\n"
                    for name in plain)
    return _SCRIPT.format(
        title=title, slug=slug, built=built, sha=f" (git {sha[:10]})" if sha else "",
        n_files=len(files), n_zipped=len(zipped), file_list=names, profile=profile, bundle=lines, plain=shown,
        profile_note=f" (profile '{profile}')" if profile else "", folds_hash=folds_hash or "made in the kernel",
    )


def build_kernel(slug: str, *, workdir: str | Path, owner: str, data_dir: str | Path | None = None,
                 title: str | None = None, profile: str | None = None, gpu: bool = False,
                 t4x2: bool = False, internet: bool = False, private: bool = True,
                 datasets: list[str] | tuple[str, ...] = (), models: list[str] | tuple[str, ...] = (),
                 kernels: list[str] | tuple[str, ...] = ()) -> KernelBundle:
    """Write ``kernels/<slug>/`` (script + ``kernel-metadata.json``) and return what was built.

    The local folds are made (or reused) and bundled when the competition's data is here;
    without it the kernel makes its own folds from the spec, and ``kernel output`` adopts them.
    """
    from kagtools.core.model_registry import EAGER_MODULES
    from kagtools.workflow.context import open_context

    ctx = open_context(slug, data_dir=data_dir, workdir=workdir)
    spec = ctx.spec
    # The registry imports its eager modules by name, which the import scan cannot see.
    roots = [*_ENTRY_MODULES, *EAGER_MODULES, *_pipeline_model_modules(spec)]
    packages = ("kagtools",)
    if spec.pipeline:
        roots.append(spec.pipeline)
        packages += (spec.pipeline.split(".")[0],)
    files: dict[str, bytes] = {arc: p.read_bytes() for arc, p in bundle_sources(roots, packages=packages).items()}
    files[f"competitions/{slug}.toml"] = Path(spec.path).read_bytes()
    try:
        folds_hash = ctx.folds.hash
    except KagtoolsError:
        folds_hash = None  # no data here: the kernel makes the folds from the spec
    if folds_hash is not None:
        files.update({f"runs/{slug}/{name}": (ctx.root / name).read_bytes() for name in FOLD_FILES})
    title = title or f"kagtools {slug}"
    meta = kernel_metadata(
        owner=owner, title=title, code_file=CODE_FILE, competition=slug, is_private=private,
        enable_gpu=gpu or t4x2, enable_internet=internet, machine_shape=T4X2_MACHINE_SHAPE if t4x2 else None,
        dataset_sources=datasets, model_sources=models, kernel_sources=kernels,
    )
    folder = kernel_dir(workdir, slug)
    folder.mkdir(parents=True, exist_ok=True)
    # What a reader of the kernel wants to see first: the spec and the pipeline, in plain text.
    plain = (f"competitions/{slug}.toml", *(a for a in files if spec.pipeline and a.startswith("pipelines/")))
    script = render_script(slug, files, profile=profile, title=title, folds_hash=folds_hash,
                           built=time.strftime("%Y-%m-%d %H:%M"), sha=git_sha(), plain=plain)
    write_text(folder / CODE_FILE, script)
    write_json(folder / "kernel-metadata.json", meta)
    return KernelBundle(folder=folder, metadata=meta, files=tuple(sorted(files)), folds_hash=folds_hash)


def read_kernel_id(workdir: str | Path, slug: str) -> str:
    """The kernel id (``owner/slug``) of the last ``kagtools kernel push`` for this competition."""
    path = kernel_dir(workdir, slug) / "kernel-metadata.json"
    if not path.is_file():
        raise KagtoolsError(f"{path} not found: run `kagtools kernel push {slug}` first (or pass --kernel)")
    return read_json(path)["id"]


# ---------------------------------------------------------------------------------------------
# Inside the kernel


def run_in_kernel(slug: str, *, profile: str | None = None, bundle_root: str | Path | None = None,
                  n_jobs: int = -1, preset: str | None = None) -> Path:
    """Run the whole pipeline in a kernel, as ``kagtools submit`` does; returns submission.csv."""
    from kagtools.workflow.context import open_context
    from kagtools.workflow.submit import submit

    start = time.perf_counter()
    workdir = default_workdir()
    root = run_root(workdir, slug)
    bundled = Path(bundle_root) / "runs" / slug if bundle_root else None
    bundled_hash = None
    if bundled is not None and (bundled / "folds.json").is_file():
        bundled_hash = read_json(bundled / "folds.json")["hash"]
        if not (root / "folds.json").is_file():
            _copy_folds(bundled, root)
    ctx = open_context(slug, workdir=workdir)
    here = Path(kagtools.__file__).parent
    print(f"kagtools {getattr(kagtools, '__version__', '?')} from {here}", flush=True)
    print(f"data: {ctx.data.data_dir}; folds: {ctx.root / 'folds.csv'} (hash {ctx.folds.hash})", flush=True)
    if bundled_hash and bundled_hash != ctx.folds.hash:
        print(f"WARNING: the data here differ from the data the bundled folds ({bundled_hash}) were made "
              f"from; folds were rebuilt and these runs will not blend with local ones", flush=True)
    res = submit(ctx, profile=profile, eda=False, n_jobs=n_jobs, preset=preset)
    shutil.copyfile(res.path, workdir / "submission.csv")  # where Kaggle looks for it
    summary = {
        "slug": slug, "profile": profile, "folds_hash": ctx.folds.hash, "best_run": res.best.run_id,
        "runs": {r.run_id: r.record.scores["cv"] for r in res.runs},
        "seconds": time.perf_counter() - start, "kagtools_path": str(here),
    }
    write_json(workdir / SUMMARY_FILE, summary)
    for r in res.runs:
        print(f"  {r.run_id:<28} {ctx.spec.metric} {r.record.scores['cv']:.4f}", flush=True)
    print(f"best: {res.best.run_id}; submission: {workdir / 'submission.csv'} "
          f"({summary['seconds']:.1f}s)", flush=True)
    return workdir / "submission.csv"


# ---------------------------------------------------------------------------------------------
# Back home


def _rename(obj: Any, mapping: dict[str, str]) -> Any:
    """Replace run ids wherever run.json mentions them (ids, blend members, weight keys)."""
    if isinstance(obj, str):
        return mapping.get(obj, obj)
    if isinstance(obj, list):
        return [_rename(v, mapping) for v in obj]
    if isinstance(obj, dict):
        return {mapping.get(k, k): _rename(v, mapping) for k, v in obj.items()}
    return obj


def import_kernel_runs(output_dir: str | Path, slug: str, *, workdir: str | Path,
                       kernel: str | None = None) -> list[Run]:
    """Copy the runs a kernel wrote (``<output>/runs/<slug>/``) into the local ``runs/<slug>/``.

    They are renamed ``kernel-<run id>`` so they sit beside local runs of the same model.
    Runs blend only on the same folds: a kernel whose folds differ from the local ones is
    refused; with no local folds yet, the kernel's become the local ones.
    """
    src = Path(output_dir) / "runs" / slug
    if not (src / "folds.json").is_file():
        raise KagtoolsError(f"{src}: the kernel output has no runs/{slug}/folds.json; did the kernel finish?")
    kernel_hash = read_json(src / "folds.json")["hash"]
    dst = run_root(workdir, slug)
    local = dst / "folds.json"
    if local.is_file():
        local_hash = read_json(local).get("hash")
        if local_hash != kernel_hash:
            raise KagtoolsError(f"the kernel's runs were made on folds {kernel_hash} but the local runs on "
                                f"{local_hash}; they cannot blend: push again (`kagtools kernel push {slug}` "
                                "bundles the local folds)")
    else:
        _copy_folds(src, dst)
    run_dirs = [p for p in sorted(src.iterdir()) if (p / "run.json").is_file() and not p.name.startswith(".")]
    metas = {p: read_json(p / "run.json") for p in run_dirs}
    metas = {p: m for p, m in metas.items() if m.get("folds_hash") == kernel_hash}
    mapping = {m["run_id"]: IMPORTED_PREFIX + m["run_id"] for m in metas.values()}
    imported = []
    for p, meta in metas.items():
        meta = _rename(meta, mapping)
        meta.setdefault("details", {})["source"] = {
            "kernel": kernel, "imported": time.strftime("%Y-%m-%dT%H:%M:%S"), "kernel_run_id": p.name}
        with atomic_dir(dst / meta["run_id"]) as tmp:
            for f in p.iterdir():
                if f.is_file() and f.name != "run.json":
                    shutil.copyfile(f, tmp / f.name)
            write_json(tmp / "run.json", meta)
        imported.append(load_run(dst, meta["run_id"]))
    if not imported:
        raise KagtoolsError(f"{src}: the kernel output holds no finished runs on its folds")
    return imported


def kernel_log_text(log: str) -> str:
    """A kernel log as plain text: Kaggle stores it as a JSON list of ``{stream_name, data}``."""
    try:
        entries = json.loads(log)
    except (ValueError, TypeError):
        return log
    if isinstance(entries, list) and all(isinstance(e, dict) for e in entries):
        return "".join(str(e.get("data", "")) for e in entries)
    return log
