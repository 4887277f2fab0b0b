"""The GPU check: one command on one GPU (H100/H200: about 8 minutes). Not run in CI. It prints

1. generation throughput (generated tokens/s) of vLLM (pipeline/vllm_server.py from the serve environment,
   `make serve-env` -> .venv-serve, through evals/backends.VLLMBackend) against transformers (evals/backends.
   TransformersBackend) on the same checkpoint, prompts and sampling settings (the study's `generation` block);
   tokens are the completions re-tokenized, the same count for both;
2. DPO step time, model FLOP utilisation and peak memory: the real TRL DPOTrainer through methods/dpo.train_dpo with
   the study's `methods.dpo` block (config/rlhf_workflow.yaml: fp32 master weights, bf16 autocast, activation
   checkpointing), only the sizes changed; steps timed after warm-up. MFU = (6 + 2) x N x T / step time / peak,
   N the parameters doing matmuls (input embeddings excluded unless tied), T the non-padding tokens of a step
   (chosen + rejected): 6NT for the policy's forward and backward, 2NT for the reference's forward; attention and
   the recomputed forward of checkpointing are not counted;
3. the rehearsal (tests/test_rehearsal.py's study: the hub mirror, the loopback oracle judge, config/rlhf_workflow.yaml
   + config/overlays/rehearsal.yaml) through Snakemake's local executor with the GPU visible (methods.launch starts
   one process per GPU; --rehearsal-jobs GPU jobs at once, each vLLM server with a small memory share) and
   `generation.backend: vllm` where .venv-serve exists. Its 113 jobs may need more than what --timeout leaves
   after parts 1-2 (each generate job starts its own vLLM server): `--parts rehearsal` runs it alone.

    python benchmarks/gpu_check.py --model /path/to/Qwen2.5-0.5B --timeout 480
    python benchmarks/gpu_check.py --random-init llama-0.5b          # no download: a random ~0.5B Llama

The GPU machine needs no internet: --model is a local checkpoint folder (a hub snapshot).
"""

from __future__ import annotations

import argparse
import copy
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))   # run as a script from anywhere: the project's packages come from this tree

STUDY = "gpu_check_rehearsal"
CONFIGS = ["config/rlhf_workflow.yaml", "config/overlays/rehearsal.yaml"]   # as tests/test_rehearsal.py
DEFER_VERDICT_SHARE = 0.3                                                   # as tests/test_rehearsal.py
NO_GPU = "gpu_check: no CUDA device visible (torch.cuda.is_available() is False); run it on a GPU node"
# --random-init: Llama-shaped models built from a LlamaConfig (the rehearsal mirror's tokenizer and chat template;
# its vocabulary is small, so the parameters sit in the layers): 20 x 25.2M = 0.50B parameters.
RANDOM_INIT = {"llama-0.5b": {"hidden_size": 1536, "num_hidden_layers": 20, "num_attention_heads": 12,
                              "num_key_value_heads": 4, "intermediate_size": 4096, "max_position_embeddings": 4096,
                              "tie_word_embeddings": False}}
REHEARSAL_VLLM = {"gpu_memory_utilization": 0.08, "args": ["--enforce-eager"]}
WORDS = ("river stone light market winter garden letter engine forest signal harbour paper clock mountain".split())


class PartTimeout(Exception):
    pass


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", type=Path, help="local checkpoint folder (config.json, weights, tokenizer)")
    which.add_argument("--random-init", choices=sorted(RANDOM_INIT), help="a random Llama of this shape instead")
    parser.add_argument("--timeout", type=float, default=480, help="seconds for the whole check (default 480)")
    parser.add_argument("--parts", nargs="+", choices=["generation", "dpo", "rehearsal"],
                        default=["generation", "dpo", "rehearsal"])
    parser.add_argument("--peak-tflops", type=float, default=989.0,
                        help="the GPU's peak dense bf16 TFLOP/s (H100/H200 SXM: 989)")
    parser.add_argument("--prompts", type=int, default=256, help="generation: prompts (default 256)")
    parser.add_argument("--max-new-tokens", type=int, default=256, help="generation: new tokens per prompt")
    parser.add_argument("--batch-size", type=int, default=64, help="generation: prompts per batch / request")
    parser.add_argument("--dpo-batch", type=int, default=8, help="DPO: pairs per optimizer step (one micro-batch)")
    parser.add_argument("--dpo-length", type=int, default=1024, help="DPO: max_length (tokens per sequence)")
    parser.add_argument("--dpo-steps", type=int, default=6, help="DPO: timed steps")
    parser.add_argument("--dpo-warmup", type=int, default=2, help="DPO: untimed warm-up steps")
    parser.add_argument("--rehearsal-backend", choices=["auto", "vllm", "transformers"], default="auto",
                        help="rehearsal: generation.backend (auto: vllm where --serve-python exists)")
    parser.add_argument("--rehearsal-jobs", type=int, default=1,
                        help="rehearsal: GPU jobs sharing the GPU at once (default 1: vLLM's startup profiling "
                             "aborts when another process frees GPU memory meanwhile, vllm-project/vllm#56830)")
    parser.add_argument("--serve-python", type=Path, default=ROOT / ".venv-serve" / "bin" / "python",
                        help="the serve environment's interpreter (make serve-env)")
    args = parser.parse_args(argv)
    if args.model is not None and not (args.model / "config.json").is_file():
        parser.error(f"--model {args.model}: not a checkpoint folder (no config.json)")
    return args


def require_gpu() -> None:
    """Exit with NO_GPU where torch sees no CUDA device; else use one GPU (the first, unless
    CUDA_VISIBLE_DEVICES says which): vLLM, transformers and the rehearsal's jobs then all see the same one."""
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "0")
    import torch

    if not torch.cuda.is_available():
        sys.exit(NO_GPU)


def study_config() -> dict:
    return yaml.safe_load((ROOT / CONFIGS[0]).read_text())


def prompts(n: int) -> list[list[dict]]:
    return [[{"role": "user", "content": f"Write a long story about a {WORDS[i % len(WORDS)]} and a "
                                         f"{WORDS[(i * 7 + 3) % len(WORDS)]} (story {i})."}] for i in range(n)]


def token_count(tokenizer, texts: list[str]) -> int:
    return sum(len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"])


def random_model(name: str, hub: Path, out: Path) -> Path:
    """A random-init Llama of RANDOM_INIT[name] with the mirror's Instruct tokenizer (Llama-3 chat template)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from world.rehearsal_mirror import INSTRUCT_MODEL

    tokenizer = AutoTokenizer.from_pretrained(hub / INSTRUCT_MODEL)
    config = LlamaConfig(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         **RANDOM_INIT[name])
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = LlamaForCausalLM(config)
    model.to(torch.bfloat16).save_pretrained(out)
    tokenizer.save_pretrained(out)
    del model
    torch.cuda.empty_cache()
    return out


def generation(model_dir: Path, args, remaining) -> list[tuple[str, str]]:
    import torch

    from evals.backends import TransformersBackend, VLLMBackend

    settings = {k: v for k, v in study_config()["generation"].items() if k in ("temperature", "top_p")}
    settings.update(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
    conversations, rows = prompts(args.prompts), []
    if args.serve_python.is_file():
        vllm = VLLMBackend(model_dir, **settings, vllm={"python": str(args.serve_python),
                                                        "startup_timeout_s": remaining()})
        try:
            vllm.generate(conversations[:args.batch_size], max_new_tokens=8)   # warm-up
            started = time.perf_counter()
            texts = vllm.generate(conversations)
            wall = time.perf_counter() - started
        finally:
            vllm.server.stop()
        tokens = token_count(vllm.tokenizer, texts)
        rows.append(("vLLM generated tokens/s", f"{tokens / wall:,.0f} ({tokens} tokens in {wall:.1f} s)"))
    else:
        rows.append(("vLLM generated tokens/s", f"skipped: no {args.serve_python} (make serve-env)"))
    backend = TransformersBackend(model_dir, **settings)
    backend.generate(conversations[:args.batch_size], max_new_tokens=8)        # warm-up
    started = time.perf_counter()
    texts = backend.generate(conversations)
    torch.cuda.synchronize()
    wall = time.perf_counter() - started
    tokens = token_count(backend.tokenizer, texts)
    rows.append(("transformers generated tokens/s", f"{tokens / wall:,.0f} ({tokens} tokens in {wall:.1f} s)"))
    del backend
    torch.cuda.empty_cache()
    return rows


def matmul_params(model) -> int:
    """Parameters that do matmul work: all but the input embedding (a lookup), unless it is tied to the output."""
    total = sum(p.numel() for p in model.parameters())
    embedding = model.get_input_embeddings().weight
    tied = embedding is model.get_output_embeddings().weight
    return total if tied else total - embedding.numel()


def dpo(model_dir: Path, args, work: Path) -> list[tuple[str, str]]:
    import torch
    from transformers import TrainerCallback

    from methods.dpo import train_dpo
    from pipeline.io import write_jsonl

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.times: list[float] = []

        def on_step_begin(self, *_, **__):
            torch.cuda.synchronize()
            self.started = time.perf_counter()

        def on_step_end(self, *_, **__):
            torch.cuda.synchronize()
            self.times.append(time.perf_counter() - self.started)

    steps = args.dpo_warmup + args.dpo_steps
    block = copy.deepcopy(study_config()["methods"]["dpo"])   # the study's DPO; sizes only changed
    block.update(effective_batch_size=args.dpo_batch, per_device_train_batch_size=args.dpo_batch)
    block["trainer"].update(max_steps=steps, max_length=args.dpo_length, logging_steps=1, save_strategy="no")
    long = " ".join(WORDS[(i * 5) % len(WORDS)] for i in range(4 * args.dpo_length))   # truncated to max_length
    rows = [{"prompt": c, "chosen": [{"role": "assistant", "content": f"Yes. {long}"}],
             "rejected": [{"role": "assistant", "content": f"No. {long}"}]} for c in prompts(args.dpo_batch * steps)]
    write_jsonl(work / "prefs.jsonl", rows, schema="preference_row")
    timer = StepTimer()
    torch.cuda.reset_peak_memory_stats()
    result = train_dpo("dpo", block, policy=model_dir, reference=model_dir, prefs=work / "prefs.jsonl",
                       out_dir=work / "dpo", seed=0, callbacks=[timer])
    peak = torch.cuda.max_memory_allocated()
    if not result.tokens_seen:
        raise RuntimeError("DPOTrainer counted no input tokens (include_num_input_tokens_seen): cannot compute MFU")
    tokens = result.tokens_seen / steps
    step_s = sum(timer.times[args.dpo_warmup:]) / args.dpo_steps
    n = matmul_params(result.model)
    mfu = 8 * n * tokens / step_s / (args.peak_tflops * 1e12)
    return [("DPO step time", f"{step_s:.3f} s ({args.dpo_batch} pairs, {tokens:,.0f} tokens/step, "
                              f"mean of {args.dpo_steps} after {args.dpo_warmup} warm-up)"),
            ("DPO MFU", f"{100 * mfu:.1f} % ({n / 1e9:.2f}B matmul params, peak {args.peak_tflops:g} TFLOP/s)"),
            ("DPO peak memory", f"{peak / 2**30:.1f} GiB (torch.cuda.max_memory_allocated)")]


def gpu_rules() -> list[str]:
    """The rules the workflow profile gives GPUs (profiles/default/config.yaml)."""
    profile = yaml.safe_load((ROOT / "profiles" / "default" / "config.yaml").read_text())
    return sorted(rule for rule, res in profile["set-resources"].items() if res.get("gpu"))


def rehearsal(args, hub: Path, gold: Path, work: Path, remaining) -> list[tuple[str, str]]:
    from evals.judges.oracle_server import OracleServer
    from pipeline.hub_data import MIRROR_ENV
    from pipeline.io import read_jsonl

    smoke = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    judge = {k: v for k, v in smoke["judges"]["oracle"].items() if k != "kind"}
    judge["gold_reward"] = smoke["world"]["gold_reward"]
    backend = args.rehearsal_backend
    if backend == "auto":
        backend = "vllm" if args.serve_python.is_file() else "transformers"
    results = ROOT / "results" / STUDY
    with OracleServer(judge, read_jsonl(gold, schema="item"), defer_verdict_share=DEFER_VERDICT_SHARE) as server:
        local = work / "local.yaml"
        local.write_text(yaml.safe_dump({
            "study": STUDY, "data": {"mirror": str(hub)},
            "judges": {name: {"base_url": server.base_url} for name in ("gpt4_turbo", "gpt4")},
            # each generate job starts its own vLLM server on a tiny model: a small share of the GPU's memory (room
            # for --rehearsal-jobs > 1) and no graph capture (startup dominates at this size)
            "generation": {"backend": backend, "vllm": {"python": str(args.serve_python), **REHEARSAL_VLLM}}}))
        env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", MIRROR_ENV)}
        env.update(HF_HOME=str(work / "hf_home"), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
                   TOKENIZERS_PARALLELISM="false")
        cmd = [sys.executable, "-m", "snakemake", "--cores", "all", "--resources", f"gpu={args.rehearsal_jobs}",
               "--forceall",
               "--configfile", *CONFIGS, str(local), "--set-resources", *(f"{r}:gpu=1" for r in gpu_rules())]
        print("rehearsal:", " ".join(cmd), flush=True)
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True)   # its own group: jobs included
        try:
            rc = proc.wait(timeout=max(1.0, remaining()))
        except subprocess.TimeoutExpired:
            return [("rehearsal", f"TIMED OUT after {time.perf_counter() - started:.0f} s (--timeout)")]
        finally:
            if proc.poll() is None:   # timed out (here or by the part's alarm): stop Snakemake and its jobs
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait()
        wall = time.perf_counter() - started
    status = "ok" if rc == 0 else f"FAILED (snakemake exit {rc}; its log is above)"
    return [("rehearsal wall time", f"{wall:.0f} s, {status}, generation backend {backend}"),
            ("rehearsal tables", str(results / "tables"))]


def run_part(name: str, fn, remaining, summary: list) -> None:
    """One part within the time left: a part that overruns or fails is reported, and the next one runs."""
    def overrun(*_):
        raise PartTimeout(name)

    left = remaining()
    if left < 1:
        summary.append((name, "not run: --timeout spent"))
        return
    signal.signal(signal.SIGALRM, overrun)
    signal.alarm(int(left) + 1)
    try:
        summary.extend(fn())
    except PartTimeout:
        summary.append((name, "TIMED OUT (--timeout)"))
    except Exception as err:   # a measurement: report it (traceback above the summary) and go on to the next part
        traceback.print_exc()
        summary.append((name, f"FAILED: {type(err).__name__}: {str(err)[:300]}"))
    finally:
        signal.alarm(0)


def main(argv: list[str] | None = None) -> None:
    deadline = time.monotonic()
    args = parse_args(argv)
    deadline += args.timeout
    require_gpu()
    import torch

    from world.rehearsal_mirror import build_mirror

    def remaining() -> float:
        return deadline - time.monotonic()

    summary = [("GPU", f"{torch.cuda.get_device_name(0)} ({torch.cuda.device_count()} visible)")]
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        work = Path(tmp)
        smoke = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
        gold = build_mirror(work / "hub", smoke["world"])   # the rehearsal's hub, and --random-init's tokenizer
        model_dir = args.model or random_model(args.random_init, work / "hub", work / args.random_init)
        summary.append(("model", f"{args.model or 'random init ' + args.random_init}"))
        if "generation" in args.parts:
            run_part("generation", lambda: generation(model_dir, args, remaining), remaining, summary)
        if "dpo" in args.parts:
            run_part("dpo", lambda: dpo(model_dir, args, work), remaining, summary)
        if "rehearsal" in args.parts:
            run_part("rehearsal", lambda: rehearsal(args, work / "hub", gold, work, remaining), remaining, summary)
    width = max(len(k) for k, _ in summary)
    print("\n== GPU check ==")
    for key, value in summary:
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()
