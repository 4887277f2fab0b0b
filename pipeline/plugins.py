"""Name -> plug-in lookup shared by the method and suite registries: a plug-in module registers itself on import;
an unknown name fails with a "did you mean" and the list of registered names."""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from typing import Any


def import_all(package: str) -> None:
    """Import every module of a package, so that each registers what it defines."""
    for info in pkgutil.iter_modules(importlib.import_module(package).__path__):
        importlib.import_module(f"{package}.{info.name}")


def lookup(registry: dict[str, Any], package: str, name: str, kind: str) -> Any:
    """``registry[name]``, importing ``<package>.<name>`` first when it is not registered yet."""
    if name not in registry:
        try:
            importlib.import_module(f"{package}.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"{package}.{name}":
                raise
    if name not in registry:
        import_all(package)
        close = difflib.get_close_matches(name, registry, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise KeyError(f"unknown {kind} {name!r}{hint}; registered {kind}s: {sorted(registry)}")
    return registry[name]
