"""Wall time of the default and smoke DAGs on this machine, end to end through Snakemake, plus per-rule times
from Snakemake's own benchmark files. A measurement, not a test: targets are <= 10 min (default) and <= 4 min
(smoke) on 2 CPU cores.

    python benchmarks/dag_walltime.py [--configs config/smoke.yaml config/config.yaml] [--keep]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = {"config/config.yaml": 600, "config/smoke.yaml": 240}


def run_study(config: str, keep: bool) -> tuple[float, pd.DataFrame]:
    study = yaml.safe_load((ROOT / config).read_text())["study"] + "_benchmark"
    results = ROOT / "results" / study
    shutil.rmtree(results, ignore_errors=True)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "snakemake", "--cores", "all", "--configfile", config,
                    "--config", f"study={study}", "--quiet", "rules"], cwd=ROOT, check=True)
    wall = time.perf_counter() - started
    rows = []
    for tsv in sorted((results / "benchmarks").rglob("*.tsv")):
        job = tsv.relative_to(results / "benchmarks").with_suffix("").as_posix()
        rows.append({"job": job, "s": float(pd.read_csv(tsv, sep="\t")["s"].iloc[0])})
    if not keep:
        shutil.rmtree(results, ignore_errors=True)
    return wall, pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=["config/smoke.yaml", "config/config.yaml"])
    parser.add_argument("--keep", action="store_true", help="keep results/<study>_benchmark/")
    args = parser.parse_args()
    for config in args.configs:
        wall, jobs = run_study(config, args.keep)
        target = TARGET_S.get(config)
        verdict = f" (target {target} s: {'within' if wall <= target else 'OVER'})" if target else ""
        print(f"\n{config}: whole DAG {wall:.0f} s{verdict}")
        print(jobs.sort_values("s", ascending=False).to_string(index=False, float_format="%.1f"))
        print(f"sum of job times {jobs['s'].sum():.0f} s over {len(jobs)} jobs")


if __name__ == "__main__":
    main()
