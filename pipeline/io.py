"""Files between rules: atomic writes, and reads that fail with the file, the row and what was expected."""

from __future__ import annotations

import json
import os
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import yaml

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "workflow" / "schemas"


class InputError(ValueError):
    """Bad input: the message names the file (and row or key) and what was expected."""


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | Path, obj: Any, schema: str | None = None) -> None:
    if schema:
        validate(obj, schema, f"{path}")
    write_text(Path(path), json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_jsonl(path: str | Path, rows: Iterable[dict], schema: str | None = None) -> None:
    rows = list(rows)
    if schema:
        for i, row in enumerate(rows, start=1):
            validate(row, schema, f"{path}, row {i}")
    write_text(Path(path), "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def read_json(path: str | Path, schema: str | None = None) -> Any:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: not valid JSON ({err})") from None
    if schema:
        validate(obj, schema, str(path))
    return obj


def read_jsonl(path: str | Path, schema: str | None = None) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    rows = []
    with path.open(encoding="utf-8") as handle:
        for i, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise InputError(f"{path}, row {i}: not valid JSON ({err.msg}, column {err.colno})") from None
            if schema:
                validate(row, schema, f"{path}, row {i}")
            rows.append(row)
    return rows


@lru_cache(maxsize=None)
def load_schema(name: str) -> dict:
    path = SCHEMA_DIR / f"{name}.schema.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"no schema {name!r} at {path}")
    return yaml.safe_load(path.read_text())


@lru_cache(maxsize=None)
def _validator(schema: str):
    import jsonschema
    from referencing import Registry, Resource

    # Schemas refer to each other by file name (e.g. ``$ref: message.schema.yaml``).
    registry = Registry().with_resources(
        (path.name, Resource.from_contents(yaml.safe_load(path.read_text()))) for path in SCHEMA_DIR.glob("*.yaml")
    )
    return jsonschema.Draft202012Validator(load_schema(schema), registry=registry)


def validate(obj: Any, schema: str, where: str) -> None:
    """Validate against ``workflow/schemas/<schema>.schema.yaml``; raise InputError naming ``where`` and the field."""
    validator = _validator(schema)
    error = next(iter(sorted(validator.iter_errors(obj), key=lambda e: list(e.path))), None)
    if error is not None:
        field = "/".join(map(str, error.path)) or "(top level)"
        raise InputError(f"{where}: field {field!r}: {error.message} (schema {schema})")
