# Judging and scoring, one job per model (all suites), and the cross-model leaderboards: no model is loaded here
# (the oracle and HTTP judges need no torch).
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


def gold_input(w):
    return {"gold": GOLD_ITEMS} if GOLD_ITEMS else {}


def score_data(w):
    return suite_data(EVAL_SUITES[w.suite].score_inputs(suite_block(w.suite)))


# The data-stage files any suite's judging or scoring reads.
EVALUATION_DATA = suite_data(dict.fromkeys(
    kind for name, suite in EVAL_SUITES.items()
    for kind in (*(suite.judge_inputs(suite_block(name)) if suite.is_judged else ()), *suite.score_inputs(suite_block(name)))
))


rule evaluate:
    # One process per model judges and scores every suite (evals/evaluate.py): interpreter and imports paid once.
    # lint advice kept: PYTHON, prefix (why: workflow/rules/common.smk)
    conda:
        "../envs/evaluate.yaml"
    input:
        unpack(gold_input),
        generations=lambda w: [generation_file(w.model, suite) for suite in EVAL_SUITES],
        data=list(EVALUATION_DATA[0].values()),
    output:
        judgments=[f"{R}/judgments/{{model}}/{suite}.jsonl" for suite in JUDGED],
        scores=[f"{R}/scores/{{model}}/{suite}.json" for suite in SUITES],
        lm_eval=[f"{R}/scores/{{model}}/{suite}.lm_eval_results.json" for suite in HARNESS],
    params:
        versions=as_json({name: suite.version for name, suite in EVAL_SUITES.items()}),  # a bump reruns evaluation
        evals=as_json(config["evals"]),
        judges=as_json({judge_name(suite): config["judges"][judge_name(suite)] for suite in JUDGED}),
        world=as_json(config.get("world")),
        data=EVALUATION_DATA[1],
        gold=f"--items {GOLD_ITEMS}" if GOLD_ITEMS else "",
        generations=f"{R}/generations/{{model}}",
        judge_cache=f"{R}/judge_cache",
        judgments=f"{R}/judgments/{{model}}",
        scores=f"{R}/scores/{{model}}",
    log:
        log_path("evaluate", "{model}"),
    benchmark:
        benchmark_path("evaluate", "{model}")
    shell:
        "{PYTHON} -m evals.evaluate --model {wildcards.model} --evals-json {params.evals:q} "
        "--judges-json {params.judges:q} --world-json {params.world:q} --data {params.data} {params.gold} "
        "--generations-dir {params.generations} --judge-cache {params.judge_cache} "
        "--judgments-dir {params.judgments} --scores-dir {params.scores} > {log:q} 2>&1"


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
