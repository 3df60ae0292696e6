"""Where folds, bags and trials run: local joblib processes, or a Dask distributed cluster.

Everything that fans out in kagtools goes through ``joblib.Parallel`` (folds in
:func:`kagtools.core.engine.cross_validate`, bags, tuning workers). Inside :func:`scheduler_context`
those calls run on a Dask cluster through joblib's Dask backend instead of local processes;
the tasks and their seeds are the same, so the results are identical to the local run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = ["scheduler_context"]


@contextlib.contextmanager
def scheduler_context(address: str | None, *, timeout: str = "10s") -> Iterator[None]:
    """Run every ``joblib.Parallel`` inside on the Dask scheduler at ``address``
    (``tcp://HOST:PORT``; ``None`` or ``""`` keeps joblib's local processes), reached within
    ``timeout`` or one clear error."""
    if not address:
        yield
        return
    import joblib

    from kagtools.core.extras import needs_extra
    from kagtools.errors import KagtoolsError

    with needs_extra("a Dask scheduler (--scheduler)", "scale"):
        from distributed import Client

    try:
        client = Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise KagtoolsError(f"cannot reach the Dask scheduler at {address}: {reason}") from None
    try:
        with client.as_current(), joblib.parallel_config(backend="dask"):
            yield
    finally:
        client.close()
