"""Proof that the GPU stack installs, without a GPU: pip's own resolver on the training environment
(`pip install -e ".[gpu]"`, pyproject.toml) and on the serving environment (`pip install -r envs/serve.txt`, vLLM),
and that the two cannot be one environment (vllm 0.32.0 needs transformers < 5.20, training pins 5.23.0).

    python benchmarks/resolve_gpu_stack.py [--torch-wheel PATH]

Runs `pip install --dry-run --ignore-installed --report` (nothing is installed; pip reads package metadata from the
index, no wheel is downloaded where the index serves metadata files). torch==2.13.0 is given as the local wheel
(found in PIP_FIND_LINKS, or --torch-wheel) so that no CUDA torch is fetched here: every other pin must accept it.
Prints each environment's resolved versions of the packages that matter and the count of the rest; exits 1 if an
environment does not resolve or resolves to other versions than its exact pins. Needs the package index (about
30 s per environment).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TORCH = "2.13.0"
KEY_PACKAGES = ("torch", "transformers", "trl", "accelerate", "datasets", "lm-eval", "snakemake", "vllm",
                "torchvision", "torchaudio", "flashinfer-python", "tokenizers", "huggingface-hub", "deepspeed",
                "flash-attn")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def local_torch_wheel() -> str | None:
    for folder in os.environ.get("PIP_FIND_LINKS", "").split():
        for wheel in sorted(Path(folder).glob(f"torch-{TORCH}*.whl")):
            return str(wheel)
    return None


def resolve(requirements: list[str]) -> tuple[bool, dict[str, dict], str, float]:
    """{name: {version, url}} of what pip would install for `requirements`, or the resolver's error."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                               "--report", str(report), *requirements], cwd=ROOT, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if proc.returncode != 0:
            errors = [line for line in proc.stderr.splitlines() if "ignored: it is neither" not in line]
            return False, {}, "\n".join(errors[-12:]), seconds
        installs = json.loads(report.read_text())["install"]
    return True, {canonical(i["metadata"]["name"]): {"version": i["metadata"]["version"],
                                                     "url": i.get("download_info", {}).get("url", "")}
                  for i in installs}, "", seconds


def exact_pins(lines: list[str]) -> dict[str, str]:
    pins = {}
    for line in lines:
        m = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^\s;#]+).*", line)
        if m:
            pins[canonical(m.group(1))] = m.group(2)
    return pins


def project_pins() -> dict[str, str]:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return exact_pins(project["dependencies"] + project["optional-dependencies"]["gpu"])


def report(name: str, ok: bool, resolved: dict, error: str, seconds: float, pins: dict[str, str]) -> bool:
    print(f"\n== {name}: {'resolves' if ok else 'DOES NOT RESOLVE'} ({seconds:.0f} s, {len(resolved)} packages)")
    if not ok:
        print(error)
        return False
    for package in KEY_PACKAGES:
        if package in resolved:
            origin = "local file" if resolved[package]["url"].startswith("file:") else "index"
            print(f"   {package}=={resolved[package]['version']}  ({origin})")
    wrong = {p: (v, resolved.get(p, {}).get("version")) for p, v in pins.items()
             if resolved.get(p, {}).get("version", "").split("+")[0] != v}
    for package, (pinned, got) in wrong.items():
        print(f"   PIN NOT HONOURED: {package}=={pinned} resolved to {got}")
    return not wrong


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--torch-wheel", default=local_torch_wheel(),
                        help=f"a local torch-{TORCH} wheel (default: the one in PIP_FIND_LINKS)")
    args = parser.parse_args()
    torch = [args.torch_wheel] if args.torch_wheel else []
    print(f"python {sys.version.split()[0]}, pip {subprocess.run([sys.executable, '-m', 'pip', '--version'], capture_output=True, text=True).stdout.split()[1]}, "
          f"torch from {args.torch_wheel or 'the index (metadata only: --dry-run downloads no wheel it has metadata for)'}")
    serve = (ROOT / "envs" / "serve.txt").read_text().splitlines()
    ok = report("training env: pip install -e .[gpu]", *resolve(["-e", ".[gpu]", *torch]), project_pins())
    ok &= report("serving env: pip install -r envs/serve.txt", *resolve(["-r", "envs/serve.txt", *torch]),
                 exact_pins(serve))
    vllm = next(line for line in serve if line.startswith("vllm=="))
    joint_ok, _, error, seconds = resolve(["-e", ".[gpu]", vllm, *torch])
    print(f"\n== {vllm} in the training env: {'resolves (the split is no longer needed)' if joint_ok else 'conflict, as expected'} "
          f"({seconds:.0f} s)")
    if not joint_ok:
        print("\n".join(line for line in error.splitlines() if "Cannot install" in line))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
