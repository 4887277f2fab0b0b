"""`snakemake --lint` is clean apart from advice each rule (or rules file) keeps on purpose and names in a
"lint advice kept: ..." comment, explained in workflow/rules/common.smk; every rule declares a conda environment
(workflow/envs/) whose pins are pyproject.toml's. Guards against new lint advice slipping in unexplained, and
against the conda environments drifting from the pinned stack."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# Lint titles (snakemake 9.27) -> the code a "lint advice kept" comment names.
KEPT = {r"Shell command directly uses variable PYTHON ": "PYTHON",
        r"Shell command directly uses variable config ": "seed",
        r"Shell command directly uses variable R ": "R",
        r"Param \w+ is a prefix of input or output file but hardcoded": "prefix",
        r"Mixed rules and functions in same snakefile": "functions"}


def kept_codes(text: str) -> set[str]:
    match = re.search(r"# lint advice kept: ([\w, ]+)", text)
    return {c.strip() for c in match.group(1).split(",")} if match else set()


def rule_sources() -> dict[str, str]:
    """Each rule's text (from `rule NAME:` to the next rule) and each rules file's header, by lint item name."""
    sources = {}
    for path in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        text = path.read_text()
        parts = re.split(r"^rule (\w+):$", text, flags=re.M)
        sources[f"snakefile {path}"] = parts[0]
        sources.update({f"rule {name}": body for name, body in zip(parts[1::2], parts[2::2])})
    return sources


def test_lint_advice_is_fixed_or_explained_where_it_applies():
    snakemake = Path(sys.executable).with_name("snakemake")
    out = subprocess.run([str(snakemake), "--lint", "--configfile", "config/smoke.yaml"], cwd=ROOT,
                         capture_output=True, text=True)
    sources = rule_sources()
    unexplained, item = [], None
    for line in (out.stdout + out.stderr).splitlines():
        header = re.match(r"Lints for (rule \w+|snakefile \S+?)(?: \(line.*\))?:$", line)
        if header:
            item = header.group(1)
            continue
        advice = re.match(r"    \* (.+?):?$", line)
        if advice and item:
            code = next((c for pattern, c in KEPT.items() if re.match(pattern, advice.group(1))), None)
            if code is None or code not in kept_codes(sources.get(item, "")):
                unexplained.append(f"{item}: {advice.group(1)}")
    assert not unexplained, "\n".join(unexplained)
    assert out.returncode == 0 or "Lints for" in out.stdout + out.stderr, out.stderr[-2000:]


def test_conda_environments_pin_what_pyproject_pins():
    import tomllib

    pins = dict(dep.split("==") for dep in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])
    envs = sorted((ROOT / "workflow" / "envs").glob("*.yaml"))
    assert envs
    for env in envs:
        spec = yaml.safe_load(env.read_text())
        pip = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict))
        for dep in pip:
            name, version = dep.split("==")
            assert pins.get(name) == version, f"{env.name}: {dep} but pyproject.toml pins {name}=={pins.get(name)}"
    used = set(re.findall(r'"\.\./envs/(\w+\.yaml)"', "".join(p.read_text() for p in (ROOT / "workflow" / "rules").glob("*.smk"))))
    assert used == {env.name for env in envs}
