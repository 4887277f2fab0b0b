"""pipeline/warm.py: a job forked from the warm server behaves as `python -m <module>` in a fresh interpreter (argv,
working directory, environment, streams, torch threads, exit code, signals), and without a server it runs cold."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.warm import ALLOCATION_ENV, SOCKET_ENV, SWITCH_ENV

ROOT = Path(__file__).resolve().parents[2]
PROBE = '''
import os, sys, time
warm = "torch" in sys.modules                  # imported before this line only in a fork of the warm server
import torch
print("warm", warm, "argv", sys.argv[1:], "cwd", os.getcwd(), "value", os.environ.get("PROBE_VALUE"),
      "threads", torch.get_num_threads(), "sum", float((torch.ones(64, 64) @ torch.ones(64, 64)).sum()))
print("on stderr", file=sys.stderr)
if os.environ.get("PROBE_SLEEP"):
    open("pid", "w").write(str(os.getpid()))
    time.sleep(60)
if os.environ.get("PROBE_RAISE"):
    raise ValueError("probe failed")
sys.exit(int(os.environ.get("PROBE_CODE", "0")))
'''


def client_env(server: Path | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (SOCKET_ENV, SWITCH_ENV, ALLOCATION_ENV, "SLURM_JOB_ID")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    if server is not None:
        env[SOCKET_ENV] = str(server)
    return {**env, **extra}


@pytest.fixture(scope="module")
def server(warm_server):
    return warm_server[0]


@pytest.fixture
def probe_dir(tmp_path):
    (tmp_path / "probe.py").write_text(PROBE)
    return tmp_path


def run_probe(probe_dir, server, **extra):
    return subprocess.run([sys.executable, "-m", "pipeline.warm", "-m", "probe", "one", "two words"], cwd=probe_dir,
                          env=client_env(server, **extra), capture_output=True, text=True, timeout=120)


def test_a_warm_job_is_python_m_in_a_fork_of_the_preloaded_server(server, probe_dir):
    warm = run_probe(probe_dir, server, PROBE_VALUE="x", OMP_NUM_THREADS="1", PROBE_CODE="3")
    cold = run_probe(probe_dir, None, PROBE_VALUE="x", OMP_NUM_THREADS="1", PROBE_CODE="3")
    assert warm.stdout.startswith("warm True ")   # it really ran in the server's fork
    assert cold.stdout.startswith("warm False ")
    assert warm.stdout.replace("warm True", "") == cold.stdout.replace("warm False", "")
    assert f"cwd {probe_dir} " in warm.stdout and "argv ['one', 'two words']" in warm.stdout
    assert "value x threads 1 sum 262144.0" in warm.stdout   # its environment; OMP_NUM_THREADS reaches torch
    assert warm.stderr == cold.stderr == "on stderr\n"
    assert warm.returncode == cold.returncode == 3


def test_a_warm_job_takes_its_thread_count_from_its_own_environment(server, probe_dir):
    assert "threads 2 " in run_probe(probe_dir, server, OMP_NUM_THREADS="2").stdout


def test_an_uncaught_exception_prints_its_traceback_and_exits_1(server, probe_dir):
    result = run_probe(probe_dir, server, PROBE_RAISE="1")
    assert result.returncode == 1
    assert "ValueError: probe failed" in result.stderr and "Traceback" in result.stderr


def test_sigterm_to_the_client_reaches_the_job(server, probe_dir):
    """Snakemake stops a local job by signalling its shell; the forked job, not only the client, must stop."""
    client = subprocess.Popen([sys.executable, "-m", "pipeline.warm", "-m", "probe"], cwd=probe_dir,
                              env=client_env(server, PROBE_SLEEP="1"), stdout=subprocess.PIPE, text=True)
    pid_file = probe_dir / "pid"
    deadline = time.monotonic() + 60
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline, "the job did not start"
        time.sleep(0.2)
    job = int(pid_file.read_text())
    client.send_signal(signal.SIGTERM)
    assert client.wait(timeout=30) == 128 + signal.SIGTERM
    assert "warm True" in client.stdout.read()
    time.sleep(0.5)
    assert not Path(f"/proc/{job}").exists() or "Z" in Path(f"/proc/{job}/stat").read_text().split()[2]


def test_without_a_reachable_server_the_job_runs_cold(probe_dir, tmp_path):
    result = run_probe(probe_dir, tmp_path / "no-such.sock", PROBE_CODE="4")
    assert result.stdout.startswith("warm False ") and result.returncode == 4


def test_alignbench_warm_0_turns_it_off(server, probe_dir):
    result = run_probe(probe_dir, server, **{SWITCH_ENV: "0"})
    assert result.stdout.startswith("warm False ") and result.returncode == 0


def test_a_job_in_another_slurm_allocation_than_the_servers_runs_cold(server, probe_dir):
    """A cluster job (sbatch exports the submitting environment, socket included) must not run outside its own
    allocation in the submit node's server; a job in the server's own allocation (an interactive one) runs warm."""
    elsewhere = run_probe(probe_dir, server, SLURM_JOB_ID="42", **{ALLOCATION_ENV: ""})
    inside = run_probe(probe_dir, server, SLURM_JOB_ID="42", **{ALLOCATION_ENV: "42"})
    assert elsewhere.stdout.startswith("warm False ") and inside.stdout.startswith("warm True ")


def test_a_request_cut_short_is_dropped_and_the_server_goes_on(server, probe_dir):
    """Bug guarded: a client dying while sending its request (here: 10 of the 100 bytes it announced) stopped the
    server with a JSON error, and every later job of the run started cold."""
    import socket

    from pipeline.warm import HEADER

    conn = socket.socket(socket.AF_UNIX)
    conn.connect(str(server))
    socket.send_fds(conn, [HEADER.pack(100)], [0, 1, 2])
    conn.sendall(b'{"argv": [')
    conn.close()
    assert run_probe(probe_dir, server).stdout.startswith("warm True ")
