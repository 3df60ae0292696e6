"""The bundled Titanic kernel, run offline in a clean folder: how big it is and how long it takes.

``python -m benchmarks.kernel`` builds ``kernels/titanic/`` (as ``kagtools kernel push titanic
--dry-run`` does) in a temporary work folder, then runs ``python kernel.py`` from another empty
folder with PYTHONPATH unset and a simulated ``/kaggle/input`` + ``/kaggle/working`` (temporary
folders), and records the wall and CPU time, the load of the machine, and the script's size.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.record import record

SLUG = "titanic"


def main() -> None:
    from kagtools.kaggle.kernel import build_kernel

    mirror = Path(os.environ.get("KAGTOOLS_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))
    os.environ["KAGTOOLS_DATA_DIR"] = str(mirror)
    with tempfile.TemporaryDirectory(prefix="kernel-bench-") as tmp:
        tmp = Path(tmp)
        bundle = build_kernel(SLUG, workdir=tmp / "work", owner="benchmark")
        (tmp / "input").mkdir()
        shutil.copytree(mirror / SLUG, tmp / "input" / SLUG)
        (tmp / "working").mkdir()
        (tmp / "cwd").mkdir()
        script = tmp / "kernel.py"
        shutil.copyfile(bundle.script, script)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "KAGTOOLS_DATA_DIR")}
        env.update(KAGTOOLS_KAGGLE_INPUT=str(tmp / "input"), KAGTOOLS_KAGGLE_WORKING=str(tmp / "working"),
                   KAGGLE_KERNEL_RUN_TYPE="Batch", KAGTOOLS_QUIET="1")
        load = os.getloadavg()[0]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, str(script)], cwd=tmp / "cwd", env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            sys.exit(f"the kernel failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        best = next(line for line in proc.stdout.splitlines() if line.startswith("best: "))
        size_kib = script.stat().st_size / 1024
    md = (
        "## Bundled kernel (Titanic, offline, clean folder)\n\n"
        "`python -m benchmarks.kernel`: `kernels/titanic/kernel.py` run with PYTHONPATH unset from an empty "
        "folder, data in a simulated `/kaggle/input`, output to a simulated `/kaggle/working`; the whole "
        "pipeline (5 models x 15 folds, blends, submission).\n\n"
        "| script size | files bundled | wall time | CPU time (user+sys) | load average at start |\n"
        "|---|---|---|---|---|\n"
        f"| {size_kib:.0f} KiB | {len(bundle.files)} | {wall:.1f} s | {cpu:.1f} s | {load:.1f} |\n\n"
        f"Kernel's last line: `{best.split(';')[0]}`. The machine is shared: with a load average above its "
        f"core count the wall time is inflated; the CPU time is what the kernel itself used.\n"
    )
    record("kernel", md)
    print(md)


if __name__ == "__main__":
    main()
