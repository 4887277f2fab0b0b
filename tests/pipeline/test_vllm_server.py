"""pipeline/vllm_server.py for real on loopback: the real subprocess start, /health wait, completions client and stop,
with a stand-in for vLLM's module (tests/pipeline/vllm_standin: the same command line and response shapes; real vLLM
needs a GPU and its own environment). The backend test drives evals/backends.py's vllm backend through it."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
import requests

from pipeline.vllm_server import CompletionsClient, VLLMServer

STANDIN = Path(__file__).parent / "vllm_standin"


@pytest.fixture
def standin(monkeypatch):
    """The stand-in is what `<python> -m vllm.entrypoints.openai.api_server` runs; two GPUs visible."""
    monkeypatch.setenv("PYTHONPATH", str(STANDIN))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")


def server(tmp_path, **kwargs) -> VLLMServer:
    return VLLMServer(tmp_path, python=sys.executable, seed=7, name="dpo", startup_timeout_s=30, **kwargs)


def test_server_command_has_the_job_gpus_as_tensor_parallel_and_is_stopped_on_exit(standin, tmp_path):
    """Guards against a server on one GPU of several (tensor parallel must be the GPUs visible), against extra
    `args` being dropped, and against a server left running after the job (it would hold the GPUs)."""
    with server(tmp_path, args=["--max-model-len", "4096"]) as s:
        argv = requests.get(f"http://127.0.0.1:{s.port}/argv", timeout=5).json()
        process = s.process
        assert argv["argv"][argv["argv"].index("--tensor-parallel-size") + 1] == "2"
        assert argv["argv"][argv["argv"].index("--model") + 1] == str(tmp_path)
        assert argv["extra"] == ["--max-model-len", "4096"]
    assert process.poll() is not None
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{s.port}/health", timeout=2)


def test_client_returns_n_samples_per_prompt_in_prompt_order(standin, tmp_path):
    """Guards against samples landing on the wrong prompt when prompts are split over concurrent requests and the
    server returns choices out of order, and against sampling settings not reaching the server."""
    prompts = [f"prompt {i}" for i in range(5)]
    with server(tmp_path, concurrency=2) as s:
        texts = s.client(prompts_per_request=2).complete(prompts, n=3, temperature=0.7, top_p=0.9, max_tokens=11,
                                                         seed=100, stop=["</s>"])
    assert len(texts) == 5 and all(len(t) == 3 for t in texts)
    asked = [[json.loads(x) for x in t] for t in texts]
    assert [[a["prompt"] for a in t] for t in asked] == [[p] * 3 for p in prompts]
    assert [[a["sample"] for a in t] for t in asked] == [[0, 1, 2]] * 5
    assert [t[0]["seed"] for t in asked] == [100, 100, 101, 101, 102]   # one seed per request, reproducible
    first = asked[0][0]
    assert (first["temperature"], first["top_p"], first["max_tokens"], first["stop"]) == (0.7, 0.9, 11, ["</s>"])
    assert first["add_special_tokens"] is False   # the chat template already holds BOS


def test_server_that_exits_at_start_fails_at_once_naming_the_command(standin, tmp_path, monkeypatch):
    """Guards against a job waiting the whole startup timeout for a server that already died (e.g. out of memory)."""
    monkeypatch.setenv("STANDIN_MODE", "exit")
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="exited with status 3 .*vllm.entrypoints.openai.api_server"):
        server(tmp_path).start()
    assert time.monotonic() - started < 20


def test_server_never_healthy_times_out_and_is_stopped(standin, tmp_path, monkeypatch):
    """Guards against an endless wait on a server that never becomes healthy, and against leaving it running."""
    monkeypatch.setenv("STANDIN_MODE", "unhealthy")
    s = VLLMServer(tmp_path, python=sys.executable, startup_timeout_s=3)
    with pytest.raises(TimeoutError, match="generation.vllm.startup_timeout_s"):
        s.start()
    assert s.process is None


def test_missing_serve_environment_names_the_config_key(tmp_path):
    with pytest.raises(FileNotFoundError, match="generation.vllm.python.*envs/serve.txt"):
        VLLMServer(tmp_path, python=str(tmp_path / "no-env" / "python")).start()


def test_client_reports_http_errors_with_the_server_message(standin, tmp_path):
    """Guards against a wrong served model name passing silently (the stand-in, like vLLM, answers 404)."""
    with server(tmp_path) as s:
        client = CompletionsClient(s.base_url, "not-served", timeout_s=10)
        with pytest.raises(RuntimeError, match="HTTP 404.*not-served"):
            client.complete(["x"], temperature=0.0, max_tokens=4, seed=0)


def test_vllm_backend_sends_chat_templated_prompts_through_the_server(standin, tmp_path):
    """The vllm generation backend (evals/backends.py) end to end through the server: the checkpoint's chat
    template applied as the transformers backend applies it, per-call overrides honoured, one answer each."""
    from evals.backends import make_backend
    from tests.evals.test_academic import make_tokenizer

    tok = make_tokenizer()
    tok.save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"max_position_embeddings": 512}))
    backend = make_backend(tmp_path, {"backend": "vllm", "max_new_tokens": 16, "batch_size": 2, "temperature": 0.0,
                                      "seed": 3, "vllm": {"python": sys.executable, "startup_timeout_s": 30}})
    try:
        conversations = [[{"role": "user", "content": f"question {i}"}] for i in range(3)]
        answers = [json.loads(a) for a in backend.generate(conversations, max_new_tokens=5)]
    finally:
        backend.server.stop()
    expected = [tok.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in conversations]
    assert [a["prompt"] for a in answers] == expected
    assert {(a["max_tokens"], a["temperature"], a["n"]) for a in answers} == {(5, 0.0, 1)}
