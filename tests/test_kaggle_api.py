"""kagtools <-> Kaggle through the real ``kaggle`` client, against the local fake server."""

from __future__ import annotations

from pathlib import Path

import pytest

from kagtools.cli.main import main
from kagtools.errors import KagtoolsError
from kagtools.kaggle.api import explain_http_error, get_api, submit_file
from tests.fake_kaggle import (
    TITANIC_FILES,
    Competition,
    FakeKaggle,
    clean_identity,
    titanic_competition,
    write_kaggle_json,
)


@pytest.fixture
def kaggle_config(tmp_path, monkeypatch) -> Path:
    return clean_identity(tmp_path, monkeypatch)


@pytest.fixture
def fake(mirror, kaggle_config, monkeypatch):
    comps = {
        "titanic": titanic_competition(mirror),
        "secret-comp": Competition(files={"train.csv": b"id,y\n1,0\n"}, rules_accepted=False),
        "broken-mirror": Competition(files={"train.csv": b"id,y\n1,0\n"}, extra_listed=("images/0001.png",)),
    }
    datasets = {"alice/titanic-extras": {"titles.csv": b"code,title\nA,anchor\n"}}
    with FakeKaggle(competitions=comps, datasets=datasets, daily_submissions=2, token="tok-123") as server:
        monkeypatch.setenv("KAGGLE_API_ENDPOINT", server.url)
        write_kaggle_json(kaggle_config)
        yield server


def test_download_unzips_every_listed_file_and_attached_datasets(fake, tmp_path, mirror, capsys):
    target = tmp_path / "data" / "titanic"
    assert main(["download", "titanic", "--data-dir", str(target), "--dataset", "alice/titanic-extras"]) == 0
    for name in TITANIC_FILES:
        assert (target / name).read_bytes() == (mirror / "titanic" / name).read_bytes()
    assert not list(target.glob("*.zip"))  # unzipped, archive removed
    assert (tmp_path / "data" / "titanic-extras" / "titles.csv").read_text().startswith("code,title")
    methods = [m for m, _ in fake.calls]
    assert {"DownloadDataFiles", "ListDataFiles", "DownloadDataset"} <= set(methods)
    assert str(target) in capsys.readouterr().out
    # A non-empty folder is kept unless --force.
    (target / "train.csv").write_text("changed")
    assert main(["download", "titanic", "--data-dir", str(target)]) == 0
    assert (target / "train.csv").read_text() == "changed"
    assert main(["download", "titanic", "--data-dir", str(target), "--force"]) == 0
    assert (target / "train.csv").read_bytes() == (mirror / "titanic" / "train.csv").read_bytes()


def test_download_checks_the_file_list_and_explains_403(fake, tmp_path, capsys):
    assert main(["download", "broken-mirror", "--data-dir", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "missing after the download" in err and "images/0001.png" in err
    assert main(["download", "secret-comp", "--data-dir", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip()
    assert "forbidden (403)" in err and "https://www.kaggle.com/c/secret-comp/rules" in err
    assert len(err.splitlines()) == 1
    assert main(["download", "no-such-comp", "--data-dir", str(tmp_path / "n")]) == 2
    assert "not found on Kaggle (404)" in capsys.readouterr().err


def test_submit_validated_run_list_scores_and_quota(fake, tmp_path, capsys):
    work = tmp_path / "work"
    assert main(["cv", "titanic", "--model", "logreg", "--workdir", str(work), "--n-jobs", "1"]) == 0
    run_id = next((work / "runs" / "titanic").glob("logreg-*/run.json")).parent.name
    assert main(["submit", "titanic", "--workdir", str(work), "--run", run_id, "--to-kaggle",
                 "-m", "logreg baseline"]) == 0
    out = capsys.readouterr().out
    assert "submitted submission.csv to Kaggle 'titanic'" in out
    uploaded = fake.submissions[-1]
    assert uploaded["description"] == "logreg baseline"
    assert uploaded["content"] == (work / "submissions" / "titanic" / "submission.csv").read_bytes()
    assert main(["submissions", "titanic"]) == 0
    table = capsys.readouterr().out
    assert "logreg baseline" in table and "complete" in table
    assert f"{uploaded['score']:.5f}" in table and "public" in table.splitlines()[0]
    # The fake allows 2 a day: the second goes through, the third is refused with one line.
    csv = work / "submissions" / "titanic" / "submission.csv"
    submit_file("titanic", csv, message="second")
    with pytest.raises(KagtoolsError, match=r"quota or rate limit exceeded .*allowance"):
        submit_file("titanic", csv, message="third")
    with pytest.raises(KagtoolsError, match="missing or empty"):
        submit_file("titanic", tmp_path / "nope.csv", message="x")


def test_submit_file_uploads_a_csv_made_anywhere_once_it_is_valid(fake, tmp_path, mirror, capsys):
    mine = tmp_path / "mine.csv"
    mine.write_bytes((mirror / "titanic" / "gender_submission.csv").read_bytes())
    assert main(["submit", "titanic", "--file", str(mine), "--to-kaggle", "-m", "by hand",
                 "--workdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"{mine}: valid" in out and "submitted mine.csv to Kaggle 'titanic'" in out
    assert fake.submissions[-1]["description"] == "by hand"
    assert fake.submissions[-1]["content"] == mine.read_bytes()
    # An invalid file never leaves the machine.
    mine.write_text(mine.read_text().replace("PassengerId", "Id"))
    assert main(["submit", "titanic", "--file", str(mine), "--to-kaggle", "--workdir", str(tmp_path)]) == 2
    assert "do not match the sample submission" in capsys.readouterr().err
    assert len(fake.submissions) == 1


def test_credentials_from_each_source(fake, kaggle_config, monkeypatch, capsys):
    (kaggle_config / "kaggle.json").unlink()
    with pytest.raises(KagtoolsError, match="no Kaggle credentials found"):
        get_api()
    assert main(["submissions", "titanic"]) == 2
    assert "no Kaggle credentials found" in capsys.readouterr().err
    monkeypatch.setenv("KAGGLE_USERNAME", "alice")
    monkeypatch.setenv("KAGGLE_KEY", "secret-key")
    assert main(["submissions", "titanic"]) == 0
    monkeypatch.setenv("KAGGLE_KEY", "wrong")
    assert main(["submissions", "titanic"]) == 2
    assert "rejected the credentials (401)" in capsys.readouterr().err
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    monkeypatch.setenv("KAGGLE_API_TOKEN", "tok-123")  # checked by IntrospectToken, then Bearer auth
    assert get_api().config_values["username"] == "alice"
    assert main(["submissions", "titanic"]) == 0
    monkeypatch.setenv("KAGGLE_API_TOKEN", "expired")
    with pytest.raises(KagtoolsError, match="no Kaggle credentials found"):
        get_api()
    # KAGGLE_CONFIG_DIR is followed as it is when the call is made, not when kaggle was imported.
    monkeypatch.delenv("KAGGLE_API_TOKEN")
    other = kaggle_config.parent / "other-config"
    other.mkdir()
    write_kaggle_json(other)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(other))
    assert get_api().config_values["username"] == "alice"


class _Response:
    def __init__(self, status):
        self.status_code = status


class _HTTPError(Exception):
    def __init__(self, message, status):
        super().__init__(message)
        self.response = _Response(status)


@pytest.mark.parametrize("status, message, expected", [
    (403, "Permission 'competitions.participate' was denied", "accept the competition rules"),
    (429, "Too Many Requests", "quota or rate limit exceeded"),
    (400, "Submission not allowed: daily Submission allowance (5) used", "quota or rate limit exceeded"),
    (401, "Unauthenticated", "rejected the credentials"),
    (404, "Not found", "'titanic' not found"),
    (500, "boom", "Kaggle answered 500 (boom)"),
])
def test_http_errors_become_one_line(status, message, expected):
    err = explain_http_error(_HTTPError(message, status), "titanic", "download titanic")
    assert expected in str(err) and "\n" not in str(err)
    assert str(err).startswith("download titanic: ")


def test_network_failure_is_one_line():
    err = explain_http_error(ConnectionError("Max retries exceeded"), "titanic", "download titanic")
    assert "cannot reach Kaggle (ConnectionError)" in str(err)
