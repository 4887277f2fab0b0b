"""Warm interpreters: a server imports the heavy libraries once (torch, transformers, TRL, lm-eval, AlpacaEval,
scikit-learn) and every job of a local run forks from it, instead of paying about 6 s of imports.

    python -m pipeline.warm -m <module> [args...]      what every rule runs (workflow/rules/common.smk PYTHON):
                                                       the job in a fork of the server, or `python -m <module>`
    python -m pipeline.warm serve --socket PATH        the server (the Snakefile's onstart starts one per run)

A job runs in the server's fork exactly as `python -m <module> args` would: its own argv, working directory,
environment, stdin/stdout/stderr (passed over the socket), torch threads from OMP_NUM_THREADS, exit code (128 + N
when killed by signal N), and SIGTERM/SIGINT/SIGHUP forwarded to it. Without a reachable server in the job's own
Slurm allocation (cluster jobs, the first seconds of a run, ALIGNBENCH_WARM=0, the server gone) the client becomes
`python -m <module>` itself (exec).
The server holds third-party libraries only: our own modules are imported fresh by each job.
Written by hand: no maintained library forks a preloaded Python interpreter per command.
"""

from __future__ import annotations

import argparse
import atexit
import hashlib
import importlib
import json
import os
import runpy
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

SOCKET_ENV = "ALIGNBENCH_WARM_SOCKET"  # set for local jobs by the run that started the server
ALLOCATION_ENV = "ALIGNBENCH_WARM_ALLOCATION"  # the server's Slurm job ("" outside Slurm): a job never leaves its own
SWITCH_ENV = "ALIGNBENCH_WARM"  # "0": every job starts a fresh interpreter
PRELOAD = (  # what the entry points import that costs seconds; a module that is not installed is skipped
    "torch",
    "transformers",
    "transformers.trainer",
    "transformers.models.llama.modeling_llama",
    "trl.trainer.sft_trainer",
    "trl.trainer.dpo_trainer",
    "trl.trainer.kto_trainer",
    "trl.experimental.cpo",
    "trl.trainer.grpo_trainer",
    "trl.trainer.reward_trainer",
    "trl.experimental.orpo",
    "datasets",
    "lm_eval.evaluator",
    "lm_eval.models.huggingface",
    "lm_eval.tasks",
    "alpaca_eval.completion_parsers",
    "alpaca_eval.metrics.winrate",
    "sklearn.linear_model",
    "sklearn.model_selection",
    "sklearn.metrics",
    "scipy.stats",
    "pandas",
    "matplotlib.pyplot",
)
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
HEADER = struct.Struct("!I")  # the request's JSON length, sent with the client's three standard streams


def socket_path(key: str) -> str:
    """A short per-run socket path (AF_UNIX paths are limited to about 100 bytes)."""
    digest = hashlib.sha1(f"{os.getuid()}:{os.path.abspath(key)}:{os.getpid()}".encode()).hexdigest()[:16]
    return os.path.join(tempfile.gettempdir(), f"alignbench-warm-{digest}.sock")


# ---------------------------------------------------------------- client


def exit_status(status: int) -> int:
    """A waitpid status as a shell would report it: the exit code, or 128 + the signal's number."""
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def run_warm(path: str, argv: list[str]) -> int | None:
    """Run `python argv` in a fork of the server at `path`; None when no job was started (the caller runs it cold)."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.settimeout(5)
        conn.connect(path)
        request = json.dumps({"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ)}).encode()
        socket.send_fds(conn, [HEADER.pack(len(request))], [0, 1, 2])
        conn.sendall(request)
        conn.settimeout(None)
        lines = conn.makefile("r")
        first = lines.readline().split()
    except OSError:
        conn.close()
        return None
    if first[:1] != ["pid"]:
        conn.close()
        return None  # the server did not start the job (refused, or gone): nothing ran
    pid = int(first[1])

    def forward(signum, _frame):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, forward)
    words = lines.readline().split()
    if words[:1] != ["exit"]:
        print(f"pipeline.warm: job {pid} ended without a status (its waiter was killed)", file=sys.stderr)
        return 1
    return int(words[1])


def client(argv: list[str]) -> None:
    if len(argv) < 2 or argv[0] != "-m":
        sys.exit("usage: python -m pipeline.warm -m <module> [args...]   or   python -m pipeline.warm serve ...")
    path = os.environ.get(SOCKET_ENV)
    same_allocation = os.environ.get("SLURM_JOB_ID", "") == os.environ.get(ALLOCATION_ENV, "")
    if path and same_allocation and os.environ.get(SWITCH_ENV, "1") != "0":
        code = run_warm(path, argv)
        if code is not None:
            sys.exit(code)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, *argv])


# ---------------------------------------------------------------- server


def finish() -> None:
    """What interpreter shutdown does before exiting: join non-daemon threads, run atexit handlers, flush."""
    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is not None:
        shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


def run_job(request: dict, fds: list[int]) -> None:
    """In the forked job process: become `python -m <module> args` of the request, then exit with its code."""
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # KeyboardInterrupt, as in a fresh interpreter
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    module, *args = request["argv"][1:]
    sys.path[0] = request["cwd"]  # `python -m` puts the working directory first
    sys.argv = [module, *args]
    threads = os.environ.get("OMP_NUM_THREADS", "")
    if threads.isdigit() and "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(int(threads))  # OpenMP read its variable when the server loaded torch
    code = 0
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as stop:
        if stop.code is None:
            code = 0
        elif isinstance(stop.code, int):
            code = stop.code
        else:
            print(stop.code, file=sys.stderr)
            code = 1
    except KeyboardInterrupt:
        traceback.print_exc()
        code = 128 + signal.SIGINT
    except BaseException:  # noqa: BLE001 - a fresh interpreter prints any uncaught exception and exits 1
        traceback.print_exc()
        code = 1
    try:
        finish()
    finally:
        os._exit(code)


def read_request(conn: socket.socket) -> tuple[dict | None, list[int]]:
    """The client's request and its three standard streams; None for a request cut short or not JSON (a client that
    died while sending: the server goes on)."""
    conn.settimeout(5)
    header, fds, _flags, _addr = socket.recv_fds(conn, HEADER.size, 3)
    if len(header) != HEADER.size or len(fds) != 3:
        return None, fds
    (size,) = HEADER.unpack(header)
    payload = b""
    while len(payload) < size:
        chunk = conn.recv(size - len(payload))
        if not chunk:
            return None, fds
        payload += chunk
    try:
        return json.loads(payload), fds
    except ValueError:
        return None, fds


def handle(conn: socket.socket, listener: socket.socket) -> None:
    """In the server: read one request, fork a waiter that forks the job and reports its pid and exit status."""
    request, fds = read_request(conn)
    if request is None:
        print("pipeline.warm: a request cut short or not JSON; dropped", file=sys.stderr, flush=True)
        for fd in fds:
            os.close(fd)
        conn.close()
        return
    print(f"pipeline.warm: {' '.join(request['argv'][1:4])} (in {request['cwd']})", file=sys.stderr, flush=True)
    if os.fork() == 0:  # the waiter
        try:
            listener.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            for signum in FORWARDED_SIGNALS:
                signal.signal(signum, signal.SIG_IGN)  # the client forwards to the job; the waiter reports its end
            job = os.fork()
            if job == 0:
                conn.close()
                run_job(request, fds)
            for fd in fds:
                os.close(fd)
            conn.settimeout(None)
            conn.sendall(f"pid {job}\n".encode())
            _, status = os.waitpid(job, 0)
            conn.sendall(f"exit {exit_status(status)}\n".encode())
        finally:
            os._exit(0)
    for fd in fds:
        os.close(fd)
    conn.close()


def preload(modules: tuple[str, ...]) -> list[str]:
    loaded = []
    for name in modules:
        try:
            importlib.import_module(name)
            loaded.append(name)
        except ImportError:
            pass
    return loaded


def serve(path: str, parent: int) -> None:
    """Preload, then accept jobs on `path` until SIGTERM or until process `parent` (the Snakemake run) is gone."""
    started = time.perf_counter()
    loaded = preload(PRELOAD)
    print(f"pipeline.warm: preloaded {len(loaded)} modules in {time.perf_counter() - started:.1f} s "
          f"({threading.active_count()} thread(s)): {' '.join(loaded)}", file=sys.stderr, flush=True)
    server_pid = os.getpid()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # waiters are reaped by the kernel
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if os.path.exists(path):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(path)
        listener.listen(64)
        listener.settimeout(2)
        print(f"pipeline.warm: serving on {path}", file=sys.stderr, flush=True)
        jobs = 0
        while True:
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                if os.getppid() != parent:
                    print(f"pipeline.warm: run {parent} is gone; stopping", file=sys.stderr, flush=True)
                    break
                continue
            jobs += 1
            try:
                handle(conn, listener)
            except OSError as err:
                print(f"pipeline.warm: request {jobs} dropped: {err}", file=sys.stderr, flush=True)
    finally:
        if os.getpid() == server_pid:
            listener.close()
            if os.path.exists(path):
                os.unlink(path)


class WarmServer:
    """The server of one local Snakemake run: started by the Snakefile's onstart, stopped by onsuccess/onerror."""

    def __init__(self, key: str, log: str | Path):
        self.path = socket_path(key)
        self.log = Path(log)
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        if os.environ.get(SWITCH_ENV, "1") == "0":
            return
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pipeline.warm", "serve", "--socket", self.path,
                 "--parent", str(os.getpid())],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        os.environ[SOCKET_ENV] = self.path  # inherited by every local job; until it listens, jobs start cold
        os.environ[ALLOCATION_ENV] = os.environ.get("SLURM_JOB_ID", "")  # cluster jobs (other allocations) start cold

    def stop(self) -> None:
        os.environ.pop(SOCKET_ENV, None)
        os.environ.pop(ALLOCATION_ENV, None)
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] != ["serve"]:
        client(argv)
        return
    parser = argparse.ArgumentParser(prog="python -m pipeline.warm serve", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--socket", required=True, help="the Unix socket to listen on")
    parser.add_argument("--parent", type=int, default=os.getppid(), help="stop when this process is gone")
    options = parser.parse_args(argv[1:])
    serve(options.socket, options.parent)


if __name__ == "__main__":
    main()
