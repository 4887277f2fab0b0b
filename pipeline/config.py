"""Config validation before any job runs: the JSON schema (workflow/schemas/config.schema.yaml), then the
cross-references a schema cannot see. Every error names the config key and what was expected."""

from __future__ import annotations

import ipaddress
import math
import os
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import urlparse

import yaml

from pipeline.io import InputError, _decode, _validator

OPENAI_HOST = "api.openai.com"
DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"


class ConfigError(InputError):
    pass


def _key(path) -> str:
    return ".".join(map(str, path)) or "(top level)"


def check_config(config: dict[str, Any], source: str = "config",
                 plugin_checks: Iterable[Callable[[dict, str], None]] = ()) -> None:
    """The schema, then cross-references, then ``plugin_checks(config, source)`` of the layers above (the method
    registry's block checks): pipeline/ is the ground floor and imports neither methods/ nor evals/."""
    bad = non_finite_key(config)
    if bad is not None:
        raise ConfigError(f"{source}: key {bad}: NaN or infinity; expected a finite number")
    errors = sorted(_validator("config").iter_errors(config), key=lambda e: list(e.path))
    if errors:
        # oneOf/if-then errors carry the precise sub-error in .context; report the deepest one.
        error = errors[0]
        while error.context:
            error = sorted(error.context, key=lambda e: -len(e.path))[0]
        raise ConfigError(f"{source}: key {_key(error.absolute_path)}: {error.message}")
    _check_references(config, source)
    models(config)  # a swept model's name must not be another block's; seeded names must parse back
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
    for name, block in config["judges"].items():
        if block["kind"] == "http":
            _check_endpoint(name, block, source)
    for suite, block in config["evals"].items():
        if "judge" in block and block["judge"] not in config["judges"]:  # harness suites (academic) have no judge
            raise ConfigError(f"{source}: key evals.{suite}.judge: {block['judge']!r} is not a key of judges "
                              f"({sorted(config['judges'])})")


def _check_endpoint(name: str, block: dict, source: str) -> None:
    """A key is sent only over https (or to loopback), and only the OpenAI endpoint may default to the OpenAI key."""
    url = block["base_url"]
    if urlparse(url).scheme != "https" and not is_loopback_url(url):
        raise ConfigError(f"{source}: key judges.{name}.base_url: {url!r} is plain http and not loopback; expected "
                          f"https (the API key would travel in clear text)")
    if "api_key_env" not in block and urlparse(url).hostname != OPENAI_HOST and not is_loopback_url(url):
        raise ConfigError(f"{source}: key judges.{name}.api_key_env: required for {url!r} (only {OPENAI_HOST} "
                          f"defaults to {DEFAULT_API_KEY_ENV}; name the variable holding this endpoint's key)")


def non_finite_key(obj: Any, path: tuple = ()) -> str | None:
    """The dotted key of the first NaN or infinite number (YAML's ``.nan``/``.inf``), else None."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return _key(path)
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for key, value in items:
        found = non_finite_key(value, (*path, key))
        if found:
            return found
    return None


class _StrictLoader(yaml.SafeLoader):
    """yaml.safe_load refusing a key given twice in one mapping (PyYAML keeps the last one silently)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, yaml.Mark] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise ConfigError(f"{key_node.start_mark.name}: line {key_node.start_mark.line + 1}: key {key!r} "
                              f"given twice in one mapping (first on line {seen[key].line + 1}); expected each key once")
        seen[key] = key_node.start_mark
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_config_file(path: str | Path) -> dict:
    """A config YAML, refusing duplicate keys (one line naming the file, the line and the key)."""
    path = Path(path)
    loader = _StrictLoader(_decode(path.read_bytes(), str(path)))
    loader.name = str(path)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    finally:
        loader.dispose()


def check_api_keys(config: dict, environ: Mapping[str, str] = os.environ) -> None:
    """No API-key variable the HTTP judges read is set but empty (an unset one is reported by Snakemake's
    ``envvars:``, which checks only that it is set)."""
    for name in api_key_variables(config):
        if name in environ and not environ[name].strip():
            raise ConfigError(f"environment variable {name} (judges' api_key_env) is empty; expected the API key")


# Method block keys that may hold a list (a sweep): one model per value, named ``<method>_<prefix><value>``: the
# length-penalty ablation's λ (iterative_dpo_concise_l0.03) and best-of-n's n (best_of_n_4).
SWEEPS = {"length_penalty": "l", "n": ""}


def sweep_name(method: str, key: str, value: float) -> str:
    """The one place a swept model's name is made: ``iterative_dpo_concise`` with ``length_penalty: 0.03`` ->
    ``iterative_dpo_concise_l0.03``."""
    return f"{method}_{SWEEPS[key]}{value:g}"


def expand_sweeps(methods: Mapping[str, dict]) -> dict[str, dict]:
    """The ``methods:`` block with every swept key expanded into one block (and one model) per value, in the
    list's order, each holding its scalar value; blocks without a list stay as they are (so this is idempotent)."""
    out: dict[str, dict] = {}
    for name, block in methods.items():
        swept = [key for key in SWEEPS if isinstance(block.get(key), list)]
        if len(swept) > 1:
            raise ConfigError(f"config key methods.{name}: sweeps over one key at a time, got lists for {swept}")
        variants = {name: block} if not swept else {
            sweep_name(name, swept[0], value): {**block, swept[0]: value} for value in block[swept[0]]}
        for variant, variant_block in variants.items():
            if variant in out or (variant != name and variant in methods):
                raise ConfigError(f"config key methods.{name}.{swept[0] if swept else ''}: model name {variant!r} "
                                  f"is already taken by another method block")
            out[variant] = variant_block
    return out


# The method stage runs once per seed of the config's `seeds:` list; each run is its own model, named
# `<variant>-s<seed>` (dpo-s0, best_of_n_4-s2). `sft` is the one shared checkpoint (the shared stage's `seed:`).
SEEDED = re.compile(r"^(?P<variant>.+)-s(?P<seed>0|[1-9][0-9]*)$")
SHARED_MODEL = "sft"


def seeds_from_command_line(config: dict) -> None:
    """``--config seeds=[0,1]`` arrives as ``["0", "1"]`` (Snakemake parses a --config list with YAML's BaseLoader,
    all strings): digit strings become the integers they spell; anything else is left for the schema to refuse."""
    if isinstance(config.get("seeds"), list):
        config["seeds"] = [int(s) if isinstance(s, str) and s.isdigit() else s for s in config["seeds"]]


def seeded_name(variant: str, seed: int) -> str:
    """The one place a method-stage model's name is made: ``seeded_name("dpo", 1)`` -> ``dpo-s1``."""
    return f"{variant}-s{int(seed)}"


def split_seeded(model: str) -> tuple[str, int | None]:
    """The inverse of ``seeded_name``: ``dpo-s1`` -> ``("dpo", 1)``; the shared SFT model (no seed) -> ``("sft",
    None)``. Any other name is not a model of the tables: an InputError naming it."""
    if model == SHARED_MODEL:
        return model, None
    match = SEEDED.match(model)
    if match is None:
        raise InputError(f"model name {model!r}: expected {SHARED_MODEL!r} or <variant>-s<seed> (e.g. dpo-s0)")
    return match["variant"], int(match["seed"])


def variants(config: dict) -> list[str]:
    """Every method variant of the tables, in config order, sweeps expanded (best_of_n_4, iterative_dpo_concise_l0.03)."""
    return list(expand_sweeps(config["methods"]))


def seeds_of(config: dict) -> list[int]:
    """The method stage's seeds (config key `seeds`), in the config's order."""
    return [int(seed) for seed in config["seeds"]]


def models(config: dict) -> list[str]:
    """Every model that lands in the tables: the shared SFT checkpoint, then each configured method variant (sweeps
    expanded) once per seed of `seeds:`, variant by variant. Refuses seeds given twice or names that do not parse
    back to their (variant, seed) (a ConfigError naming `seeds` or the method block)."""
    seeds = seeds_of(config)
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ConfigError(f"config key seeds: {config['seeds']!r}; expected a list of at least one unique "
                          f"non-negative integer")
    names = ["sft"]
    for variant in variants(config):
        for seed in seeds:
            name = seeded_name(variant, seed)
            if split_seeded(name) != (variant, seed) or name in names:
                raise ConfigError(f"config key methods.{variant} with seeds: model name {name!r} does not name "
                                  f"({variant!r}, seed {seed}) alone")
            names.append(name)
    return names


def api_key_variables(config: dict) -> list[str]:
    """Environment variables the HTTP judges read their keys from (loopback endpoints need none): Snakemake's
    ``envvars:`` checks them before any job runs and passes them to cluster jobs."""
    return sorted({judge.get("api_key_env", DEFAULT_API_KEY_ENV) for judge in config["judges"].values()
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
