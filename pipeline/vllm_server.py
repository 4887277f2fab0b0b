"""vLLM behind its OpenAI-compatible HTTP endpoint, started from its own environment (envs/serve.txt: vLLM needs
transformers < 5.20, the training environment pins 5.23). Imports only the standard library and requests.

    with VLLMServer(model_dir, python=".venv-serve/bin/python", seed=0) as server:
        texts = server.client().complete(prompts, n=8, temperature=1.0, top_p=1.0, max_tokens=512, seed=0)

The server runs `<python> -m vllm.entrypoints.openai.api_server --model DIR` on 127.0.0.1 (a free port), with
tensor parallelism over the GPUs the job sees (CUDA_VISIBLE_DEVICES, as Slurm sets it), and is stopped on exit,
including after an exception or SIGTERM (Slurm's cancel and timeout). The config block is `generation.vllm`
(workflow/schemas/config.schema.yaml): the keys of DEFAULTS, keyword arguments of VLLMServer.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from pipeline.logs import get_logger

log = get_logger("pipeline.vllm_server")

ENTRY = "vllm.entrypoints.openai.api_server"
DEFAULTS = {
    "python": ".venv-serve/bin/python",  # `make serve-env`; relative to the repo root, where Snakemake runs jobs
    "gpu_memory_utilization": 0.85,
    "startup_timeout_s": 1800,   # loading an 8B model from a network file system and compiling graphs takes minutes
    "request_timeout_s": 3600,
    "concurrency": 4,            # requests in flight; vLLM batches across them
    "args": [],                  # further `vllm serve` arguments, e.g. ["--max-model-len", "8192"]
}
HEALTH_POLL_S = 2.0
STOP_GRACE_S = 30.0


def visible_gpus() -> int:
    """GPUs this job may use: CUDA_VISIBLE_DEVICES where set (Slurm sets it), else what nvidia-smi lists."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    if shutil.which("nvidia-smi"):
        proc = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
        return sum(line.startswith("GPU ") for line in proc.stdout.splitlines()) if proc.returncode == 0 else 0
    return 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class CompletionsClient:
    """The /v1/completions endpoint: prompts (strings, sent without extra special tokens: a chat template already
    holds them) -> n completions each. Requests of `prompts_per_request` prompts, `concurrency` at once."""

    def __init__(self, base_url: str, model: str, *, prompts_per_request: int = 64, concurrency: int = 4,
                 timeout_s: float = 3600):
        self.url = base_url.rstrip("/") + "/completions"
        self.model, self.prompts_per_request = model, prompts_per_request
        self.concurrency, self.timeout_s = concurrency, timeout_s
        self._local = threading.local()

    def _session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        return self._local.session

    def _request(self, prompts: list[str], body: dict) -> list[list[str]]:
        response = self._session().post(self.url, json={**body, "model": self.model, "prompt": prompts},
                                        timeout=self.timeout_s)
        if response.status_code != 200:
            raise RuntimeError(f"{self.url}: HTTP {response.status_code}: {response.text[:500]}")
        choices = sorted(response.json()["choices"], key=lambda c: c["index"])
        n = body["n"]
        if len(choices) != n * len(prompts):
            raise RuntimeError(f"{self.url}: {len(choices)} choices for {len(prompts)} prompts x n={n}")
        return [[c["text"] for c in choices[i * n:(i + 1) * n]] for i in range(len(prompts))]

    def complete(self, prompts: list[str], *, n: int = 1, temperature: float, top_p: float = 1.0,
                 max_tokens: int, seed: int, stop: list[str] | None = None) -> list[list[str]]:
        """[[n texts] per prompt], in the prompts' order. Request k of the batch gets seed + k, so a rerun with the
        same seed and batching samples the same texts."""
        chunks = [prompts[i:i + self.prompts_per_request] for i in range(0, len(prompts), self.prompts_per_request)]
        body = {"n": n, "temperature": temperature, "top_p": top_p, "max_tokens": max_tokens,
                "add_special_tokens": False, **({"stop": stop} if stop else {})}
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            parts = pool.map(lambda k: self._request(chunks[k], {**body, "seed": seed + k}), range(len(chunks)))
            return [texts for part in parts for texts in part]


class VLLMServer:
    """A `vllm serve` subprocess of the serve environment; a context manager (also stopped at interpreter exit)."""

    def __init__(self, model_dir: str | Path, *, python: str = DEFAULTS["python"], seed: int = 0, name: str = "model",
                 gpu_memory_utilization: float = DEFAULTS["gpu_memory_utilization"],
                 startup_timeout_s: float = DEFAULTS["startup_timeout_s"],
                 request_timeout_s: float = DEFAULTS["request_timeout_s"],
                 concurrency: int = DEFAULTS["concurrency"], args: list[str] | tuple = ()):
        self.model_dir, self.python, self.seed, self.name = str(model_dir), python, seed, name
        self.gpu_memory_utilization, self.extra_args = gpu_memory_utilization, list(args)
        self.startup_timeout_s, self.request_timeout_s = startup_timeout_s, request_timeout_s
        self.concurrency = concurrency
        self.port = 0
        self.process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self) -> list[str]:
        return [self.python, "-m", ENTRY, "--model", self.model_dir, "--served-model-name", self.name,
                "--host", "127.0.0.1", "--port", str(self.port), "--seed", str(self.seed),
                "--tensor-parallel-size", str(max(1, visible_gpus())),
                "--gpu-memory-utilization", str(self.gpu_memory_utilization), *self.extra_args]

    def start(self) -> "VLLMServer":
        if not Path(self.python).is_file() and shutil.which(self.python) is None:
            raise FileNotFoundError(f"config key generation.vllm.python: no interpreter {self.python!r} "
                                    f"(install the serve environment: pip install -r envs/serve.txt)")
        self.port = free_port()
        log.info("starting %s", " ".join(self.command()))
        # Its own session: a signal to our process group does not reach it; we stop it ourselves, by its group.
        self.process = subprocess.Popen(self.command(), start_new_session=True, stdout=sys.stderr, stderr=sys.stderr)
        atexit.register(self.stop)
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _exit_on_sigterm)  # Slurm's cancel/timeout: run atexit, stop the server
        self.wait_healthy()
        return self

    def wait_healthy(self) -> None:
        started = time.monotonic()
        health = f"http://127.0.0.1:{self.port}/health"
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"vLLM server exited with status {self.process.returncode} before answering "
                                   f"{health} (its output is above in this log): {' '.join(self.command())}")
            try:
                if requests.get(health, timeout=HEALTH_POLL_S).status_code == 200:
                    log.info("vLLM server up at %s after %.0f s", self.base_url, time.monotonic() - started)
                    return
            except requests.RequestException:
                pass
            if time.monotonic() - started > self.startup_timeout_s:
                self.stop()
                raise TimeoutError(f"vLLM server not healthy at {health} after {self.startup_timeout_s} s "
                                   f"(config key generation.vllm.startup_timeout_s)")
            time.sleep(HEALTH_POLL_S)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        for sig, grace in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, STOP_GRACE_S)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                return
            try:
                process.wait(grace)
                return
            except subprocess.TimeoutExpired:
                continue

    def client(self, prompts_per_request: int = 64) -> CompletionsClient:
        return CompletionsClient(self.base_url, self.name, prompts_per_request=prompts_per_request,
                                 concurrency=self.concurrency, timeout_s=self.request_timeout_s)

    def __enter__(self) -> "VLLMServer":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signum)
