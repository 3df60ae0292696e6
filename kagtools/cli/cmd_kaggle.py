"""Kaggle verbs: ``download``, ``submissions`` and ``kernel push|status|output|submit``.

Every call to Kaggle goes through :mod:`kagtools.kaggle.api`; kernels are built and imported by
:mod:`kagtools.kaggle.kernel`.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from kagtools.cli.options import command
from kagtools.core.table import format_table
from kagtools.errors import KagtoolsError

__all__ = ["cmd_download", "cmd_submissions", "cmd_kernel", "wait_for_kernel"]

LOG_TAIL_LINES = 25
PLACEHOLDER_OWNER = "your-kaggle-username"  # a dry run's kernel owner when no credentials are set up


def _download_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("slug", help="competition slug, e.g. titanic")
    p.add_argument("--data-dir", help="where the files go (default: ./data/<slug>)")
    p.add_argument("--force", action="store_true", help="download again even if the folder has files")
    p.add_argument("--dataset", action="append", default=[], metavar="OWNER/NAME",
                   help="also download this dataset (attached data, weights) beside the competition")


@command("download", "download and unzip a competition's files (and attached datasets) through the kaggle API",
         example="kagtools download titanic --data-dir data/titanic", options=_download_options)
def cmd_download(args) -> None:
    from kagtools.kaggle.api import download_competition, download_dataset

    path = download_competition(args.slug, data_dir=args.data_dir, force=args.force)
    files = sorted(p.name for p in path.iterdir())
    print(f"{args.slug}: {path} ({len(files)} entries: {', '.join(files[:8])}{' ...' if len(files) > 8 else ''})")
    for ref in args.dataset:
        target = Path(args.data_dir).parent / ref.split("/")[-1] if args.data_dir else None
        print(f"{ref}: {download_dataset(ref, data_dir=target, force=args.force)}")


@command("submissions", "your earlier Kaggle submissions with status and public/private scores",
         example="kagtools submissions titanic",
         options=lambda p: p.add_argument("slug", help="competition slug, e.g. titanic"))
def cmd_submissions(args) -> None:
    from kagtools.kaggle.api import list_submissions

    rows = list_submissions(args.slug)
    print(format_table(rows, ["date", "file", "description", "status", "public", "private", "error"]))


# ---------------------------------------------------------------------------------------------
# kernel push | status | output | submit


def _action(sub, name: str, help: str, description: str, example: str) -> argparse.ArgumentParser:
    """A ``kernel`` action's parser, with the options every action shares."""
    p = sub.add_parser(name, help=help, description=description, epilog=f"example:\n  {example}")
    p.add_argument("slug", help="competition slug, e.g. titanic")
    p.add_argument("--workdir", default=".", help="where kernels/<slug>/ and runs/ are (default: .)")
    p.add_argument("--kernel", help="kernel id owner/slug (default: the id in kernels/<slug>/kernel-metadata.json)")
    return p


def _wait_options(p: argparse.ArgumentParser, *, wait_default: bool) -> None:
    if wait_default:
        p.add_argument("--no-wait", dest="wait", action="store_false", help="do not wait for the run to end")
    else:
        p.add_argument("--wait", action="store_true", help="poll until the run ends")
    p.add_argument("--interval", type=float, default=30.0, help="seconds between polls (default 30)")
    p.add_argument("--timeout", type=float, default=12 * 3600.0, help="give up waiting after this many seconds")


def _kernel_options(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True, metavar="action")
    push = _action(
        sub, "push", "build kernels/<slug>/ and push it (runs on Kaggle)",
        "Build kernels/<slug>/ (kernel.py: the pipeline, a driver and the bundled kagtools, plus\n"
        "kernel-metadata.json) and push it to Kaggle, where it runs the pipeline. --dry-run builds\n"
        "the folder only and needs no Kaggle credentials.",
        "kagtools kernel push titanic --profile smoke --dry-run")
    push.add_argument("--data-dir", help="competition files, to make the folds the kernel reuses")
    push.add_argument("--owner", help="Kaggle username owning the kernel (default: from the credentials)")
    push.add_argument("--title", help="kernel title (default: 'kagtools <slug>')")
    push.add_argument("--profile", help="pipeline profile to run (default: the pipeline picks by device)")
    push.add_argument("--gpu", action="store_true", help="run on a GPU")
    push.add_argument("--t4x2", action="store_true", help="run on a GPU T4 x2 machine")
    push.add_argument("--internet", dest="internet", action="store_true", help="allow internet access")
    push.add_argument("--no-internet", dest="internet", action="store_false",
                      help="no internet (default; code competitions require it)")
    push.add_argument("--private", dest="private", action="store_true", help="private kernel (default)")
    push.add_argument("--public", dest="private", action="store_false", help="public kernel")
    push.set_defaults(internet=False, private=True)
    push.add_argument("--dataset", action="append", default=[], metavar="OWNER/NAME", help="attach a dataset")
    push.add_argument("--model-source", action="append", default=[], metavar="OWNER/MODEL/FRAMEWORK/VARIATION/VERSION",
                      help="attach a Kaggle model")
    push.add_argument("--kernel-source", action="append", default=[], metavar="OWNER/KERNEL",
                      help="attach another kernel's output")
    push.add_argument("--dry-run", action="store_true", help="build kernels/<slug>/ and stop")
    status = _action(
        sub, "status", "the status of the kernel's latest run",
        "The status of the pushed kernel's latest run (queued, running, complete, error); with --wait,\n"
        "poll until it ends. A failed run ends with the tail of its log.",
        "kagtools kernel status titanic --wait --interval 60")
    _wait_options(status, wait_default=False)
    output = _action(
        sub, "output", "wait, download the kernel's output and import its runs",
        "Wait for the kernel's run to end, download its output into kernels/<slug>/output/ and\n"
        "import its runs into runs/<slug>/, where they blend with local runs on the same folds.",
        "kagtools kernel output titanic")
    _wait_options(output, wait_default=True)
    output.add_argument("--all-files", action="store_true",
                        help="download every output file (default: run artifacts, folds and submission only)")
    submit = _action(
        sub, "submit", "submit the kernel's output to a code competition",
        "Submit a pushed kernel's output file to a code competition (Kaggle reruns the kernel on\n"
        "the hidden test set).",
        "kagtools kernel submit titanic -m 'lgbm + blend'")
    submit.add_argument("-m", "--message", default="kagtools", help="submission message on Kaggle")
    submit.add_argument("--version", type=int, help="kernel version (default: the last pushed)")
    submit.add_argument("--file-name", default="submission.csv", help="the kernel's output file to submit")


@command("kernel", "push the pipeline as a Kaggle kernel, follow it, pull its runs back",
         description="Kaggle kernels: push the competition's pipeline as a script that runs on Kaggle, follow\n"
                     "it, pull its runs back, submit its output to a code competition.\n\n"
                     "actions (`kagtools kernel <action> --help` for each):\n"
                     "  push     build kernels/<slug>/ and push it (--dry-run: build only, no credentials)\n"
                     "  status   the status of the kernel's latest run (--wait to poll)\n"
                     "  output   wait, download the output and import its runs\n"
                     "  submit   submit the kernel's output to a code competition",
         example="kagtools kernel push titanic --gpu && kagtools kernel output titanic", options=_kernel_options)
def cmd_kernel(args) -> None:
    {"push": _push, "status": _status, "output": _output, "submit": _submit}[args.action](args)


def _kernel_id(args) -> str:
    from kagtools.kaggle.kernel import read_kernel_id

    return args.kernel or read_kernel_id(args.workdir, args.slug)


def _push(args) -> None:
    from kagtools.core.io import write_json
    from kagtools.kaggle.api import get_api, local_username, push_kernel
    from kagtools.kaggle.kernel import build_kernel

    owner = args.owner
    if not owner and not args.dry_run:
        owner = get_api().config_values.get("username")
    owner = owner or local_username()
    placeholder = not owner  # only a dry run gets here: the folder is built to read, not to push
    owner = owner or PLACEHOLDER_OWNER
    bundle = build_kernel(
        args.slug, workdir=args.workdir, owner=owner, data_dir=args.data_dir, title=args.title,
        profile=args.profile, gpu=args.gpu, t4x2=args.t4x2, internet=args.internet, private=args.private,
        datasets=args.dataset, models=args.model_source, kernels=args.kernel_source,
    )
    m = bundle.metadata
    size = bundle.script.stat().st_size / 1024
    print(f"built {bundle.folder}: {bundle.script.name} ({size:.0f} KiB, {len(bundle.files)} files bundled), "
          f"kernel-metadata.json (id {m['id']}, gpu {m['enable_gpu']}"
          f"{', ' + m['machine_shape'] if m['machine_shape'] else ''}, internet {m['enable_internet']}, "
          f"private {m['is_private']})")
    print(f"folds: {bundle.folds_hash or 'none here; the kernel makes them from the spec'}")
    if placeholder:
        print(f"no Kaggle credentials: the kernel id uses the placeholder owner '{owner}' (pass --owner, or set "
              "up credentials before pushing)")
    if args.dry_run:
        return
    pushed = push_kernel(bundle.folder, slug=args.slug)
    write_json(bundle.folder / "push.json", {**pushed, "id": m["id"], "pushed": time.strftime("%Y-%m-%dT%H:%M:%S")})
    print(f"pushed {m['id']} version {pushed['version']}: {pushed['url']}")
    print(f"next: `kagtools kernel status {args.slug} --wait`, then `kagtools kernel output {args.slug}`")


def _log_tail(kernel: str, workdir: str, slug: str) -> str:
    from kagtools.kaggle.api import kernel_output
    from kagtools.kaggle.kernel import kernel_dir, kernel_log_text

    # A pattern no file name matches: only the log comes back.
    _, log = kernel_output(kernel, kernel_dir(workdir, slug) / "output", file_pattern=r"^$")
    lines = kernel_log_text(log).rstrip().splitlines()
    return "\n".join(lines[-LOG_TAIL_LINES:]) if lines else "(empty log)"


def wait_for_kernel(kernel: str, *, interval: float, timeout: float, wait: bool = True) -> tuple[str, str]:
    """Poll the kernel's status until it ends (or once when ``wait`` is false)."""
    from kagtools.kaggle.api import TERMINAL_KERNEL_STATES, kernel_status

    start = time.monotonic()
    last = None
    while True:
        status, failure = kernel_status(kernel)
        if status != last:
            print(f"{kernel}: {status}", file=sys.stderr, flush=True)
            last = status
        if not wait or status in TERMINAL_KERNEL_STATES:
            return status, failure
        if time.monotonic() - start > timeout:
            raise KagtoolsError(f"kernel {kernel} still {status} after {timeout:.0f}s; check it later")
        time.sleep(interval)


def _wait(args) -> tuple[str, str]:
    """The kernel's id and status, polled as the flags say; a failed run ends with its log."""
    kernel = _kernel_id(args)
    status, failure = wait_for_kernel(kernel, interval=args.interval, timeout=args.timeout, wait=args.wait)
    if status == "error":
        tail = _log_tail(kernel, args.workdir, args.slug)
        raise KagtoolsError(f"kernel {kernel} failed (ERROR{': ' + failure if failure else ''}); "
                            f"the end of its log:\n{tail}")
    if status.startswith("cancel"):
        raise KagtoolsError(f"kernel {kernel} was cancelled ({status})")
    return kernel, status


def _status(args) -> None:
    kernel, status = _wait(args)
    print(f"{kernel}: {status}")


# What `kernel output` fetches by default: what it imports, and the submission.
_ARTIFACTS = r"(^|/)(oof\.parquet|test\.parquet|run\.json|folds\.csv|folds\.json|submission\.csv|kagtools-kernel\.json)$"


def _output(args) -> None:
    from kagtools.kaggle.api import kernel_output
    from kagtools.kaggle.kernel import import_kernel_runs, kernel_dir
    from kagtools.workflow.context import leaderboard, open_context

    kernel, status = _wait(args)
    if status != "complete":
        raise KagtoolsError(f"kernel {kernel} is {status}; wait for it (drop --no-wait)")
    dest = kernel_dir(args.workdir, args.slug) / "output"
    shutil.rmtree(dest, ignore_errors=True)  # never import a previous version's leftovers
    files, _ = kernel_output(kernel, dest, file_pattern=None if args.all_files else _ARTIFACTS)
    print(f"downloaded {len(files)} file(s) to {dest}")
    runs = import_kernel_runs(dest, args.slug, workdir=args.workdir, kernel=kernel)
    ctx = open_context(args.slug, workdir=args.workdir)
    rows = leaderboard(ctx, runs)
    for row in rows:
        row["cv"] = f"{row['cv']:.4f} +- {row['std']:.4f}"
    print(format_table(rows, ["run", "model", "kind", "cv", "seconds"]))
    print(f"imported {len(runs)} run(s) into {ctx.root}; they blend with local runs on folds "
          f"{runs[0].record.folds_hash}")


def _submit(args) -> None:
    from kagtools.core.io import read_json
    from kagtools.kaggle.api import submit_code
    from kagtools.kaggle.kernel import kernel_dir

    kernel = _kernel_id(args)
    version = args.version
    pushed = kernel_dir(args.workdir, args.slug) / "push.json"
    if version is None and pushed.is_file():
        version = read_json(pushed).get("version")
    print(submit_code(args.slug, kernel=kernel, version=version, message=args.message, file_name=args.file_name))
