"""Config validation before any job runs: the JSON schema (workflow/schemas/config.schema.yaml), then the
cross-references a schema cannot see. Every error names the config key and what was expected."""

from __future__ import annotations

import ipaddress
from typing import Any, Callable, Iterable
from urllib.parse import urlparse

from pipeline.io import InputError, _validator


class ConfigError(InputError):
    pass


def _key(path) -> str:
    return ".".join(map(str, path)) or "(top level)"


def check_config(config: dict[str, Any], source: str = "config",
                 plugin_checks: Iterable[Callable[[dict, str], None]] = ()) -> None:
    """The schema, then cross-references, then ``plugin_checks(config, source)`` of the layers above (the method
    registry's block checks): pipeline/ is the ground floor and imports neither methods/ nor evals/."""
    errors = sorted(_validator("config").iter_errors(config), key=lambda e: list(e.path))
    if errors:
        # oneOf/if-then errors carry the precise sub-error in .context; report the deepest one.
        error = errors[0]
        while error.context:
            error = sorted(error.context, key=lambda e: -len(e.path))[0]
        raise ConfigError(f"{source}: key {_key(error.absolute_path)}: {error.message}")
    _check_references(config, source)
    for check in plugin_checks:
        check(config, source)


def _check_references(config: dict, source: str) -> None:
    if "hub_id" not in config["base"] and "world" not in config:
        raise ConfigError(f"{source}: key world: required when base has no hub_id (the micro world builds the data)")
    if ("world" in config) == ("data" in config):
        raise ConfigError(f"{source}: key data: give exactly one of `world` (the micro world) and `data` (hub "
                          f"datasets)")
    if "world" not in config:
        from pipeline.hub_data import OUTPUTS as HUB_OUTPUTS

        for name, block in config["judges"].items():
            if block["kind"] == "oracle":
                raise ConfigError(f"{source}: key judges.{name}: the oracle judge needs the micro world (key world)")
        for i, task in enumerate(config["evals"].get("academic", {}).get("tasks", [])):
            if "data" in task and task["data"] not in HUB_OUTPUTS:
                raise ConfigError(f"{source}: key evals.academic.tasks.{i}.data: {task['data']!r} is a micro-world "
                                  f"file; real studies run lm-eval's own tasks (no `data`)")
    for suite, block in config["evals"].items():
        if "judge" in block and block["judge"] not in config["judges"]:  # harness suites (academic) have no judge
            raise ConfigError(f"{source}: key evals.{suite}.judge: {block['judge']!r} is not a key of judges "
                              f"({sorted(config['judges'])})")


def models(config: dict) -> list[str]:
    """Every model that lands in the tables: the SFT checkpoint, then each configured method."""
    return ["sft", *config["methods"]]


def api_key_variables(config: dict) -> list[str]:
    """Environment variables the HTTP judges read their keys from (loopback endpoints need none): Snakemake's
    ``envvars:`` checks them before any job runs and passes them to cluster jobs."""
    return sorted({judge.get("api_key_env", "OPENAI_API_KEY") for judge in config["judges"].values()
                   if judge["kind"] == "http" and not is_loopback_url(judge["base_url"])})


def is_loopback_url(url: str) -> bool:
    """True for ``localhost`` or a loopback IP literal (127.0.0.0/8, ::1)."""
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
