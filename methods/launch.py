"""Start a training entry point with one process per device the job has (contract: every training rule).

    python -m methods.launch [--accelerate-config config/accelerate/fsdp.yaml] [--cpu-processes N] \
        -- methods.train --method dpo ...

Processes: one per GPU visible to the job (CUDA_VISIBLE_DEVICES, else torch.cuda.device_count()); with no GPU,
`--cpu-processes` (the study config's `launch.cpu_processes`). One process runs the entry point right here (no
launcher, no process group). Several GPU processes are started by `accelerate launch --config_file <config>` when
the study names an accelerate config (config/accelerate/: DDP, FSDP), else by torchrun (DDP). CPU processes always
start by torchrun (DDP over gloo): FSDP needs GPUs, so the accelerate config is a GPU setting and is not used on
CPU. Either way each rank sees RANK, LOCAL_RANK and WORLD_SIZE; methods/common.device_plan derives gradient
accumulation from WORLD_SIZE so the effective batch size stays what the config says.
"""

from __future__ import annotations

import argparse
import os
import runpy
import sys
from pathlib import Path

from pipeline.cli import entry_point
from pipeline.io import InputError
from pipeline.logs import get_logger

log = get_logger("methods.launch")


def visible_gpus() -> int:
    """GPUs this job may use (torch counts CUDA_VISIBLE_DEVICES, which Slurm sets); 0 without an NVIDIA driver,
    checked first so that a CPU job does not pay torch's import here."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    hidden = visible is not None and not [v for v in visible.split(",") if v.strip() not in ("", "-1")]
    if hidden or not Path("/dev/nvidiactl").exists():
        return 0
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def command(module: str, args: list[str], *, processes: int, gpus: int, accelerate_config: Path | None) -> list[str]:
    """The command line that starts `python -m module args` in `processes` processes."""
    python = sys.executable
    if processes == 1:
        return [python, "-m", module, *args]
    if accelerate_config is not None and gpus:
        return [python, "-m", "accelerate.commands.launch", "--config_file", str(accelerate_config),
                "--num_processes", str(processes), "--num_machines", "1", "--main_process_port", "0",
                "-m", module, *args]
    return [python, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1", "--nproc_per_node",
            str(processes), "-m", module, *args]


def plan_processes(cpu_processes: int, accelerate_config: Path | None) -> tuple[int, int]:
    if cpu_processes < 1:
        raise InputError(f"config key launch.cpu_processes: expected an integer >= 1, got {cpu_processes}")
    if accelerate_config is not None and not accelerate_config.is_file():
        raise InputError(f"config key launch.accelerate_config: {accelerate_config} is not a file")
    gpus = visible_gpus()
    return (gpus or cpu_processes), gpus


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv:
        raise InputError("usage: python -m methods.launch [options] -- <module> <args...> (no `--` given)")
    split = argv.index("--")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accelerate-config", type=Path, help="accelerate config file (config/accelerate/)")
    parser.add_argument("--cpu-processes", type=int, default=1, help="processes when the job has no GPU")
    options = parser.parse_args(argv[:split])
    target = argv[split + 1:]
    if not target:
        raise InputError("methods.launch: no module after `--`")
    processes, gpus = plan_processes(options.cpu_processes, options.accelerate_config)
    cmd = command(target[0], target[1:], processes=processes, gpus=gpus,
                  accelerate_config=options.accelerate_config)
    log.info("%d process(es) (%d GPU(s) visible): %s", processes, gpus, " ".join(cmd[:12]))
    if processes == 1:   # in this process: a job forked from the warm server (pipeline/warm.py) keeps its imports
        sys.argv = cmd[2:]
        runpy.run_module(target[0], run_name="__main__", alter_sys=True)
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(cmd[0], cmd)   # the launcher replaces this process: signals and exit codes pass


if __name__ == "__main__":
    entry_point(main)
