# Judging and scoring: no model is loaded here (the oracle and HTTP judges need no torch).


def judge_block(suite):
    return config["judges"][config["evals"][suite]["judge"]]


rule judge_alpaca_eval:
    input:
        generations=f"{R}/generations/{{model}}/alpaca_eval.json",
        baseline=data_file("alpaca_eval_baseline"),
        eval_items=data_file("eval_items"),
    output:
        f"{R}/judgments/{{model}}/alpaca_eval.jsonl",
    params:
        judge_name=config["evals"].get("alpaca_eval", {}).get("judge", ""),
        judge=lambda w: as_json(judge_block("alpaca_eval")),
        world=as_json(config.get("world")),
        cache=lambda w: f"{R}/judge_cache/{config['evals']['alpaca_eval']['judge']}/{w.model}/alpaca_eval.jsonl",
    log:
        log_path("judge", "{model}/alpaca_eval"),
    benchmark:
        benchmark_path("judge", "{model}/alpaca_eval")
    shell:
        "{PYTHON} -m evals.judge --suite alpaca_eval --model {wildcards.model} --judge-name {params.judge_name} "
        "--judge-json {params.judge:q} --world-json {params.world:q} --generations {input.generations} "
        "--baseline {input.baseline} --items {input.eval_items} --cache {params.cache} --out {output} 2> {log:q}"


rule score_alpaca_eval:
    input:
        judgments=f"{R}/judgments/{{model}}/alpaca_eval.jsonl",
        generations=f"{R}/generations/{{model}}/alpaca_eval.json",
        eval_items=data_file("eval_items"),
    output:
        f"{R}/scores/{{model}}/alpaca_eval.json",
    params:
        world=as_json(config.get("world")),
    log:
        log_path("score", "{model}/alpaca_eval"),
    benchmark:
        benchmark_path("score", "{model}/alpaca_eval")
    shell:
        "{PYTHON} -m evals.score --suite alpaca_eval --model {wildcards.model} --judgments {input.judgments} "
        "--generations {input.generations} --items {input.eval_items} --world-json {params.world:q} "
        "--out {output} 2> {log:q}"
