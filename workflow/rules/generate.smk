# Generation: one job per model answers every suite (one model load; lm-eval runs on the same loaded model), sampling
# with the model's own seed (<variant>-s<seed>; sft: the shared `seed:`).
# lint advice kept: functions (why: workflow/rules/common.smk)
from evals.registry import configured

EVAL_SUITES = configured(config)  # suite name -> registered suite (evals/suites/)


def model_dir(model):
    return f"{R}/models/{model}"


def model_seed(model):
    """The seed a model's generation samples with: its own seed for <variant>-s<seed>, the shared `seed:` for sft."""
    seed = split_seeded(model)[1]
    return config["seed"] if seed is None else seed


def generation_file(model, suite):
    return f"{R}/generations/{model}/{EVAL_SUITES[suite].generation_file}"


def suite_data(kinds):
    """{kind: path} of data-stage files, and the `--data kind=path ...` argument naming them."""
    files = {kind: data_file(kind) for kind in kinds}
    return files, " ".join(f"{kind}={path}" for kind, path in files.items())


GENERATION_DATA = suite_data(
    dict.fromkeys(k for n, s in EVAL_SUITES.items() for k in s.generation_inputs(config["evals"][n]))
)


rule generate:
    # lint advice kept: PYTHON (why: workflow/rules/common.smk)
    conda:
        "../envs/generate.yaml"
    input:
        checkpoint=lambda w: checkpoint_done(w.model),
        data=list(GENERATION_DATA[0].values()),
    output:
        [generation_file("{model}", suite) for suite in EVAL_SUITES],
    params:
        versions=as_json({name: suite.version for name, suite in EVAL_SUITES.items()}),  # a bump reruns generation
        model_dir=lambda w: model_dir(w.model),
        seed=lambda w: model_seed(w.model),  # <variant>-s<seed> samples with its seed, sft with the shared one
        data=GENERATION_DATA[1],
        generation=as_json(config["generation"]),
        evals=as_json(config["evals"]),
        out_dir=f"{R}/generations/{{model}}",
        suites=" ".join(EVAL_SUITES),
    threads: 1
    log:
        log_path("generate", "{model}"),
    benchmark:
        benchmark_path("generate", "{model}")
    shell:
        "OMP_NUM_THREADS={threads} {PYTHON} -m evals.generate --model-dir {params.model_dir} --model {wildcards.model} "
        "--suites {params.suites} --data {params.data} --generation-json {params.generation:q} "
        "--evals-json {params.evals:q} --seed {params.seed} --out-dir {params.out_dir} > {log:q} 2>&1"
