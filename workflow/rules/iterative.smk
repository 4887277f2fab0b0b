# Iterative methods (modules of family "iterative": iterative DPO, RAFT): T rounds of sample K -> score with the
# reward model -> training data (best/worst pairs, or the best answers) -> train, one job per {iteration} whose
# samples, training data, stats and policy are files, so a rerun resumes at the iteration it stopped in. The last iteration's policy becomes models/<method>,
# which generation and evaluation use like any other checkpoint. Rules call `python -m methods.<module>
# {iteration,finalize}` (see methods/iterative_dpo.py); one job per iteration pays the imports once.
# lint advice kept: functions (why: workflow/rules/common.smk)


def iterative_policy(method, iteration):
    """Where iteration t starts: the SFT checkpoint for t = 1, else the policy iteration t - 1 trained."""
    t = int(iteration)
    return f"{R}/models/sft" if t == 1 else f"{R}/models/{method}/iter{t - 1}"


def iterative_work(method, iteration):
    return f"{R}/iterative/{method}/iter{iteration}"


def iterations(method):
    return range(1, int(config["methods"][method]["iterations"]) + 1)


rule iterative_iteration:
    # lint advice kept: PYTHON, seed, prefix (why: workflow/rules/common.smk)
    conda:
        "../envs/train.yaml"
    wildcard_constraints:
        method="|".join(ITERATIVE_METHODS) or "NO_METHOD",
        iteration=r"[1-9][0-9]*",
    input:
        policy=lambda w: f"{iterative_policy(w.method, w.iteration)}/provenance.json",
        sft=checkpoint_done("sft"),
        reward_model=checkpoint_done("reward_model"),
        prompts=lambda w: data_file(f"online_prompts_iter{w.iteration}" if f"online_prompts_iter{w.iteration}" in DATA_FILES else "online_prompts"),
    output:
        samples=f"{R}/iterative/{{method}}/iter{{iteration}}/samples.jsonl",
        stats=f"{R}/iterative/{{method}}/iter{{iteration}}/stats.json",
        policy=f"{R}/models/{{method}}/iter{{iteration}}/provenance.json",
    params:
        launch=launch_options(),
        module=lambda w: spec_of(w.method).name,
        block=lambda w: as_json(config["methods"][w.method]),
        policy=lambda w: iterative_policy(w.method, w.iteration),
        sft=f"{R}/models/sft",
        reward_model=f"{R}/models/reward_model",
        samples_dir=lambda w: iterative_work(w.method, w.iteration),
        out_dir=f"{R}/models/{{method}}/iter{{iteration}}",
    threads: 1
    log:
        log_path("iterative_iteration", "{method}/iter{iteration}"),
    benchmark:
        benchmark_path("iterative_iteration", "{method}/iter{iteration}")
    shell:
        "OMP_NUM_THREADS={threads} {PYTHON} -m methods.launch {params.launch} -- "
        "methods.{params.module} iteration --method {wildcards.method} "
        "--block-json {params.block:q} --seed {config[seed]} --iteration {wildcards.iteration} "
        "--policy {params.policy} --reference {params.sft} --reward-model {params.reward_model} "
        "--prompts {input.prompts} --samples-dir {params.samples_dir} --out-dir {params.out_dir} > {log:q} 2>&1"


rule iterative_final:
    # lint advice kept: PYTHON, seed, prefix (why: workflow/rules/common.smk)
    conda:
        "../envs/train.yaml"
    wildcard_constraints:
        method="|".join(ITERATIVE_METHODS) or "NO_METHOD",
    input:
        iterations=lambda w: [f"{R}/models/{w.method}/iter{t}/provenance.json" for t in iterations(w.method)],
        stats=lambda w: [f"{iterative_work(w.method, t)}/stats.json" for t in iterations(w.method)],
        sft=checkpoint_done("sft"),
        reward_model=checkpoint_done("reward_model"),
    output:
        checkpoint_done("{method}"),
    params:
        module=lambda w: spec_of(w.method).name,
        block=lambda w: as_json(config["methods"][w.method]),
        sft=f"{R}/models/sft",
        reward_model=f"{R}/models/reward_model",
        iterations_root=f"{R}/iterative/{{method}}",
        out_dir=f"{R}/models/{{method}}",
    localrule: True
    log:
        log_path("iterative_final", "{method}"),
    benchmark:
        benchmark_path("iterative_final", "{method}")
    shell:
        "{PYTHON} -m methods.{params.module} finalize --method {wildcards.method} --block-json {params.block:q} "
        "--seed {config[seed]} --sft {params.sft} --reward-model {params.reward_model} "
        "--iterations-root {params.iterations_root} --out-dir {params.out_dir} > {log:q} 2>&1"
