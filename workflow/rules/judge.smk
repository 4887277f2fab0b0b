# Judging and scoring, per (model, suite): no model is loaded here (the oracle and HTTP judges need no torch).
# Which suites are judged, what data each stage reads and which files it writes come from the suite registry.
# lint advice kept: functions (why: workflow/rules/common.smk)

JUDGED = [n for n, s in EVAL_SUITES.items() if s.is_judged]
HARNESS = [n for n, s in EVAL_SUITES.items() if not s.is_judged]
LEADERBOARDS = [n for n, s in EVAL_SUITES.items() if s.has_leaderboard]
GOLD_ITEMS = data_file("eval_items") if "world" in config else None  # the micro world's gold answers


def judge_name(suite):
    return config["evals"][suite]["judge"]


def suite_block(suite):
    return config["evals"][suite]


def judge_data(w):
    return suite_data(EVAL_SUITES[w.suite].judge_inputs(suite_block(w.suite)))


def score_data(w):
    return suite_data(EVAL_SUITES[w.suite].score_inputs(suite_block(w.suite)))


def gold_input(w):
    return {"gold": GOLD_ITEMS} if GOLD_ITEMS else {}


def gold_arg(w):
    return f"--items {GOLD_ITEMS}" if GOLD_ITEMS else ""


rule judge:
    # lint advice kept: PYTHON (why: workflow/rules/common.smk)
    conda:
        "../envs/evaluate.yaml"
    wildcard_constraints:
        suite="|".join(JUDGED) or "NO_SUITE",
    input:
        unpack(gold_input),
        generations=lambda w: generation_file(w.model, w.suite),
        data=lambda w: list(judge_data(w)[0].values()),
    output:
        f"{R}/judgments/{{model}}/{{suite}}.jsonl",
    params:
        version=lambda w: EVAL_SUITES[w.suite].version,  # bumping a suite's version reruns its jobs
        judge_name=lambda w: judge_name(w.suite),
        judge=lambda w: as_json(config["judges"][judge_name(w.suite)]),
        settings=lambda w: as_json(suite_block(w.suite)),
        world=as_json(config.get("world")),
        data=lambda w: judge_data(w)[1],
        gold=gold_arg,
        cache=lambda w: f"{R}/judge_cache/{judge_name(w.suite)}/{w.model}/{w.suite}.jsonl",
    log:
        log_path("judge", "{model}/{suite}"),
    benchmark:
        benchmark_path("judge", "{model}/{suite}")
    shell:
        "{PYTHON} -m evals.judge --suite {wildcards.suite} --model {wildcards.model} --judge-name {params.judge_name} "
        "--judge-json {params.judge:q} --world-json {params.world:q} --settings-json {params.settings:q} "
        "--generations {input.generations} --data {params.data} {params.gold} --cache {params.cache} "
        "--out {output} > {log:q} 2>&1"


rule score:
    # lint advice kept: PYTHON (why: workflow/rules/common.smk)
    conda:
        "../envs/evaluate.yaml"
    wildcard_constraints:
        suite="|".join(JUDGED) or "NO_SUITE",
    input:
        unpack(gold_input),
        judgments=f"{R}/judgments/{{model}}/{{suite}}.jsonl",
        generations=lambda w: generation_file(w.model, w.suite),
        data=lambda w: list(score_data(w)[0].values()),
    output:
        f"{R}/scores/{{model}}/{{suite}}.json",
    params:
        version=lambda w: EVAL_SUITES[w.suite].version,
        settings=lambda w: as_json(suite_block(w.suite)),
        world=as_json(config.get("world")),
        data=lambda w: score_data(w)[1],
        gold=gold_arg,
    log:
        log_path("score", "{model}/{suite}"),
    benchmark:
        benchmark_path("score", "{model}/{suite}")
    shell:
        "{PYTHON} -m evals.score --suite {wildcards.suite} --model {wildcards.model} --judgments {input.judgments} "
        "--generations {input.generations} --data {params.data} {params.gold} --settings-json {params.settings:q} "
        "--world-json {params.world:q} --out {output} > {log:q} 2>&1"


rule score_harness:
    # lint advice kept: PYTHON (why: workflow/rules/common.smk)
    conda:
        "../envs/evaluate.yaml"
    wildcard_constraints:
        suite="|".join(HARNESS) or "NO_SUITE",
    input:
        generations=lambda w: generation_file(w.model, w.suite),
    output:
        score=f"{R}/scores/{{model}}/{{suite}}.json",
        lm_eval=f"{R}/scores/{{model}}/{{suite}}.lm_eval_results.json",
    params:
        version=lambda w: EVAL_SUITES[w.suite].version,
        settings=lambda w: as_json(suite_block(w.suite)),
        lm_eval=lambda w: os.path.join(os.path.dirname(generation_file(w.model, w.suite)), "lm_eval_results.json"),
    log:
        log_path("score", "{model}/{suite}"),
    benchmark:
        benchmark_path("score", "{model}/{suite}")
    shell:
        "{PYTHON} -m evals.score --suite {wildcards.suite} --model {wildcards.model} "
        "--generations {input.generations} --settings-json {params.settings:q} "
        "--keep {params.lm_eval}={output.lm_eval} --out {output.score} > {log:q} 2>&1"


rule leaderboard:
    # lint advice kept: PYTHON, seed (why: workflow/rules/common.smk)
    conda:
        "../envs/evaluate.yaml"
    wildcard_constraints:
        suite="|".join(LEADERBOARDS) or "NO_SUITE",
    input:
        generations=lambda w: [generation_file(m, w.suite) for m in MODELS],
        judgments=expand(f"{R}/judgments/{{model}}/{{{{suite}}}}.jsonl", model=MODELS),
        data=lambda w: list(score_data(w)[0].values()),
    output:
        f"{R}/scores/leaderboard/{{suite}}.json",
    params:
        version=lambda w: EVAL_SUITES[w.suite].version,
        models=" ".join(MODELS),
        settings=lambda w: as_json(suite_block(w.suite)),
        data=lambda w: score_data(w)[1],
    log:
        log_path("leaderboard", "{suite}"),
    benchmark:
        benchmark_path("leaderboard", "{suite}")
    shell:
        "{PYTHON} -m evals.leaderboard --suite {wildcards.suite} --models {params.models} "
        "--generations {input.generations} --judgments {input.judgments} --data {params.data} "
        "--settings-json {params.settings:q} --seed {config[seed]} --out {output} > {log:q} 2>&1"
