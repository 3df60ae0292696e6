from pathlib import Path

import pytest

from kagtools.core.metrics import list_metrics
from kagtools.core.spec import list_specs, load_spec
from kagtools.errors import KagtoolsError
from kagtools.workflow.pipeline import load_pipeline

ROOT = Path(__file__).resolve().parent.parent


def test_titanic_spec():
    spec = load_spec("titanic")
    assert spec.id_col == "PassengerId"
    assert spec.target_cols == ("Survived",)
    assert spec.task == "binary" and spec.metric == "accuracy"
    assert spec.submission_kind == "labels"
    assert spec.cv.splitter == "StratifiedKFold" and spec.cv.n_repeats > 1 and spec.cv.stratify == "Survived"
    assert spec.files["sample_submission"] == "gender_submission.csv"


@pytest.mark.parametrize("slug", list_specs())
def test_every_shipped_spec_loads_with_known_metric_and_pipeline(slug):
    spec = load_spec(slug)
    assert spec.slug == slug
    assert spec.metric in list_metrics()
    if spec.pipeline:
        module = load_pipeline(spec)
        assert hasattr(module, "features") or hasattr(module, "MODELS")


def _write(tmp_path, text):
    p = tmp_path / "x.toml"
    p.write_text(text)
    return p


BASE = 'slug = "x"\ntask = "binary"\nid_col = "id"\ntarget_cols = ["y"]\n[metric]\nname = "accuracy"\n'


def test_spec_errors_name_the_problem(tmp_path):
    with pytest.raises(KagtoolsError, match="missing required key 'id_col'"):
        load_spec(_write(tmp_path, BASE.replace('id_col = "id"\n', "")))
    with pytest.raises(KagtoolsError, match="task 'binar'"):
        load_spec(_write(tmp_path, BASE.replace('"binary"', '"binar"')))
    with pytest.raises(KagtoolsError, match="unknown key.*folds"):
        load_spec(_write(tmp_path, BASE + "[cv]\nfolds = 3\n"))
    with pytest.raises(KagtoolsError, match="not valid TOML"):
        load_spec(_write(tmp_path, "slug = \n"))
    with pytest.raises(KagtoolsError, match="no competition spec for 'nope'.*titanic"):
        load_spec("nope")
