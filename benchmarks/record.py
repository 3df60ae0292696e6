"""Benchmarks write their own section of BENCHMARKS.md; nothing in it is typed by hand.

``record("titanic", markdown)`` replaces the text between ``<!-- titanic -->`` and
``<!-- /titanic -->`` (appending the section the first time), under a file lock so that
benchmarks run side by side do not lose each other's sections.
"""

from __future__ import annotations

import fcntl
import os
import platform
import re
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
HEADER = ("# Benchmarks\n\nEvery section below is written by the script named in it "
          "(`benchmarks/*.py`); rerun the script to refresh it.\n")


def machine() -> str:
    """A one-line description of where the numbers were measured."""
    try:
        import torch

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    except ImportError:
        gpu = "no GPU"
    return f"{platform.machine()}, {os.cpu_count()} CPU cores, {gpu}, Python {platform.python_version()}"


def record(name: str, markdown: str) -> Path:
    """Replace (or add) the section ``name`` of BENCHMARKS.md with ``markdown``."""
    stamp = time.strftime("%Y-%m-%d %H:%M")
    body = f"<!-- {name} -->\n{markdown.rstrip()}\n\n_Recorded {stamp} on {machine()}._\n<!-- /{name} -->"
    lock = BENCHMARKS_MD.with_suffix(".lock")
    with open(lock, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else HEADER
        pattern = re.compile(rf"<!-- {re.escape(name)} -->.*?<!-- /{re.escape(name)} -->", re.S)
        text = pattern.sub(lambda _: body, text) if pattern.search(text) else text.rstrip() + "\n\n" + body + "\n"
        tmp = BENCHMARKS_MD.with_suffix(".md.tmp")
        tmp.write_text(text)
        os.replace(tmp, BENCHMARKS_MD)
    return BENCHMARKS_MD
