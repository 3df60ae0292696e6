"""Progress bars on stderr (tqdm), quiet when not attached to a terminal unless asked."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

__all__ = ["progress"]

T = TypeVar("T")


def progress(items: Iterable[T], *, total: int | None = None, desc: str = "") -> Iterator[T]:
    """Wrap ``items`` in a tqdm bar; disabled with ``KAGTOOLS_QUIET=1``."""
    from tqdm.auto import tqdm

    disable = os.environ.get("KAGTOOLS_QUIET") == "1"
    return iter(tqdm(items, total=total, desc=desc, leave=False, file=sys.stderr, disable=disable,
                     dynamic_ncols=True))
