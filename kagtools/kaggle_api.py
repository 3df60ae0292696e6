"""The one module that talks to Kaggle, through the official ``kaggle`` package.

``import kaggle`` authenticates at import and prints its own banner or exits when it finds no
credentials, so it is imported lazily here, with its output captured, and every failure becomes
one :class:`KagtoolsError` line saying what to do.
"""

from __future__ import annotations

import contextlib
import io
import os
import zipfile
from pathlib import Path

from kagtools.errors import KagtoolsError
from kagtools.kaggle_env import candidate_data_dirs

__all__ = ["get_api", "download_competition", "explain_http_error"]

CREDENTIALS_HELP = (
    "no Kaggle credentials found: put kaggle.json (from kaggle.com > Settings > API) in "
    "~/.kaggle/ or $KAGGLE_CONFIG_DIR, or set KAGGLE_USERNAME and KAGGLE_KEY (or KAGGLE_API_TOKEN)"
)


def get_api():
    """An authenticated ``KaggleApi``, or one clear error."""
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            from kaggle.api.kaggle_api_extended import KaggleApi

            api = KaggleApi()
            api.authenticate()
    except SystemExit:
        raise KagtoolsError(CREDENTIALS_HELP) from None
    except ImportError as exc:
        raise KagtoolsError(f"the kaggle package is not installed ({exc}); run `make setup`") from None
    except Exception as exc:  # the client raises plain exceptions for bad config files
        raise KagtoolsError(f"Kaggle authentication failed: {_first_line(exc)}") from None
    return api


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def explain_http_error(exc: BaseException, slug: str, action: str) -> KagtoolsError:
    """Turn a client exception into one line: 401/403/404/429 and network failures."""
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status == 401:
        return KagtoolsError(f"{action}: Kaggle rejected the credentials (401); create a new API token")
    if status == 403:
        return KagtoolsError(
            f"{action}: forbidden (403); accept the competition rules at https://www.kaggle.com/c/{slug}/rules"
        )
    if status == 404:
        return KagtoolsError(f"{action}: '{slug}' not found on Kaggle (404)")
    if status == 429:
        return KagtoolsError(f"{action}: Kaggle quota or rate limit exceeded (429); try again later")
    name = type(exc).__name__
    if "Connection" in name or "Timeout" in name or isinstance(exc, OSError):
        return KagtoolsError(f"{action}: cannot reach Kaggle ({name}); check the network or use --data-dir")
    return KagtoolsError(f"{action}: {_first_line(exc)}")


def download_competition(slug: str, *, data_dir: str | os.PathLike | None = None, force: bool = False) -> Path:
    """Download and unzip a competition's files into the data directory."""
    target = Path(data_dir) if data_dir else candidate_data_dirs(slug)[-1]
    if target.is_dir() and any(target.iterdir()) and not force:
        return target
    api = get_api()
    target.mkdir(parents=True, exist_ok=True)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            api.competition_download_files(slug, path=str(target), force=force, quiet=True)
    except Exception as exc:
        raise explain_http_error(exc, slug, f"download {slug}") from None
    for archive in target.glob("*.zip"):
        try:
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(target)
        except zipfile.BadZipFile:
            raise KagtoolsError(f"{archive}: downloaded archive is not a valid zip; retry with --force") from None
        archive.unlink()
    return target
