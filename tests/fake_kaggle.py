"""A local fake of the Kaggle API, answering the requests the real ``kaggle`` client makes.

kagglesdk sends every call as ``POST <endpoint>/v1/<service>/<Method>`` with a camelCase JSON
body and reads camelCase JSON back (an error is ``{"code": 4xx, "message": ...}``). Downloads
answer with a redirect to a file URL, uploads go to a URL the server hands out, kernel output
files are plain URLs. The fake serves all of these from memory, on 127.0.0.1 only, with a cap
on request bodies and on how long a pushed kernel may run.

A pushed kernel really runs: its script is executed (``python kernel.py``, PYTHONPATH unset)
in a simulated Kaggle layout, ``<sandbox>/input/<slug>`` holding the competition's files and
``<sandbox>/working`` as the output folder, pointed to by ``KAGTOOLS_KAGGLE_INPUT`` /
``KAGTOOLS_KAGGLE_WORKING``.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

__all__ = ["FakeKaggle", "Competition", "Kernel", "clean_identity", "write_kaggle_json", "titanic_competition"]

MAX_BODY = 64 * 1024 * 1024


@dataclass
class Competition:
    """A competition's files (name -> bytes), whether the user accepted its rules, and an
    answer key to score submissions with (``{id: label}``, made up for the tests)."""

    files: dict[str, bytes]
    rules_accepted: bool = True
    solution: dict[str, str] = field(default_factory=dict)
    extra_listed: tuple[str, ...] = ()  # names listed but not in the download (a broken mirror)


@dataclass
class Kernel:
    owner: str
    slug: str
    metadata: dict[str, Any]
    text: str
    version: int
    status: str = "QUEUED"
    failure: str = ""
    log: list[dict[str, Any]] = field(default_factory=list)
    sandbox: Path | None = None

    @property
    def working(self) -> Path:
        return self.sandbox / "working"


class _Error(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code, self.message = code, message


class FakeKaggle:
    """The fake server. Use as a context manager; ``url`` goes into ``KAGGLE_API_ENDPOINT``."""

    def __init__(self, *, username: str = "alice", key: str = "secret-key", token: str | None = None,
                 competitions: dict[str, Competition] | None = None,
                 datasets: dict[str, dict[str, bytes]] | None = None, daily_submissions: int = 5,
                 kernel_timeout: float = 300.0, workdir: str | os.PathLike | None = None):
        self.username, self.key, self.token = username, key, token
        self.competitions = competitions or {}
        self.datasets = datasets or {}
        self.daily_submissions = daily_submissions
        self.kernel_timeout = kernel_timeout
        self.submissions: list[dict[str, Any]] = []
        self.code_submissions: list[dict[str, Any]] = []
        self.kernels: dict[str, Kernel] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._uploads: dict[str, bytes] = {}
        self._threads: list[threading.Thread] = []
        self._tmp = tempfile.TemporaryDirectory(prefix="fake-kaggle-", dir=workdir)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._serve = threading.Thread(target=self._server.serve_forever, daemon=True)

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeKaggle:
        self._serve.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        for t in self._threads:
            t.join(timeout=self.kernel_timeout + 10)
        self._tmp.cleanup()

    def wait_kernels(self, timeout: float | None = None) -> None:
        """Block until every pushed kernel has finished (tests that do not poll)."""
        for t in list(self._threads):
            t.join(timeout=timeout or self.kernel_timeout + 10)

    # -- HTTP plumbing -----------------------------------------------------------------------

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def _send(self, code: int, body: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def _json(self, code: int, obj: Any) -> None:
                self._send(code, json.dumps(obj).encode(), "application/json")

            def _body(self) -> bytes:
                n = int(self.headers.get("Content-Length") or 0)
                if n > MAX_BODY:
                    raise _Error(413, "request body too large")
                return self.rfile.read(n) if n else b""

            def do_POST(self) -> None:
                try:
                    parts = self.path.split("?")[0].strip("/").split("/")
                    if len(parts) < 3 or parts[-3] != "v1":
                        raise _Error(404, f"no route {self.path}")
                    method = parts[-1]  # parts[-2] is the service, e.g. kernels.KernelsApiService
                    body = json.loads(self._body() or b"{}")
                    user = fake._authenticate(self.headers.get("Authorization", ""), method)
                    fake.calls.append((method, body))
                    result = fake._call(method, body, user)
                    if isinstance(result, tuple) and result[0] == "redirect":
                        self._send(302, b"", "text/plain", {"Location": fake.url + result[1]})
                    else:
                        self._json(200, result)
                except _Error as err:
                    self._json(err.code, {"code": err.code, "message": err.message})

            def do_GET(self) -> None:
                data = fake._files.get(unquote(self.path.split("?")[0]))
                if data is None:
                    self._json(404, {"code": 404, "message": "no such file"})
                    return
                self._send(200, data, "application/octet-stream")

            def do_PUT(self) -> None:
                try:
                    token = self.path.strip("/").split("/")[-1]
                    if token not in fake._uploads:
                        raise _Error(404, "unknown upload")
                    fake._uploads[token] = self._body()
                    self._json(200, {})
                except _Error as err:
                    self._json(err.code, {"code": err.code, "message": err.message})

        return Handler

    @property
    def _files(self) -> dict[str, bytes]:
        files = {}
        for slug, comp in self.competitions.items():
            files[f"/files/competitions/{slug}.zip"] = _zip(comp.files)
        for ref, content in self.datasets.items():
            files[f"/files/datasets/{ref}.zip"] = _zip(content)
        for kernel in self.kernels.values():
            if kernel.sandbox is not None and kernel.working.is_dir():
                for p in kernel.working.rglob("*"):
                    if p.is_file():
                        rel = p.relative_to(kernel.working).as_posix()
                        files[f"/kernel-output/{kernel.owner}/{kernel.slug}/{rel}"] = p.read_bytes()
        return files

    def _authenticate(self, header: str, method: str) -> str:
        if method == "IntrospectToken":
            return ""
        if header.startswith("Basic "):
            user, _, key = base64.b64decode(header[6:]).decode().partition(":")
            if user == self.username and key == self.key:
                return user
        if header.startswith("Bearer ") and self.token and header[7:] == self.token:
            return self.username
        raise _Error(401, "Unauthenticated")

    # -- the API -----------------------------------------------------------------------------

    def _call(self, method: str, body: dict[str, Any], user: str):
        handler = getattr(self, f"_api_{method}", None)
        if handler is None:
            raise _Error(404, f"the fake does not implement {method}")
        return handler(body, user)

    def _competition(self, body: dict[str, Any], *, participate: bool = True) -> tuple[str, Competition]:
        slug = body.get("competitionName", "")
        if slug not in self.competitions:
            raise _Error(404, f"Competition '{slug}' not found")
        comp = self.competitions[slug]
        if participate and not comp.rules_accepted:
            raise _Error(403, "You must accept this competition's rules before you can use it")
        return slug, comp

    def _api_IntrospectToken(self, body, user):
        ok = bool(self.token) and body.get("token") == self.token
        return {"active": ok, "username": self.username if ok else ""}

    def _api_DownloadDataFiles(self, body, user):
        slug, _ = self._competition(body)
        return ("redirect", f"/files/competitions/{slug}.zip")

    def _api_ListDataFiles(self, body, user):
        _, comp = self._competition(body, participate=False)
        names = [*comp.files, *comp.extra_listed]
        return {"files": [{"ref": n, "name": n, "totalBytes": len(comp.files.get(n, b""))} for n in names],
                "nextPageToken": ""}

    def _api_DownloadDataset(self, body, user):
        ref = f"{body.get('ownerSlug')}/{body.get('datasetSlug')}"
        if ref not in self.datasets:
            raise _Error(404, f"Dataset {ref} not found")
        return ("redirect", f"/files/datasets/{ref}.zip")

    def _api_StartSubmissionUpload(self, body, user):
        self._competition(body)
        token = f"upload-{len(self._uploads) + 1}"
        self._uploads[token] = b""
        return {"token": token, "createUrl": f"{self.url}/upload/{token}"}

    def _check_quota(self, slug: str) -> None:
        today = [s for s in self.submissions + self.code_submissions if s["competition"] == slug]
        if len(today) >= self.daily_submissions:
            raise _Error(400, f"Submission not allowed: your team has used its daily Submission allowance "
                              f"({self.daily_submissions}) today, please try again tomorrow UTC")

    def _api_CreateSubmission(self, body, user):
        slug, comp = self._competition(body)
        self._check_quota(slug)
        data = self._uploads.get(body.get("blobFileTokens", ""))
        if not data:
            raise _Error(400, "the uploaded file is missing or empty")
        ref = len(self.submissions) + len(self.code_submissions) + 1
        self.submissions.append({
            "ref": ref, "competition": slug, "description": body.get("submissionDescription", ""),
            "content": data, "date": datetime.now(UTC), "score": _score(data, comp.solution),
        })
        return {"message": f"Successfully submitted to {slug}", "ref": ref}

    def _api_CreateCodeSubmission(self, body, user):
        slug, _ = self._competition(body)
        self._check_quota(slug)
        kernel = self.kernels.get(f"{body.get('kernelOwner')}/{body.get('kernelSlug')}")
        if kernel is None:
            raise _Error(404, "Kernel not found")
        ref = len(self.submissions) + len(self.code_submissions) + 1
        self.code_submissions.append({
            "ref": ref, "competition": slug, "kernel": f"{kernel.owner}/{kernel.slug}",
            "version": body.get("kernelVersion"), "file": body.get("fileName"),
            "description": body.get("submissionDescription", ""),
        })
        return {"message": "Your submission was queued", "ref": ref}

    def _api_ListSubmissions(self, body, user):
        slug, _ = self._competition(body, participate=False)
        subs = [s for s in self.submissions if s["competition"] == slug]
        return {"submissions": [{
            "ref": s["ref"], "date": s["date"].strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "description": s["description"],
            "fileName": "submission.csv", "status": "COMPLETE", "publicScore": f"{s['score']:.5f}",
            "privateScore": "", "submittedBy": user,
        } for s in reversed(subs)], "nextPageToken": ""}

    def _api_SaveKernel(self, body, user):
        kid = body.get("slug") or ""
        owner, _, slug = kid.partition("/")
        if owner != user:
            raise _Error(403, f"you ({user}) cannot push kernels owned by '{owner}'")
        unknown = [c for c in body.get("competitionDataSources", []) if c not in self.competitions]
        if unknown:
            return {"ref": "", "url": "", "invalidCompetitionSources": unknown}
        previous = self.kernels.get(kid)
        kernel = Kernel(owner=owner, slug=slug, metadata=body, text=body.get("text", ""),
                        version=previous.version + 1 if previous else 1)
        self.kernels[kid] = kernel
        thread = threading.Thread(target=self._run_kernel, args=(kernel,), daemon=True)
        self._threads.append(thread)
        thread.start()
        return {"ref": f"/code/{kid}", "url": f"https://www.kaggle.com/code/{kid}",
                "versionNumber": kernel.version, "kernelId": len(self.kernels)}

    def _kernel(self, body) -> Kernel:
        kid = f"{body.get('userName')}/{body.get('kernelSlug')}"
        if kid not in self.kernels:
            raise _Error(404, f"Kernel {kid} not found")
        return self.kernels[kid]

    def _api_GetKernelSessionStatus(self, body, user):
        k = self._kernel(body)
        out = {"status": k.status}
        if k.failure:
            out["failureMessage"] = k.failure
        return out

    def _api_ListKernelSessionOutput(self, body, user):
        k = self._kernel(body)
        files = []
        if k.sandbox is not None and k.working.is_dir():
            for p in sorted(k.working.rglob("*")):
                if p.is_file():
                    rel = p.relative_to(k.working).as_posix()
                    files.append({"fileName": rel, "url": f"{self.url}/kernel-output/{k.owner}/{k.slug}/{quote(rel)}"})
        return {"files": files, "log": json.dumps(k.log), "nextPageToken": ""}

    # -- running a pushed kernel -------------------------------------------------------------

    def _run_kernel(self, kernel: Kernel) -> None:
        """Run the pushed script as Kaggle would: its sources under input/, output in working/."""
        with self._lock:  # one kernel at a time, like a user's session quota
            sandbox = Path(self._tmp.name) / f"{kernel.owner}-{kernel.slug}-v{kernel.version}"
            (sandbox / "working").mkdir(parents=True)
            for slug in kernel.metadata.get("competitionDataSources", []):
                _unzip_into(self.competitions[slug].files, sandbox / "input" / slug)
            for ref in kernel.metadata.get("datasetDataSources", []):
                _unzip_into(self.datasets.get(ref, {}), sandbox / "input" / ref.split("/")[-1])
            script = sandbox / "script.py"
            script.write_text(kernel.text)
            env = {k: v for k, v in os.environ.items()
                   if k not in ("PYTHONPATH", "KAGTOOLS_DATA_DIR") and not k.startswith("KAGGLE_")}
            env.update(KAGTOOLS_KAGGLE_INPUT=str(sandbox / "input"), KAGTOOLS_KAGGLE_WORKING=str(sandbox / "working"),
                       KAGGLE_KERNEL_RUN_TYPE="Batch")
            kernel.sandbox, kernel.status = sandbox, "RUNNING"
            start = time.monotonic()
            try:
                proc = subprocess.run([sys.executable, str(script)], cwd=sandbox / "working", env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                      timeout=self.kernel_timeout)
                output, rc = proc.stdout, proc.returncode
            except subprocess.TimeoutExpired as exc:
                output = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
                output += f"\nkilled after {self.kernel_timeout:.0f}s\n"
                rc = -9
            elapsed = time.monotonic() - start
            kernel.log = [{"stream_name": "stdout", "time": round(elapsed, 3), "data": line}
                          for line in output.splitlines(keepends=True)]
            if rc == 0:
                kernel.status = "COMPLETE"
            else:
                kernel.status, kernel.failure = "ERROR", f"Your notebook hit an unhandled error (exit code {rc})"


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _unzip_into(files: dict[str, bytes], target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        path = target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _score(data: bytes, solution: dict[str, str]) -> float:
    """Share of rows whose second column matches the answer key (0 without one)."""
    if not solution:
        return 0.0
    rows = [line.split(",") for line in data.decode().strip().splitlines()[1:]]
    hits = sum(1 for r in rows if len(r) > 1 and solution.get(r[0]) == r[1].strip())
    return hits / max(len(solution), 1)


# -- test set-up helpers --------------------------------------------------------------------


def clean_identity(tmp_path: Path, monkeypatch) -> Path:
    """HOME and KAGGLE_CONFIG_DIR in ``tmp_path`` and no Kaggle variables: nobody is logged in."""
    home, cfg = tmp_path / "home", tmp_path / "kaggle-config"
    home.mkdir()
    cfg.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(cfg))
    for var in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "XDG_CONFIG_HOME", "KAGGLE_API_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    return cfg


def write_kaggle_json(cfg: Path, username: str = "alice", key: str = "secret-key") -> None:
    path = cfg / "kaggle.json"
    path.write_text(json.dumps({"username": username, "key": key}))
    os.chmod(path, 0o600)


TITANIC_FILES = ("train.csv", "test.csv", "gender_submission.csv")


def titanic_competition(mirror: Path, **kwargs) -> Competition:
    """Titanic from the data mirror, with a made-up answer key (the sample's own labels)."""
    files = {name: (mirror / "titanic" / name).read_bytes() for name in TITANIC_FILES}
    rows = [line.split(",") for line in files["gender_submission.csv"].decode().strip().splitlines()[1:]]
    return Competition(files=files, solution={r[0]: r[1].strip() for r in rows}, **kwargs)
