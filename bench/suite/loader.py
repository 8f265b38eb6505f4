"""Suite files (TOML) -> validated `Suite` -> expanded `Case` list.

A suite file has `[suite]` (name, description, reference_fallback), `[defaults]` (any case field),
`[matrix]` (lists per axis; their product is the cases), and `[[exclude]]` / `[[include]]` tables.
Every problem raises `SuiteError` naming the file, the key and what is allowed. A suite file may be
at most `SUITE_MAX_BYTES`, nest no deeper than the TOML reader can follow, and expand to at most
`SUITE_MAX_CASES` cases, counted from the axis lengths before anything is expanded.
"""

from __future__ import annotations

import itertools
import math
import string
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import BenchError, SuiteError
from bench.limits import SUITE_MAX_BYTES, SUITE_MAX_CASES, human_bytes
from bench.suite.case import Case
from bench.suite.fields import FIELDS, SUITE_KEYS, Field

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

SECTIONS: tuple[str, ...] = ("suite", "defaults", "matrix", "exclude", "include")
DEFAULT_SUITE = "smoke"
#: Placeholders a model id may hold, filled from the case's axes.
MODEL_PLACEHOLDERS: tuple[str, ...] = ("attention", "quantization")


@dataclass(frozen=True)
class Suite:
    """A parsed, validated suite file."""

    name: str
    path: Path
    description: str = ""
    reference_fallback: bool = True
    defaults: dict[str, Any] = field(default_factory=dict)
    matrix: dict[str, list[Any]] = field(default_factory=dict)
    exclude: list[dict[str, list[Any]]] = field(default_factory=list)
    include: list[dict[str, list[Any]]] = field(default_factory=list)

    def cases(self) -> list[Case]:
        """The expanded cases (matrix product minus excludes, plus includes), deduplicated."""
        return expand(self)


# --------------------------------------------------------------------------- finding suites


def suite_dirs(cwd: Path | None = None) -> list[Path]:
    """Where suite names are looked up: ./suites, then the suites shipped with the package.

    `bench/builtin_suites` is a symlink to the checkout's suites/ folder, so an editable
    install reads the checkout and a built wheel carries a copy of the files.
    """
    import bench

    cwd = Path.cwd() if cwd is None else cwd
    candidates = [cwd / "suites", Path(bench.__file__).resolve().parent / "builtin_suites"]
    unique: list[Path] = []
    for candidate in candidates:
        if candidate.is_dir() and candidate.resolve() not in [u.resolve() for u in unique]:
            unique.append(candidate)
    return unique


def available_suites(cwd: Path | None = None) -> dict[str, Path]:
    """Suite name -> file, earlier folders winning."""
    found: dict[str, Path] = {}
    for folder in suite_dirs(cwd):
        for path in sorted(folder.glob("*.toml")):
            found.setdefault(path.stem, path)
    return found


def find_suite(name_or_path: str, cwd: Path | None = None) -> Path:
    """Resolve a suite name (`smoke`) or a path to a .toml file."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or candidate.parent != Path("."):
        if candidate.is_file():
            return candidate
        raise SuiteError(f"suite file {name_or_path} does not exist")
    known = available_suites(cwd)
    if name_or_path in known:
        return known[name_or_path]
    where = ", ".join(str(d) for d in suite_dirs(cwd)) or "no suites/ folder found"
    names = ", ".join(sorted(known)) or "none"
    raise SuiteError(f"unknown suite {name_or_path!r}; known suites: {names} (searched {where})")


def load_suite(name_or_path: str, cwd: Path | None = None) -> Suite:
    """Find, read and validate a suite."""
    path = find_suite(name_or_path, cwd)
    try:
        size = path.stat().st_size
        if size > SUITE_MAX_BYTES:
            raise SuiteError(f"{path}: the suite file is {human_bytes(size)}, over the limit of {human_bytes(SUITE_MAX_BYTES)}")
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise SuiteError(f"{path}: invalid TOML: {error}") from None
    except RecursionError:
        raise SuiteError(f"{path}: invalid TOML: arrays or tables nested too deeply") from None
    except (OSError, UnicodeDecodeError) as error:
        raise SuiteError(f"{path}: cannot read: {error}") from None
    return parse_suite(data, path)


# --------------------------------------------------------------------------- validation


def parse_suite(data: dict[str, Any], path: Path) -> Suite:
    """Validate the TOML tables of a suite file; raise SuiteError at the first problem."""
    _reject_unknown(path, "", data, SECTIONS)
    meta = _table(path, "suite", data.get("suite", {}))
    _reject_unknown(path, "suite.", meta, SUITE_KEYS)
    name = _check(path, "suite.name", SUITE_KEYS["name"], meta.get("name", path.stem))
    description = _check(path, "suite.description", SUITE_KEYS["description"], meta.get("description", ""))
    fallback = _check(path, "suite.reference_fallback", SUITE_KEYS["reference_fallback"],
                      meta.get("reference_fallback", True))  # fmt: skip

    defaults_raw = _table(path, "defaults", data.get("defaults", {}))
    _reject_unknown(path, "defaults.", defaults_raw, FIELDS)
    defaults = {key: _check(path, f"defaults.{key}", FIELDS[key], value) for key, value in defaults_raw.items()}

    matrix_raw = _table(path, "matrix", data.get("matrix", {}))
    _reject_unknown(path, "matrix.", matrix_raw, {k: f for k, f in FIELDS.items() if f.axis})
    matrix: dict[str, list[Any]] = {}
    for key, values in matrix_raw.items():
        if not isinstance(values, list):
            raise SuiteError(f"{path}: matrix.{key} must be a list of values ({FIELDS[key].allowed})")
        if not values:
            raise SuiteError(f"{path}: matrix.{key} is empty; list at least one value ({FIELDS[key].allowed})")
        matrix[key] = [_check(path, f"matrix.{key}[{i}]", FIELDS[key], v) for i, v in enumerate(values)]

    exclude = [_selector(path, f"exclude[{i}]", t) for i, t in enumerate(_tables(path, "exclude", data))]
    include = [_selector(path, f"include[{i}]", t) for i, t in enumerate(_tables(path, "include", data))]
    if not matrix and not include:
        raise SuiteError(f"{path}: [matrix] is empty; give at least one axis, e.g. model = [\"tiny-original-fp16\"]")

    _check_init_images(path, defaults, matrix, include)
    suite = Suite(name, path, description, fallback, defaults, matrix, exclude, include)
    count = case_bound(suite)
    if count > SUITE_MAX_CASES:
        raise SuiteError(
            f"{path}: the matrix and includes expand to {count} cases (before excludes), over the limit of "
            f"{SUITE_MAX_CASES}; split the suite"
        )
    if not expand(suite):
        raise SuiteError(f"{path}: the matrix expands to no cases (every case is excluded)")
    return suite


def _check_init_images(
    path: Path, defaults: dict[str, Any], matrix: dict[str, list[Any]], include: list[dict[str, list[Any]]]
) -> None:
    """Every init image a case may read is a regular file within the size limit (relative paths are
    relative to the working directory, as on the command line); pixels are checked when it is read."""
    from bench.pipeline.init_image import check_init_image_file

    named = [("defaults.init_image", defaults.get("init_image"))]
    named += [(f"matrix.init_image[{i}]", value) for i, value in enumerate(matrix.get("init_image", []))]
    named += [(f"include[{i}].init_image", value) for i, entry in enumerate(include) for value in entry.get("init_image", [])]
    for key, value in named:
        if value is not None:
            try:
                check_init_image_file(value)
            except BenchError as error:
                raise SuiteError(f"{path}: {key}: {error}") from None


def _reject_unknown(path: Path, prefix: str, table: dict[str, Any], allowed: Iterable[str]) -> None:
    allowed = list(allowed)
    for key in table:
        if key not in allowed:
            raise SuiteError(f"{path}: unknown key {prefix}{key!s}; allowed: {', '.join(allowed)}")


def _table(path: Path, key: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SuiteError(f"{path}: {key} must be a table ([{key}]), got {type(value).__name__}")
    return value


def _tables(path: Path, key: str, data: dict[str, Any]) -> list[dict[str, Any]]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise SuiteError(f"{path}: {key} must be an array of tables ([[{key}]])")
    return value


def _check(path: Path, key: str, spec: Field, value: Any) -> Any:
    try:
        return spec.check(value)
    except ValueError:
        raise SuiteError(f"{path}: {key} must be {spec.allowed}, got {value!r}") from None


def _selector(path: Path, where: str, table: dict[str, Any]) -> dict[str, list[Any]]:
    """An include/exclude table: field -> allowed values (a scalar is a one-value list)."""
    _reject_unknown(path, f"{where}.", table, FIELDS)
    if not table:
        raise SuiteError(f"{path}: {where} is empty; name at least one field")
    selector: dict[str, list[Any]] = {}
    for key, value in table.items():
        values = value if isinstance(value, list) else [value]
        if not values:
            raise SuiteError(f"{path}: {where}.{key} is empty; list at least one value ({FIELDS[key].allowed})")
        selector[key] = [_check(path, f"{where}.{key}", FIELDS[key], v) for v in values]
    return selector


# --------------------------------------------------------------------------- expansion


def case_bound(suite: Suite) -> int:
    """Cases the suite expands to before excludes and deduplication (computed, not expanded)."""
    matrix = math.prod(len(values) for values in suite.matrix.values()) if suite.matrix else 0
    return matrix + sum(math.prod(len(values) for values in entry.values()) for entry in suite.include)


def expand(suite: Suite) -> list[Case]:
    """Matrix product (in file order) minus `[[exclude]]`, then `[[include]]`; duplicates dropped."""
    combos: list[dict[str, Any]] = []
    if suite.matrix:
        axes = list(suite.matrix)
        for values in itertools.product(*(suite.matrix[a] for a in axes)):
            combo = {**suite.defaults, **dict(zip(axes, values))}
            if not any(_matches(combo, rule) for rule in suite.exclude):
                combos.append(combo)
    for entry in suite.include:
        keys = list(entry)
        for values in itertools.product(*(entry[k] for k in keys)):
            combos.append({**suite.defaults, **dict(zip(keys, values))})

    cases: dict[str, Case] = {}
    for combo in combos:
        case = _make_case(suite, combo)
        cases.setdefault(case.case_id, case)
    result = list(cases.values())
    return with_label_extras(result)


def with_label_extras(cases: list[Case]) -> list[Case]:
    """Put fields that vary between `cases` (besides the fixed label parts) into their labels."""
    shown = ("guidance", "seed", "resolution", "high_noise_frac", "prompt", "negative_prompt", "init_image")
    varying = tuple(name for name in shown if len({getattr(c, name) for c in cases}) > 1)
    return [c.with_(label_extras=varying) for c in cases]


def _matches(combo: dict[str, Any], rule: dict[str, list[Any]]) -> bool:
    return all(combo.get(key, FIELDS[key].default) in values for key, values in rule.items())


def _make_case(suite: Suite, combo: dict[str, Any]) -> Case:
    if "model" not in combo:
        raise SuiteError(f"{suite.path}: no model for a case; set defaults.model or matrix.model")
    values = {name: combo.get(name, spec.default) for name, spec in FIELDS.items()}
    values["model"] = _fill_model(suite.path, values["model"], values)
    return Case(suite=suite.name, **values)


def _fill_model(path: Path, model: str, values: dict[str, Any]) -> str:
    """Expand `{attention}` / `{quantization}` in a model id from the case's axes."""
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(model) if name is not None]
    except ValueError as error:  # a lone '{' or '}'
        raise SuiteError(f"{path}: model {model!r} is not a valid template ({error}); write {{{{ and }}}} for braces") from None
    if not names:
        return model
    for name in names:
        if name not in MODEL_PLACEHOLDERS:
            raise SuiteError(
                f"{path}: model {model!r} has unknown placeholder {{{name}}}; allowed: "
                + ", ".join("{" + p + "}" for p in MODEL_PLACEHOLDERS)
            )
        if values.get(name) is None:
            raise SuiteError(f"{path}: model {model!r} needs a value for {name} (set it in [defaults] or [matrix])")
    fill = {
        "attention": (values.get("attention") or "").lower().replace("_", "-"),
        "quantization": values.get("quantization") or "",
    }
    return model.format(**fill)
