"""Competition specs: what a competition IS, loaded from ``competitions/<slug>.toml``."""

from __future__ import annotations

import json
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kagtools.core.environment import shipped_dir
from kagtools.core.registry import did_you_mean
from kagtools.core.task import TASKS, Task
from kagtools.errors import KagtoolsError

__all__ = ["CVScheme", "CompetitionSpec", "load_spec", "spec_path", "list_specs", "parse_spec", "spec_to_toml", "check_name", "TASKS", "Task"]

SUBMISSION_KINDS = ("labels", "probabilities", "values")


@dataclass(frozen=True)
class CVScheme:
    """How folds are made: a scikit-learn splitter by name, seeded, repeated ``n_repeats`` times.

    ``stratify`` names the column to stratify on (usually the target); for a regression target
    it is binned into ``stratify_bins`` quantiles first. ``group`` names the column whose rows
    must stay together (e.g. the anchor phrase, the user).
    """

    splitter: str = "StratifiedKFold"
    n_splits: int = 5
    n_repeats: int = 1
    seed: int = 42
    stratify: str | None = None
    group: str | None = None
    time: str | None = None
    stratify_bins: int = 10

    def __post_init__(self) -> None:
        for key, low in (("n_splits", 2), ("n_repeats", 1), ("stratify_bins", 2), ("seed", 0)):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise KagtoolsError(f"cv.{key} must be a whole number >= {low}, got {value!r}")
        for key in ("splitter", "stratify", "group", "time"):
            value = getattr(self, key)
            if value is not None and not isinstance(value, str):
                raise KagtoolsError(f"cv.{key} must be a column or class name (a string), got {value!r}")

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class CompetitionSpec:
    """A competition: its files, id, target(s), task, metric, submission format and CV scheme."""

    slug: str
    task: Task
    id_col: str
    target_cols: tuple[str, ...]
    metric: str
    title: str = ""
    files: dict[str, str] = field(default_factory=dict)
    submission_kind: str = "labels"
    submission_columns: tuple[str, ...] = ()
    submission_dtypes: dict[str, str] = field(default_factory=dict)
    cv: CVScheme = field(default_factory=CVScheme)
    pipeline: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    data_dir: str | None = None  # where `kagtools init` read the files; relative: to the project folder

    def __post_init__(self) -> None:
        check_name(self.slug, "competition slug")
        object.__setattr__(self, "task", Task.parse(self.task, where=f"spec '{self.slug}': task"))

    @property
    def target(self) -> str:
        """The single target column (most competitions have one)."""
        return self.target_cols[0]

    @property
    def is_classification(self) -> bool:
        return self.task.is_classification

    @property
    def project(self) -> Path | None:
        """The project folder whose ``competitions/`` holds this spec."""
        return self.path.resolve().parent.parent if self.path is not None else None

    @property
    def data_path(self) -> Path | None:
        """The recorded data folder, resolved against the project folder when relative."""
        if not self.data_dir:
            return None
        p = Path(self.data_dir).expanduser()
        return p if p.is_absolute() or self.project is None else self.project / p

    def file(self, key: str) -> str:
        if key not in self.files:
            raise KagtoolsError(f"competition spec '{self.slug}' names no '{key}' file under [files]")
        return self.files[key]


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def check_name(name: Any, what: str) -> str:
    """``name`` if it is safe as one path component (a slug, a run id): letters, digits, ``.``,
    ``_`` and ``-``, not starting with a dot; else one line saying so. Every artifact of a
    competition lives under folders named by its slug, so a slug like ``../x`` would escape them."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
        raise KagtoolsError(f"{what} {name!r} is not a plain name: use letters, digits, '.', '_' and '-' "
                            f"(no '/', no '..', not starting with '.')")
    return name


def _spec_dirs(workdir: Path | None = None) -> list[Path]:
    """The project folder's ``competitions/`` (the working directory), then the shipped specs."""
    local, shipped = (workdir or Path.cwd()) / "competitions", shipped_dir("competitions")
    return [local] if local.resolve() == shipped.resolve() else [local, shipped]


def spec_path(slug: str, workdir: Path | None = None) -> Path | None:
    check_name(slug, "competition slug")
    paths = [d / f"{slug}.toml" for d in _spec_dirs(workdir)]
    return next((p for p in paths if p.is_file()), None)


def list_specs(workdir: Path | None = None) -> list[str]:
    return sorted({p.stem for d in _spec_dirs(workdir) for p in d.glob("*.toml")})


def parse_spec(data: dict[str, Any], *, source: str = "<dict>", path: Path | None = None) -> CompetitionSpec:
    """Build a spec from a TOML-shaped dict, with one clear error for any bad field."""

    def need(key: str, table: dict[str, Any] = data, where: str = "") -> Any:
        if key not in table:
            raise KagtoolsError(f"{source}: missing required key '{where}{key}'")
        return table[key]

    task = Task.parse(need("task"), where=f"{source}: task")
    targets = need("target_cols")
    metric = data.get("metric", {})
    metric_name = metric.get("name") if isinstance(metric, dict) else metric
    if not metric_name:
        raise KagtoolsError(f"{source}: missing required key 'metric.name'")
    sub = data.get("submission", {})
    kind = sub.get("kind", "labels")
    if kind not in SUBMISSION_KINDS:
        raise KagtoolsError(f"{source}: submission.kind '{kind}' is not one of {', '.join(SUBMISSION_KINDS)}")
    cv_table = dict(data.get("cv", {}))
    unknown = set(cv_table) - set(CVScheme.__dataclass_fields__)
    if unknown:
        raise KagtoolsError(f"{source}: unknown key(s) in [cv]: {', '.join(sorted(unknown))}")
    for key in ("stratify", "group", "time"):
        if cv_table.get(key) == "":
            cv_table[key] = None
    try:
        cv = CVScheme(**cv_table)
    except KagtoolsError as exc:
        raise KagtoolsError(f"{source}: {exc}; fix [cv] in the spec") from None
    return CompetitionSpec(
        slug=need("slug"),
        title=data.get("title", ""),
        task=task,
        id_col=need("id_col"),
        target_cols=(targets,) if isinstance(targets, str) else tuple(targets),
        metric=metric_name,
        files=dict(data.get("files", {})),
        submission_kind=kind,
        submission_columns=tuple(sub.get("columns", ())),
        submission_dtypes=dict(sub.get("dtypes", {})),
        cv=cv,
        pipeline=data.get("pipeline"),
        options=dict(data.get("options", {})),
        path=path,
        data_dir=data.get("data_dir"),
    )


def load_spec(slug_or_path: str | os.PathLike, workdir: Path | None = None) -> CompetitionSpec:
    """Load ``competitions/<slug>.toml`` (from the working directory, then the project)."""
    p = Path(slug_or_path)
    if p.suffix == ".toml":
        path = p if p.is_file() else None
    else:
        path = spec_path(str(slug_or_path), workdir)
    if path is None:
        known = list_specs(workdir)
        raise KagtoolsError(f"no competition spec for '{slug_or_path}'{did_you_mean(p.stem, known)} "
                            f"(known: {', '.join(known) or 'none'}); "
                            f"write competitions/{p.stem}.toml or run `kagtools init {p.stem}`")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise KagtoolsError(f"{path}: not valid TOML ({exc})") from None
    return parse_spec(data, source=str(path), path=path)


def _toml_value(value: Any) -> str:
    if isinstance(value, (bool, str)):
        return json.dumps(value)  # JSON's true, false and strings are valid TOML
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() and key.isascii() else json.dumps(key)


def spec_to_toml(data: dict[str, Any], *, header: str = "") -> str:
    """A TOML-shaped spec dict (what :func:`parse_spec` reads) as TOML text.

    Top-level scalars first, then one ``[table]`` per nested dict; ``None`` values are left
    out. ``header`` lines are written as comments at the top.
    """
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    for key, value in data.items():
        if key not in tables and value is not None:
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for name, table in tables.items():
        lines += ["", f"[{_toml_key(name)}]"]
        lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items() if v is not None]
    text = "\n".join(lines) + "\n"
    tomllib.loads(text)  # what we write must read back
    return text
