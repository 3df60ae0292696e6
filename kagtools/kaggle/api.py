"""The one module that talks to Kaggle, through the official ``kaggle`` package.

``import kaggle`` authenticates at import and prints its own banner or exits when it finds no
credentials, so it is imported lazily here, with its output captured, and every failure becomes
one :class:`KagtoolsError` line saying what to do.

Credentials are found as the ``kaggle`` package finds them: ``KAGGLE_API_TOKEN`` (or
``~/.kaggle/access_token``), ``KAGGLE_USERNAME``/``KAGGLE_KEY``, ``kaggle.json`` in
``$KAGGLE_CONFIG_DIR`` or ``~/.kaggle``. ``KAGGLE_API_ENDPOINT`` (e.g. ``http://127.0.0.1:8080``)
sends every request to another server (a proxy, or the fake Kaggle of the tests); the client
itself has no such setting.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kagtools.core.environment import candidate_data_dirs
from kagtools.errors import KagtoolsError

__all__ = ["get_api", "check_credentials", "explain_http_error", "download_competition", "download_dataset",
           "submit_file", "submit_code", "list_submissions", "push_kernel", "kernel_status", "kernel_output",
           "local_username", "TERMINAL_KERNEL_STATES"]

CREDENTIALS_HELP = ("no Kaggle credentials found: put kaggle.json (from kaggle.com > Settings > API) in "
                    "~/.kaggle/ or $KAGGLE_CONFIG_DIR, or set KAGGLE_USERNAME and KAGGLE_KEY (or KAGGLE_API_TOKEN)")
TERMINAL_KERNEL_STATES = ("complete", "error", "cancel_acknowledged")
_QUOTA_WORDS = ("quota", "allowance", "limit", "exceeded")


def _config_dir() -> Path:
    """Where kaggle.json lives, read now (the client reads ``KAGGLE_CONFIG_DIR`` only at import)."""
    env = os.environ.get("KAGGLE_CONFIG_DIR")
    if env:
        return Path(env)
    home = Path.home() / ".kaggle"
    xdg = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "kaggle"
    return home if home.exists() or not xdg.exists() else xdg


def local_username() -> str | None:
    """The Kaggle username from ``KAGGLE_USERNAME`` or kaggle.json, without the network."""
    if os.environ.get("KAGGLE_USERNAME"):
        return os.environ["KAGGLE_USERNAME"]
    try:
        return json.loads((_config_dir() / "kaggle.json").read_text()).get("username") or None
    except (OSError, ValueError, AttributeError):
        return None


@functools.cache
def _api_class():
    """``KaggleApi``, imported quietly, with ``KAGGLE_API_ENDPOINT`` honoured."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        # kaggle/__init__ authenticates a module-level client at import; with an access token
        # that is a network call to api.kaggle.com that we never use: hide the token meanwhile.
        token = os.environ.pop("KAGGLE_API_TOKEN", None)
        try:
            from kaggle.api.kaggle_api_extended import KaggleApi
        finally:
            if token is not None:
                os.environ["KAGGLE_API_TOKEN"] = token

    class Api(KaggleApi):
        def build_kaggle_client(self):
            client = super().build_kaggle_client()
            endpoint = os.environ.get("KAGGLE_API_ENDPOINT")
            if endpoint:
                client.http_client()._endpoint = endpoint.rstrip("/")
            return client

    return Api


def get_api():
    """An authenticated ``KaggleApi``, or one clear error."""
    out = io.StringIO()
    try:
        api = _api_class()()
        # The client fixes its config path at import; follow KAGGLE_CONFIG_DIR as it is now.
        api.config_dir = str(_config_dir())
        api.config = os.path.join(api.config_dir, api.config_file)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            api.authenticate()
    except SystemExit:
        raise KagtoolsError(CREDENTIALS_HELP) from None
    except ImportError as exc:
        raise KagtoolsError(f"the kaggle package is not installed ({exc}); run `make setup`") from None
    except Exception as exc:  # bad config files, or the token check could not reach Kaggle
        raise explain_http_error(exc, "", "Kaggle authentication") from None
    return api


def check_credentials() -> str:
    """The Kaggle username, or one clear error when no credentials work: called before long work
    (training) whose result is then uploaded, so a missing token fails in seconds, not hours."""
    return get_api().config_values.get("username") or local_username() or "(token)"


def _mentions_quota(text: str) -> bool:
    return any(w in text.lower() for w in _QUOTA_WORDS)


def explain_http_error(exc: BaseException, slug: str, action: str) -> KagtoolsError:
    """Turn a client exception into one line: 401/403/404/429, quotas and network failures."""
    status = getattr(getattr(exc, "response", None), "status_code", None)
    name = type(exc).__name__
    text = (str(exc).strip().splitlines() or [name])[0]
    if status is None and ("Connection" in name or "Timeout" in name or isinstance(exc, OSError)):
        return KagtoolsError(f"{action}: cannot reach Kaggle ({name}); check the network or use --data-dir")
    if status == 429 or (status in (400, 403) and _mentions_quota(text)):
        return KagtoolsError(f"{action}: Kaggle quota or rate limit exceeded ({text}); try again later")
    if status == 401:
        return KagtoolsError(f"{action}: Kaggle rejected the credentials (401); create a new API token")
    if status == 403:
        where = f"https://www.kaggle.com/c/{slug}/rules" if slug else "the competition's Rules tab"
        return KagtoolsError(f"{action}: forbidden (403); accept the competition rules at {where} ({text})")
    if status == 404:
        return KagtoolsError(f"{action}: {repr(slug) + ' ' if slug else ''}not found on Kaggle (404)")
    if status:
        return KagtoolsError(f"{action}: Kaggle answered {status} ({text})")
    return KagtoolsError(f"{action}: {text}")


@contextlib.contextmanager
def _calling(slug: str, action: str):
    """Run a client call with its prints captured and its exceptions explained."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    except KagtoolsError:
        raise
    except Exception as exc:
        raise explain_http_error(exc, slug, action) from None


def _call(slug: str, action: str, request: Callable[[Any], Any]) -> Any:
    """``request(api)`` with an authenticated client, as :func:`_calling` runs it."""
    api = get_api()
    with _calling(slug, action):
        return request(api)


def _unzip_all(target: Path) -> None:
    for archive in sorted(target.glob("*.zip")):
        try:
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(target)
        except zipfile.BadZipFile:
            raise KagtoolsError(f"{archive}: downloaded archive is not a valid zip; retry with --force") from None
        archive.unlink()


def _listed_files(api, slug: str, *, max_pages: int = 20) -> list[str]:
    """The competition's file names as Kaggle lists them (bounded for huge image folders)."""
    names, token = [], None
    for _ in range(max_pages):
        resp = api.competition_list_files(slug, page_token=token, page_size=200)
        names += [f.name for f in resp.files or [] if f.name]
        token = resp.next_page_token
        if not token:
            break
    return names


def _download(method: str, ref: str, target: Path, force: bool, action: str):
    """Download ``ref`` into ``target`` with the client's ``method`` and unzip it; returns the
    client, or None when ``target`` has files and not ``force`` (it is kept as it is)."""
    if target.is_dir() and any(target.iterdir()) and not force:
        return None
    api = get_api()
    target.mkdir(parents=True, exist_ok=True)
    with _calling(ref, action):
        getattr(api, method)(ref, path=str(target), force=force, quiet=True)
    _unzip_all(target)
    return api


def download_competition(slug: str, *, data_dir: str | os.PathLike | None = None, force: bool = False) -> Path:
    """Download and unzip a competition's files into the data directory, then check that every
    file Kaggle lists is there.

    Without ``force`` a non-empty directory is kept as it is.
    """
    target = Path(data_dir) if data_dir else candidate_data_dirs(slug)[-1]
    api = _download("competition_download_files", slug, target, force, f"download {slug}")
    if api is None:
        return target
    with _calling(slug, f"list the files of {slug}"):
        listed = _listed_files(api, slug)
    missing = [name for name in listed if not (target / name).exists()]
    if missing:
        raise KagtoolsError(f"{target}: {len(missing)} file(s) Kaggle lists for '{slug}' are missing after the "
                            f"download (first: {missing[0]}); retry with --force")
    return target


def download_dataset(ref: str, *, data_dir: str | os.PathLike | None = None, force: bool = False) -> Path:
    """Download and unzip a dataset ``owner/name`` (e.g. attached weights) beside the
    competitions: ``<data root>/<name>``, where a kernel finds it as ``/kaggle/input/<name>``."""
    parts = ref.split("/")
    if len(parts) != 2 or not all(parts):
        raise KagtoolsError(f"--dataset '{ref}' is not of the form owner/name")
    target = Path(data_dir) if data_dir else candidate_data_dirs(parts[1])[-1]
    _download("dataset_download_files", ref, target, force, f"download dataset {ref}")
    if not any(target.iterdir()):
        raise KagtoolsError(f"dataset {ref}: the download left {target} empty")
    return target


def _check_submitted(resp, slug: str, what: str) -> str:
    from kaggle.api.kaggle_api_extended import KaggleApi

    message = getattr(resp, "message", "") or ""
    if message == KaggleApi.COMPETITION_SUBMIT_UPLOAD_FAILED_MESSAGE:
        raise KagtoolsError(f"submit to {slug}: the upload of {what} failed; try again")
    if _mentions_quota(message):
        raise KagtoolsError(f"submit to {slug}: Kaggle quota exceeded ({message})")
    return message


def submit_file(slug: str, path: str | os.PathLike, *, message: str) -> str:
    """Upload a (validated) submission file; returns the line to print."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        raise KagtoolsError(f"submit to {slug}: {path} is missing or empty")
    resp = _call(slug, f"submit to {slug}", lambda api: api.competition_submit(str(path), message, slug, quiet=True))
    said = _check_submitted(resp, slug, path.name)
    return (f"submitted {path.name} to Kaggle '{slug}' ({said or 'accepted'}); "
            f"scores: `kagtools submissions {slug}`")


def submit_code(slug: str, *, kernel: str, version: int | None, message: str,
                file_name: str = "submission.csv") -> str:
    """Submit a kernel's output to a code competition; returns the line to print."""
    resp = _call(slug, f"submit kernel {kernel} to {slug}", lambda api: api.competition_submit_code(
        file_name, message, competition=slug, kernel=kernel, kernel_version=version, quiet=True))
    said = _check_submitted(resp, slug, file_name)
    v = f" version {version}" if version else ""
    return f"submitted kernel {kernel}{v} ({file_name}) to '{slug}' ({said or 'accepted'})"


def _enum_name(value) -> str:
    return getattr(value, "name", str(value)).lower()


def list_submissions(slug: str) -> list[dict[str, Any]]:
    """Earlier submissions, newest first: date, description, status, public and private score."""
    subs = _call(slug, f"list submissions of {slug}", lambda api: api.competition_submissions(slug)) or []
    return [{
        "date": s.date.strftime("%Y-%m-%d %H:%M") if s.date else "",
        "file": s.file_name or "",
        "description": s.description or "",
        "status": _enum_name(s.status),
        "public": s.public_score or "",
        "private": s.private_score or "",
        "error": s.error_description or "",
    } for s in subs if s is not None]


def push_kernel(folder: str | os.PathLike, *, slug: str = "") -> dict[str, Any]:
    """Push a kernel folder (``kernel-metadata.json`` + code file); returns ref, url, version."""
    resp = _call(slug, f"push kernel {folder}", lambda api: api.kernels_push(str(folder)))
    if resp.error:
        if _mentions_quota(resp.error):
            raise KagtoolsError(f"push kernel: Kaggle quota exceeded ({resp.error})")
        raise KagtoolsError(f"push kernel: Kaggle refused it ({resp.error})")
    invalid = [*resp.invalid_competition_sources, *resp.invalid_dataset_sources,
               *resp.invalid_kernel_sources, *resp.invalid_model_sources]
    if invalid:
        raise KagtoolsError(f"push kernel: Kaggle does not know the source(s) {', '.join(invalid)}")
    return {"ref": resp.ref, "url": resp.url, "version": resp.version_number}


def kernel_status(kernel: str) -> tuple[str, str]:
    """``(status, failure message)`` of a kernel's latest run; status is e.g. running, complete."""
    resp = _call("", f"status of kernel {kernel}", lambda api: api.kernels_status(kernel))
    return _enum_name(resp.status), resp.failure_message or ""


def kernel_output(kernel: str, dest: str | os.PathLike, *, file_pattern: str | None = None) -> tuple[list[Path], str]:
    """Download a kernel's output files into ``dest``; returns the files and the log text."""
    api = get_api()
    Path(dest).mkdir(parents=True, exist_ok=True)
    with _calling("", f"output of kernel {kernel}"):
        files, _ = api.kernels_output(kernel, str(dest), file_pattern=file_pattern, force=True, quiet=True)
    files = [Path(f) for f in files]
    logs = [f for f in files if f.suffix == ".log" and f.parent == Path(dest)]
    return files, logs[0].read_text(errors="replace") if logs else ""
