"""Atomic writes: a crashed step never leaves a half-written artifact behind."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import math
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["atomic_path", "atomic_dir", "wait_for", "clean_litter", "strict_json", "write_json", "write_csv", "write_parquet",
           "read_json", "write_text"]

#: Temporary names carry the writing process's id, so litter from a killed process can be told
#: from the work in progress of a live one: ``.<name>.<pid>-<random>.tmp``.
_LITTER = re.compile(r"^\..+?(?:\.(?P<pid>\d+)-[^.]*)?\.(?:tmp|old)$")


def _tmp_prefix(path: Path) -> str:
    return f".{path.name}.{os.getpid()}-"


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(path), suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``path`` as a whole only on success.

    Writers of the same ``path`` take turns (a lock file beside it), so two processes writing
    the same run never trip over each other; the old directory is moved aside only for the two
    renames of the swap."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=_tmp_prefix(path), suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        with open(path.parent / f".{path.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if path.exists() and _exchange(tmp, path):
                return  # tmp now holds the old directory: removed below
            old = path.with_name(f"{_tmp_prefix(path)}x.old")
            if path.exists():
                os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux's ``renameat2(RENAME_EXCHANGE)``), so a reader never
    finds ``b`` absent; False where the system cannot (then two renames do it)."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def wait_for(path: Path, timeout: float = 2.0) -> bool:
    """Whether ``path`` exists, waiting out another writer's swap (a directory being replaced by
    :func:`atomic_dir` is absent for the instant between its two renames)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline or not any(path.parent.glob(f".{path.name}.*.old")):
            return path.exists()
        time.sleep(0.01)
    return True


def clean_litter(*folders: Path) -> list[Path]:
    """Remove what killed processes left in ``folders``: temporary files and directories of
    :func:`atomic_path` / :func:`atomic_dir` whose process is gone (or, without a process id,
    older than ten minutes). Returns what was removed."""
    removed = []
    for folder in folders:
        if not Path(folder).is_dir():
            continue
        for entry in Path(folder).iterdir():
            m = _LITTER.match(entry.name)
            if not m or _alive(m["pid"], entry):
                continue
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def _alive(pid: str | None, entry: Path) -> bool:
    if pid is None:
        try:
            return time.time() - entry.stat().st_mtime < 600
        except OSError:
            return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write(path: str | os.PathLike, writer: Callable[[Path], None]) -> Path:
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


def strict_json(obj: Any) -> Any:
    """``obj`` with every NaN or infinite float replaced by None (JSON's null): strict JSON has
    no NaN, and a reader in another language would refuse the file."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(v) for v in obj]
    if hasattr(obj, "item") and getattr(obj, "ndim", None) == 0:  # a numpy scalar
        return strict_json(obj.item())
    return obj


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text``, atomically."""
    return _write(path, lambda p: p.write_text(text))


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented, strict JSON (NaN and infinities as null), atomically."""
    text = json.dumps(strict_json(obj), indent=2, sort_keys=False, default=str, allow_nan=False) + "\n"
    return write_text(path, text)


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


def write_csv(path: str | os.PathLike, df: pd.DataFrame) -> Path:
    """Write ``df`` as CSV without its index, atomically."""
    return _write(path, lambda p: df.to_csv(p, index=False))


def write_parquet(path: str | os.PathLike, df: pd.DataFrame) -> Path:
    """Write ``df`` as parquet without its index, atomically."""
    return _write(path, lambda p: df.to_parquet(p, index=False))
