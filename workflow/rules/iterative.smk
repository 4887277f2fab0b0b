# Iterative methods (modules of family "iterative": iterative DPO, RAFT): T rounds of sample K -> score with the
# reward model -> training data (best/worst pairs, or the best answers) -> train, one job per {iteration} whose
# samples, training data, stats and policy are files, so a rerun resumes at the iteration it stopped in. The last iteration's policy becomes models/<method>,
# which generation and evaluation use like any other checkpoint. Each runs once per seed of `seeds:` ({seed}), as
# the model <method>-s<seed>: its own sampling and training seed, its own files. Rules call `python -m methods.<module>
# {iteration,finalize}` (see methods/iterative_dpo.py); one job per iteration pays the imports once.
# lint advice kept: functions (why: workflow/rules/common.smk)


def iterative_policy(model, iteration):
    """Where iteration t of a model (<method>-s<seed>) starts: the SFT checkpoint for t = 1, else the policy its
    iteration t - 1 trained."""
    t = int(iteration)
    return f"{R}/models/sft" if t == 1 else f"{R}/models/{model}/iter{t - 1}"


def iterative_work(model, iteration):
    return f"{R}/iterative/{model}/iter{iteration}"


def run_name(wildcards):
    """The model (<method>-s<seed>) one iterative job belongs to."""
    return seeded_name(wildcards.method, wildcards.seed)


def iterations(method):
    return range(1, int(config["methods"][method]["iterations"]) + 1)


rule iterative_iteration:
    # lint advice kept: PYTHON, prefix (why: workflow/rules/common.smk)
    conda:
        "../envs/train.yaml"
    wildcard_constraints:
        method="|".join(ITERATIVE_METHODS) or "NO_METHOD",
        iteration=r"[1-9][0-9]*",
    input:
        policy=lambda w: f"{iterative_policy(run_name(w), w.iteration)}/provenance.json",
        sft=checkpoint_done("sft"),
        reward_model=checkpoint_done("reward_model"),
        prompts=lambda w: data_file(f"online_prompts_iter{w.iteration}" if f"online_prompts_iter{w.iteration}" in DATA_FILES else "online_prompts"),
    output:
        samples=f"{R}/iterative/{{method}}-s{{seed}}/iter{{iteration}}/samples.jsonl",
        stats=f"{R}/iterative/{{method}}-s{{seed}}/iter{{iteration}}/stats.json",
        policy=f"{R}/models/{{method}}-s{{seed}}/iter{{iteration}}/provenance.json",
    params:
        launch=launch_options(),
        module=lambda w: spec_of(w.method).name,
        block=lambda w: as_json(config["methods"][w.method]),
        policy=lambda w: iterative_policy(run_name(w), w.iteration),
        sft=f"{R}/models/sft",
        reward_model=f"{R}/models/reward_model",
        samples_dir=lambda w: iterative_work(run_name(w), w.iteration),
        out_dir=f"{R}/models/{{method}}-s{{seed}}/iter{{iteration}}",
    threads: 1
    log:
        log_path("iterative_iteration", "{method}-s{seed}/iter{iteration}"),
    benchmark:
        benchmark_path("iterative_iteration", "{method}-s{seed}/iter{iteration}")
    shell:
        "OMP_NUM_THREADS={threads} {PYTHON} -m methods.launch {params.launch} -- "
        "methods.{params.module} iteration --method {wildcards.method} "
        "--block-json {params.block:q} --seed {wildcards.seed} --iteration {wildcards.iteration} "
        "--policy {params.policy} --reference {params.sft} --reward-model {params.reward_model} "
        "--prompts {input.prompts} --samples-dir {params.samples_dir} --out-dir {params.out_dir} > {log:q} 2>&1"


rule iterative_final:
    # lint advice kept: PYTHON, prefix (why: workflow/rules/common.smk)
    conda:
        "../envs/train.yaml"
    wildcard_constraints:
        method="|".join(ITERATIVE_METHODS) or "NO_METHOD",
    input:
        iterations=lambda w: [f"{R}/models/{run_name(w)}/iter{t}/provenance.json" for t in iterations(w.method)],
        stats=lambda w: [f"{iterative_work(run_name(w), t)}/stats.json" for t in iterations(w.method)],
        sft=checkpoint_done("sft"),
        reward_model=checkpoint_done("reward_model"),
    output:
        checkpoint_done("{method}-s{seed}"),
    params:
        module=lambda w: spec_of(w.method).name,
        block=lambda w: as_json(config["methods"][w.method]),
        sft=f"{R}/models/sft",
        reward_model=f"{R}/models/reward_model",
        iterations_root=f"{R}/iterative/{{method}}-s{{seed}}",
        out_dir=f"{R}/models/{{method}}-s{{seed}}",
    localrule: True
    log:
        log_path("iterative_final", "{method}-s{seed}"),
    benchmark:
        benchmark_path("iterative_final", "{method}-s{seed}")
    shell:
        "{PYTHON} -m methods.{params.module} finalize --method {wildcards.method} --block-json {params.block:q} "
        "--seed {wildcards.seed} --sft {params.sft} --reward-model {params.reward_model} "
        "--iterations-root {params.iterations_root} --out-dir {params.out_dir} > {log:q} 2>&1"
