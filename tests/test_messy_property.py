"""Issue 19 as a property: ANY competition folder, however messy, ends in a valid submission or
exactly one clean error line; never another exception, never a file written outside the work
folder. The folders come from tests/messy_gen.py (shared with benchmarks/messy.py).

Profiles: ``ci`` (CI=true) runs 200 examples, ``dev`` (default) 30; both deterministic.
Select one with HYPOTHESIS_PROFILE=ci|dev.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from messy_gen import competitions, run_case

_COMMON = dict(deadline=None, derandomize=True, database=None, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                      HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture])
settings.register_profile("messy-ci", max_examples=200, **_COMMON)
settings.register_profile("messy-dev", max_examples=30, **_COMMON)
_PROFILE = os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI", "").lower() in ("1", "true")
                                                     else "dev")
_SETTINGS = settings.get_profile(f"messy-{_PROFILE}" if _PROFILE in ("ci", "dev") else "messy-dev")


@pytest.mark.slow
@_SETTINGS
@given(case=competitions())
def test_any_competition_folder_ends_in_a_submission_or_one_clean_line(case, monkeypatch):
    monkeypatch.delenv("KAGTOOLS_DATA_DIR", raising=False)
    with tempfile.TemporaryDirectory(prefix="messy-") as tmp:
        outcome = run_case(case, Path(tmp))
    assert not outcome.outside, f"wrote outside the work folder: {outcome.outside}\n{case.describe()}"
    if outcome.exc is not None:  # re-raised, so Hypothesis tells distinct bugs apart by where they arise
        raise AssertionError(f"traceback instead of one clean line\n{case.describe()}") from outcome.exc
    assert outcome.kind in ("submission", "error"), (
        f"{outcome.kind}: {outcome.message}\n{outcome.frame}\n{outcome.tb}\n{case.describe()}")
