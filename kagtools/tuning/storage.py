"""Where a study lives: a SQLite file under ``runs/<slug>/`` by default, any SQLAlchemy URL
(``postgresql://...``) for workers on several machines, or ``journal:PATH`` for Optuna's file
journal. Opening one fails with one clear line; passwords never reach a message or a saved file.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import optuna

from kagtools.errors import KagtoolsError

__all__ = ["open_storage", "redact_url", "default_storage"]


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for messages and saved files)."""
    if "://" not in url or "@" not in url:
        return url
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a URL we cannot parse is reported by open_storage
        return url.split("://", 1)[0] + "://***"


def default_storage(root: Path) -> str:
    """The embedded default: a SQLite file beside the competition's runs (``root``)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(root / 'optuna.db').resolve()}"


def _postgres_driver(url: str) -> str:
    # SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3; use psycopg2 where only it is there.
    scheme, sep, rest = url.partition("://")
    if scheme not in ("postgresql", "postgres") or not sep:
        return url
    import importlib.util

    if not (importlib.util.find_spec("psycopg") or importlib.util.find_spec("psycopg2")):
        raise KagtoolsError("a PostgreSQL study storage needs psycopg2, which the core install leaves out: "
                            "pip install 'kagtools[scale]'")
    driver = "psycopg" if importlib.util.find_spec("psycopg") else "psycopg2"
    return f"postgresql+{driver}://{rest}"


def open_storage(url: str, *, heartbeat_interval: int | None = 10,
                 grace_period: int | None = 30) -> optuna.storages.BaseStorage:
    """Open the Optuna storage at ``url``, or raise one clear :class:`KagtoolsError` line.

    RDB storages record a heartbeat of every running trial every ``heartbeat_interval`` seconds;
    a trial whose heartbeat is older than ``grace_period`` seconds (its worker died) is marked
    failed by the next worker that starts a trial. ``None`` turns the heartbeat off.
    """
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        path = Path(url.removeprefix("journal:").removeprefix("//"))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(str(path)))
        except OSError as exc:
            raise KagtoolsError(f"cannot open the Optuna journal {path}: {exc.strerror or exc}") from None
    import sqlalchemy.exc

    given, url = url, _postgres_driver(url)
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        engine_kwargs["connect_args"] = {"timeout": 60}  # several local workers share one file
    elif url.startswith("postgresql"):
        engine_kwargs["connect_args"] = {"connect_timeout": 10}  # fail fast on a dead host
    for attempt in range(3):
        try:
            with warnings.catch_warnings(action="ignore", category=optuna.exceptions.ExperimentalWarning):
                return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs,
                                                  heartbeat_interval=heartbeat_interval, grace_period=grace_period)
        except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError) as exc:
            # Workers starting together on a new database race to create Optuna's tables (SQLite
            # says "table ... already exists", PostgreSQL raises an integrity or programming error).
            racing = isinstance(exc, (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError)) or (
                isinstance(exc, sqlalchemy.exc.OperationalError) and "already exists" in str(exc))
            if not racing or attempt == 2:
                error: Exception = exc
                break
            time.sleep(0.5 * (attempt + 1))
    reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
    raise KagtoolsError(f"cannot open the Optuna storage {redact_url(given)}: {reason}") from None
