"""A new method or suite is one new module plus config blocks: no shared file changes (README "Add a method",
"Add a suite"). In a copy of the working tree this test adds only methods/throwaway.py, evals/suites/throwaway.py and
a block for each in config/config.yaml and config/smoke.yaml; then the tests that walk the registries and a dry run
of the DAG must pass there and pick both up. It guards against any hand-kept list of methods or suites (a test table,
the config schema, a rule) that a new plug-in would have to edit."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

METHOD_MODULE = '''"""A throwaway method: DPO's trainer under another name (never trained here)."""
from methods.registry import TrainContext, TrainResult, register_method


@register_method("throwaway", family="paired", data=("prefs",), needs_reference_model=True,
                 config_class="trl:DPOConfig")
def train(ctx: TrainContext) -> TrainResult:
    raise NotImplementedError
'''

SUITE_MODULE = '''"""A throwaway judged suite in Arena-Hard's file formats (never run here)."""
from evals.registry import ChatSuite, Column, register_suite


@register_suite
class Throwaway(ChatSuite):
    name = "throwaway"
    version = "1"
    generation_file = "throwaway.jsonl"
    generation_schema = "arena_hard_answer"
    judgment_schema = "arena_hard_judgment"
    generation_data = ("arena_hard_questions",)
    judge_data = ("arena_hard_questions", "arena_hard_baseline")
    judge_format = "pairwise_arena_hard"

    def columns(self, settings):
        return [Column("score", "Throwaway")]
'''

METHOD_BLOCK = """  throwaway:
    module: throwaway
    effective_batch_size: 8
    per_device_train_batch_size: 8
    trainer: {learning_rate: 1.0e-4, beta: 0.1, max_steps: 2}
"""

SUITE_BLOCK = """  throwaway:
    judge: oracle
"""

# The tests that walk the method and suite registries.
REGISTRY_TESTS = ["tests/methods/test_train.py", "tests/evals/test_suites.py::test_every_suite_is_registered_with_its_declarations",
                  "tests/evals/test_suites.py::test_suite_blocks_name_registered_suites_and_their_judge",
                  "tests/evals/test_suites.py::test_unknown_suite_names_the_registered_ones",
                  "tests/pipeline/test_io_and_config.py::test_every_shipped_config_validates"]


def copy_working_tree(dest: Path) -> None:
    """The files git sees (tracked, and untracked but not ignored) as they are on disk."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


def add_block(config: Path, section: str, block: str) -> None:
    """Insert a block as the first entry of a top-level section (``methods:`` or ``evals:``) of a YAML file."""
    lines = config.read_text().splitlines(keepends=True)
    at = lines.index(next(line for line in lines if line.startswith(f"{section}:"))) + 1
    config.write_text("".join(lines[:at] + [block] + lines[at:]))


def test_a_new_method_and_suite_need_no_edit_to_any_shared_file(tmp_path):
    repo = tmp_path / "repo"
    copy_working_tree(repo)
    (repo / "methods" / "throwaway.py").write_text(METHOD_MODULE)
    (repo / "evals" / "suites" / "throwaway.py").write_text(SUITE_MODULE)
    for config in ("config/config.yaml", "config/smoke.yaml"):
        add_block(repo / config, "methods", METHOD_BLOCK)
        add_block(repo / config, "evals", SUITE_BLOCK)
    env = {**os.environ, "PYTHONPATH": str(repo), "OMP_NUM_THREADS": "1", "TRL_EXPERIMENTAL_SILENCE": "1"}

    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *REGISTRY_TESTS],
                           cwd=repo, env=env, capture_output=True, text=True)
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-2000:]

    snakemake = Path(sys.executable).with_name("snakemake")
    dry = subprocess.run([str(snakemake), "-n", "--configfile", "config/smoke.yaml"], cwd=repo, env=env,
                         capture_output=True, text=True)
    assert dry.returncode == 0, dry.stdout[-3000:] + dry.stderr[-2000:]
    jobs = dry.stdout + dry.stderr
    assert "method=throwaway" in jobs                       # rule train, for the new method
    assert "/judgments/throwaway-s0/throwaway.jsonl" in jobs   # rule evaluate judges and scores the new model
    assert "/scores/throwaway-s0/throwaway.json" in jobs       # (seed 0) on the new suite ...
    assert "/scores/dpo-s0/throwaway.json" in jobs             # ... and the other models on it
