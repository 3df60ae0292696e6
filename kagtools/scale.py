"""Where folds, bags and trials run: local joblib processes, or a Dask distributed cluster."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = ["scheduler_context"]


@contextlib.contextmanager
def scheduler_context(address: str | None) -> Iterator[None]:
    """Run every ``joblib.Parallel`` inside on the Dask scheduler at ``address`` (or locally)."""
    if not address:
        yield
        return
    import joblib
    from distributed import Client

    from kagtools.errors import KagtoolsError

    try:
        client = Client(address, timeout="10s")
    except OSError as exc:
        raise KagtoolsError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
    try:
        with joblib.parallel_config(backend="dask"):
            yield
    finally:
        client.close()
