"""benchmarks/gpu_check.py off a GPU (CI never runs the check itself): its arguments parse, and without a CUDA device
it stops at once with one clear line instead of failing deep inside vLLM or the trainer. Guards against the check
breaking on import or argument handling, which nothing else here would notice before someone spends GPU time."""

import os
import subprocess
import sys
from pathlib import Path

from benchmarks.gpu_check import NO_GPU, parse_args

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}   # no device, even on a GPU machine
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=120)


def test_arguments_parse_with_the_documented_defaults():
    args = parse_args(["--random-init", "llama-0.5b"])
    assert (args.timeout, args.peak_tflops, args.parts) == (480, 989.0, ["generation", "dpo", "rehearsal"])


def test_without_a_gpu_it_stops_at_once_with_one_line():
    proc = run("--random-init", "llama-0.5b", "--timeout", "60")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == NO_GPU
    assert NO_GPU == ("gpu_check: no CUDA device visible (torch.cuda.is_available() is False); "
                      "run it on a GPU node")


def test_a_model_that_is_not_a_checkpoint_folder_is_named(tmp_path):
    proc = run("--model", str(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (f"gpu_check.py: error: --model {tmp_path}: not a checkpoint "
                                                    f"folder (no config.json)")
