"""Benchmark: messy competition folders (issue 19). Generated folders (tests/messy_gen.py, the
same generator as tests/test_messy_property.py) each go through ``kagtools init`` + ``kagtools
submit`` (logistic regression only, 2 folds); every case must end in a valid submission or one
clean error line, never a traceback, never a file written outside its work folder.

Run: ``.venv/bin/python -m benchmarks.messy [--n 200] [--dry-run] [--show-repros FILE]``
(``--dry-run`` prints the section instead of recording it in BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the generator lives beside the property test

os.environ.setdefault("KAGTOOLS_QUIET", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("KAGTOOLS_NO_TRACK", "1")  # MLflow would add a database to every generated case

from messy_gen import Case, Outcome, competitions, run_case  # noqa: E402


def _prefix(message: str, words: int = 6) -> str:
    """An error line's first words, paths, numbers and quoted values masked, to group by."""
    text = message.split("error:", 1)[-1].strip()
    text = re.sub(r"(/[^\s:,;)]+)+", "<path>", text)
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "<v>", text)
    text = re.sub(r"-?\d+(\.\d+)?(e[+-]?\d+)?", "<n>", text)
    return " ".join(text.split()[:words])


def run(n: int) -> tuple[list[tuple[Case, Outcome]], float]:
    from hypothesis import HealthCheck, Phase, given, settings

    results: list[tuple[Case, Outcome]] = []

    @settings(max_examples=n, deadline=None, derandomize=True, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(competitions())
    def one(case):
        with tempfile.TemporaryDirectory(prefix="messy-") as tmp:
            results.append((case, run_case(case, Path(tmp))))
            if len(results) % 10 == 0:
                counts = Counter(o.kind for _, o in results)
                print(f"{len(results)} cases: {dict(counts)}", file=sys.stderr, flush=True)

    start = time.perf_counter()
    one()
    return results, time.perf_counter() - start


def report(results: list[tuple[Case, Outcome]], seconds: float) -> tuple[str, str]:
    """(the BENCHMARKS.md section, the reproducers: one smallest case per failure class)."""
    kinds = Counter(o.kind for _, o in results)
    lines = ["## Messy competition folders (`benchmarks/messy.py`)", "",
             f"{len(results)} generated competition folders (random dtypes, NaN/inf, quoted and unicode strings, "
             "rare and missing classes, 0-60 rows, up to 60 columns, odd ids, mismatched samples), each through "
             "`kagtools init` + `kagtools submit` with logistic regression on 2 folds, in "
             f"{seconds:.0f} s ({seconds / max(len(results), 1):.2f} s a case).", "",
             "| outcome | cases | mean seconds a case |", "|---|---|---|"]
    for kind in ("submission", "error", "invalid", "traceback"):
        secs = [o.seconds for _, o in results if o.kind == kind]
        lines.append(f"| {kind} | {kinds.get(kind, 0)} | {sum(secs) / len(secs):.2f} |" if secs else f"| {kind} | 0 | - |")
    errors = Counter(_prefix(o.message) for _, o in results if o.kind == "error")
    if errors:
        lines += ["", "Clean errors, by message prefix:", "", "| message starts | cases |", "|---|---|"]
        lines += [f"| {p.replace('|', '/')} | {c} |" for p, c in errors.most_common()]
    classes: dict[str, list[tuple[Case, Outcome]]] = {}
    for case, o in results:
        if o.kind == "traceback":
            key = f"{o.exc_type} at {o.frame or '(outside kagtools)'}: {_prefix(o.message.split(':', 1)[-1], 5)}"
            classes.setdefault(key, []).append((case, o))
        elif o.kind == "invalid":
            classes.setdefault(f"invalid: {_prefix(o.message, 9)}", []).append((case, o))
        if o.outside:
            classes.setdefault("wrote outside the work folder", []).append((case, o))
    if classes:
        lines += ["", "Failures (a traceback, a wrong submission or a write outside the work folder):", "",
                  "| class | cases | first message |", "|---|---|---|"]
        for key, items in sorted(classes.items(), key=lambda kv: -len(kv[1])):
            first = items[0][1]
            msg = (first.message if key != "wrote outside the work folder" else ", ".join(first.outside))[:120]
            lines.append(f"| {key.replace('|', '/')} | {len(items)} | {msg.replace('|', '/')} |")
    else:
        lines += ["", "No tracebacks, no wrong submissions, nothing written outside a work folder."]
    repros = []
    for key, items in sorted(classes.items(), key=lambda kv: -len(kv[1])):
        case, o = min(items, key=lambda co: co[0].size())
        repros.append(f"## {key} ({len(items)} cases)\n{o.message}\n{o.tb}\n{case.describe()}")
    return "\n".join(lines), "\n\n".join(repros)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200, help="generated cases (default 200)")
    parser.add_argument("--dry-run", action="store_true", help="print the section; do not write BENCHMARKS.md")
    parser.add_argument("--show-repros", metavar="FILE", help="write one smallest input per failure class here")
    args = parser.parse_args(argv)
    results, seconds = run(args.n)
    section, repros = report(results, seconds)
    print(section)
    if args.show_repros:
        Path(args.show_repros).write_text(repros + "\n")
        print(f"reproducers: {args.show_repros}")
    if not args.dry_run:
        from benchmarks.record import record

        print(f"recorded in {record('messy', section)}")


if __name__ == "__main__":
    main()
