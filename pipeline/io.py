"""Files between rules: atomic writes, and reads that fail with the file, the row and what was expected."""

from __future__ import annotations

import json
import math
import os
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import yaml

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "workflow" / "schemas"


class InputError(ValueError):
    """Bad input: the message names the file (and row or key) and what was expected."""


class StageError(RuntimeError):
    """A stage that cannot finish for a reason outside its input (e.g. a judge endpoint that keeps failing): the
    message says what failed and what to do, in one line."""


def file_mode() -> int:
    """The mode ``open()`` gives a new file: 0666 minus the process umask."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def write_text(path: Path, text: str) -> None:
    """Write through a hidden temporary file and rename it into place, with the mode an ``open()`` would give
    (0666 minus the umask; mkstemp alone gives 0600, unreadable to the group on a shared cluster)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, file_mode())
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _dumps(obj: Any, where: str, **kwargs) -> str:
    """json.dumps that refuses NaN and Infinity (bare ``NaN`` is not JSON), naming the file and the field."""
    try:
        return json.dumps(obj, allow_nan=False, **kwargs)
    except ValueError:
        raise InputError(f"{where}: field {_non_finite(obj) or '?'!r}: NaN or Infinity cannot be written as JSON "
                         f"(expected a finite number or null)") from None


def _non_finite(obj: Any, path: str = "") -> str | None:
    if isinstance(obj, float) and not math.isfinite(obj):
        return path or "(top level)"
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, (list, tuple)) else ()
    for key, value in items:
        found = _non_finite(value, f"{path}/{key}" if path else str(key))
        if found:
            return found
    return None


def write_json(path: str | Path, obj: Any, schema: str | None = None) -> None:
    if schema:
        validate(obj, schema, f"{path}")
    write_text(Path(path), _dumps(obj, str(path), indent=2, sort_keys=False) + "\n")


def write_jsonl(path: str | Path, rows: Iterable[dict], schema: str | None = None) -> None:
    rows = list(rows)
    if schema:
        for i, row in enumerate(rows, start=1):
            validate(row, schema, f"{path}, row {i}")
    write_text(Path(path), "".join(_dumps(r, f"{path}, row {i}", ensure_ascii=False) + "\n"
                                   for i, r in enumerate(rows, start=1)))


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON (expected a finite number or null)")


def _loads(text: str, where: str) -> Any:
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as err:
        raise InputError(f"{where}: not valid JSON ({err.msg}, line {err.lineno} column {err.colno})") from None
    except ValueError as err:
        raise InputError(f"{where}: {err}") from None


def _decode(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputError(f"{where}: not UTF-8 (byte {data[err.start]:#04x} at offset {err.start}); expected UTF-8 "
                         f"text") from None


def read_json(path: str | Path, schema: str | None = None) -> Any:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    obj = _loads(_decode(path.read_bytes(), str(path)), str(path))
    if schema:
        validate(obj, schema, str(path))
    return obj


def read_jsonl(path: str | Path, schema: str | None = None) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    rows = []
    with path.open("rb") as handle:
        for i, raw in enumerate(handle, start=1):
            line = _decode(raw, f"{path}, row {i}")
            if not line.strip():
                continue
            row = _loads(line, f"{path}, row {i}")
            if schema:
                validate(row, schema, f"{path}, row {i}")
            rows.append(row)
    return rows


@lru_cache(maxsize=None)
def load_schema(name: str) -> dict:
    path = SCHEMA_DIR / f"{name}.schema.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"no schema {name!r} at {path}")
    return yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))   # libyaml: 6x faster


@lru_cache(maxsize=None)
def _schema_registry():
    """Every schema by file name (schemas refer to each other that way, e.g. ``$ref: message.schema.yaml``),
    parsed once per process."""
    from referencing import Registry, Resource

    return Registry().with_resources(
        (path.name, Resource.from_contents(load_schema(path.name.removesuffix(".schema.yaml"))))
        for path in SCHEMA_DIR.glob("*.schema.yaml"))


@lru_cache(maxsize=None)
def _validator(schema: str):
    import jsonschema

    # JSON has no NaN/Infinity: a schema's `number` is a finite one (Python's json would let float('nan') through).
    checker = jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
        "number", lambda _, value: jsonschema.Draft202012Validator.TYPE_CHECKER.is_type(value, "number")
        and not (isinstance(value, float) and not math.isfinite(value)))
    validator_class = jsonschema.validators.extend(jsonschema.Draft202012Validator, type_checker=checker)
    return validator_class(load_schema(schema), registry=_schema_registry())


def validate(obj: Any, schema: str, where: str) -> None:
    """Validate against ``workflow/schemas/<schema>.schema.yaml``, then the checks a JSON schema cannot express
    (``CHECKS``); raise InputError naming ``where`` and the field."""
    validator = _validator(schema)
    error = next(iter(sorted(validator.iter_errors(obj), key=lambda e: list(e.path))), None)
    if error is not None:
        field = "/".join(map(str, error.path)) or "(top level)"
        raise InputError(f"{where}: field {field!r}: {error.message} (schema {schema})")
    problem = CHECKS[schema](obj) if schema in CHECKS else None
    if problem is not None:
        field, message = problem
        raise InputError(f"{where}: field {field!r}: {message} (schema {schema})")


def _check_preference_row(row: dict) -> tuple[str, str] | None:
    """A pair teaches nothing when both answers are the same, or when the prompt or the preferred answer is empty (an
    empty rejected answer is a legitimate bad answer)."""
    if row["chosen"] == row["rejected"]:
        return "rejected", "equal to 'chosen'; expected two different answers"
    for field in ("prompt", "chosen"):
        for i, message in enumerate(row[field]):
            if not message["content"].strip():
                return f"{field}/{i}/content", "empty; expected text"
    return None


def _check_unique_instructions(rows: list) -> tuple[str, str] | None:
    """One output per instruction: a second one would silently replace the first where outputs are matched up."""
    seen: dict[str, int] = {}
    for i, row in enumerate(rows):
        if row["instruction"] in seen:
            return (f"{i}/instruction", f"{row['instruction'][:60]!r} repeats item {seen[row['instruction']]}; "
                                        f"expected each instruction once")
        seen[row["instruction"]] = i
    return None


CHECKS = {"preference_row": _check_preference_row, "alpaca_eval_outputs": _check_unique_instructions}
