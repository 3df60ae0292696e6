"""The reports as a person sees them: headless Chromium opens eda.html, explain.html, the tuning
report and the MLflow UI of a tracked run, takes screenshots, and the test checks that each page
rendered (not blank), that no image is broken (the browser's own view, and every ``<img>`` is an
embedded PNG or a file that exists) and that no chart is blank.

Needs a Chromium binary (Debian's ``chromium``, which ``.ci/run`` installs); skipped only when
there is none. ``KAGTOOLS_CHROMIUM`` names another binary; ``KAGTOOLS_SCREENSHOTS=DIR`` keeps
the screenshots there for a person to look at.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pytest

pytestmark = pytest.mark.slow
pytest.importorskip("mlflow")

from PIL import Image  # noqa: E402
from test_tracking import start_mlflow_server, stop_mlflow_server, wait_mlflow_server  # noqa: E402

from kagtools.cli.main import main  # noqa: E402
from kagtools.core import tracking  # noqa: E402

WIDTH, HEIGHT = 1280, 2400
# Injected into a copy of each report: after load, the browser lists the images it could not
# draw (naturalWidth 0) in a hidden element that --dump-dom prints.
_PROBE = ("<script>window.addEventListener('load',()=>{const e=document.createElement('pre');e.id='kt-probe';"
          "e.style.display='none';e.textContent=JSON.stringify({images:document.images.length,broken:"
          "[...document.images].filter(i=>!i.complete||i.naturalWidth===0).map(i=>i.alt||i.src.slice(0,80))});"
          "document.body.appendChild(e);});</script>")


def _chromium() -> str | None:
    names = [os.environ.get("KAGTOOLS_CHROMIUM", ""), "chromium", "chromium-browser", "google-chrome",
             "google-chrome-stable"]
    return next((p for p in (shutil.which(n) for n in names if n) if p), None)


def _browse(chromium: str, url: str, png: Path, *, height: int = HEIGHT, budget_ms: int = 5000) -> str:
    """Screenshot ``url`` into ``png`` and return the DOM as the browser left it."""
    out = subprocess.run([chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                          "--no-first-run", "--disable-extensions", f"--user-data-dir={png.parent / 'profile'}",
                          f"--screenshot={png}", "--dump-dom", f"--window-size={WIDTH},{height}",
                          f"--virtual-time-budget={budget_ms}", url],
                         capture_output=True, text=True, timeout=120, cwd=png.parent)
    assert png.is_file() and png.stat().st_size > 0, f"no screenshot of {url}: {out.stderr[-1500:]}"
    keep = os.environ.get("KAGTOOLS_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(png, Path(keep) / png.name)
    return out.stdout


def _ink(img: Image.Image) -> tuple[float, float]:
    """(share of pixels that differ from the background colour, grey-level standard deviation)."""
    grey = np.asarray(img.convert("L"), dtype=float)
    values, counts = np.unique(grey.round(), return_counts=True)
    background = values[counts.argmax()]
    return float((np.abs(grey - background) > 24).mean()), float(grey.std())


def _colour(img: Image.Image) -> float:
    """Share of saturated pixels: bars, lines and maps; an empty plot (axes, ticks, title) has none."""
    hsv = np.asarray(img.convert("RGB").convert("HSV"), dtype=float)
    return float(((hsv[..., 1] > 60) & (hsv[..., 2] > 40)).mean())


def assert_not_blank(img: Image.Image, what: str, *, min_ink: float = 0.005, min_std: float = 4.0,
                     min_colour: float = 0.0) -> None:
    ink, std = _ink(img)
    assert ink >= min_ink and std >= min_std, f"{what} looks blank (ink {ink:.4f}, std {std:.2f})"
    colour = _colour(img)
    assert colour >= min_colour, f"{what}: nothing drawn inside the axes ({colour:.4%} coloured pixels)"


class _Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images: list[dict[str, str]] = []
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        if tag == "img":
            self.images.append(a)
        elif tag == "a" and a.get("href"):
            self.links.append(a["href"])


def _local(ref: str) -> bool:
    return not urlparse(ref).scheme and not ref.startswith(("#", "//"))


def check_report(chromium: str, page: Path, shots: Path, *, min_images: int) -> None:
    """Every image is an embedded, non-blank PNG; every local link exists; the browser drew every
    image; the screenshot is not blank."""
    text = page.read_text()
    parsed = _Images()
    parsed.feed(text)
    assert len(parsed.images) >= min_images, f"{page.name}: {len(parsed.images)} images, expected {min_images}+"
    for k, img in enumerate(parsed.images):
        src, what = img.get("src", ""), f"{page.name} image {k} ({img.get('alt', '')[:60]!r})"
        assert src.startswith("data:image/png;base64,"), f"{what}: not an embedded PNG: {src[:80]!r}"
        raw = base64.b64decode(src.split(",", 1)[1], validate=True)
        chart = Image.open(io.BytesIO(raw))
        chart.load()
        assert chart.format == "PNG" and min(chart.size) >= 50, f"{what}: {chart.format} {chart.size}"
        assert_not_blank(chart, what, min_colour=0.003)
        assert img.get("alt"), f"{what}: no alt text"
    for ref in parsed.links:
        if _local(ref):
            target = page.parent / unquote(urlparse(ref).path)
            assert target.is_file() or target.name == "explain.html", f"{page.name}: link to missing {ref}"

    probe = page.with_name(page.stem + ".probe.html")
    probe.write_text(text.replace("</body>", _PROBE + "</body>") if "</body>" in text else text + _PROBE)
    png = shots / f"{page.stem}.png"
    dom = _browse(chromium, probe.as_uri(), png)
    probe.unlink()
    found = dom.split('id="kt-probe"', 1)
    assert len(found) == 2, f"{page.name}: the page did not finish loading in the browser"
    seen = json.loads(found[1].split(">", 1)[1].split("</pre>", 1)[0].replace("&quot;", '"'))
    assert seen["images"] == len(parsed.images) and not seen["broken"], f"{page.name}: broken images {seen}"
    assert_not_blank(Image.open(png), f"screenshot of {page.name}", min_ink=0.02)


def test_reports_and_mlflow_ui_render_in_a_browser(tmp_path, mirror, monkeypatch):
    chromium = _chromium()
    if chromium is None:
        pytest.skip("no chromium binary (apt-get install chromium, or set KAGTOOLS_CHROMIUM)")
    shots = tmp_path / "screens"
    shots.mkdir()
    work = tmp_path / "work"
    common = ["--data-dir", str(mirror / "titanic"), "--workdir", str(work)]
    # Titanic's own files under an inferred spec with 3 folds: every report in seconds.
    assert main(["init", "tita", *common, "--n-splits", "3", "--n-repeats", "1", "--submission", "labels",
                 "--no-track"]) == 0
    monkeypatch.delenv("KAGTOOLS_NO_TRACK", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    server = None
    try:
        assert main(["cv", "tita", "--model", "logreg", "--n-jobs", "1", *common]) == 0  # tracked
        tracking.flush()
        db = work / "runs" / "mlflow.db"
        assert db.is_file()
        # The UI over the run's store starts in the background while the reports are written.
        url, server = start_mlflow_server(tmp_path / "server", f"sqlite:///{db}", wait=False)
        assert main(["eda", "tita", *common]) == 0
        assert main(["explain", "tita", "--no-track", *common]) == 0
        assert main(["tune", "tita", "--model", "logreg", "--trials", "5", "--n-jobs", "1", "--no-track",
                     *common]) == 0
        reports = work / "reports" / "tita"
        check_report(chromium, reports / "eda.html", shots, min_images=5)
        check_report(chromium, reports / "explain.html", shots, min_images=4)
        check_report(chromium, reports / "tune-logreg.html", shots, min_images=2)

        wait_mlflow_server(url, server)
        dom = _browse(chromium, f"{url}/#/experiments", shots / "mlflow-experiments.png", height=1000,
                      budget_ms=15000)
        assert 'id="root"' in dom and "tita" in dom, f"the MLflow UI did not list the experiment: {dom[-1500:]}"
        assert_not_blank(Image.open(shots / "mlflow-experiments.png"), "screenshot of the MLflow UI", min_ink=0.02)
    finally:
        if server is not None:
            stop_mlflow_server(server)
        tracking.configure(tmp_path, enabled=False)  # later tests of this process track nothing
