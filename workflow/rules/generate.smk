# Generation: one job per model answers every suite (one model load).


def model_dir(model):
    return f"{R}/models/{model}"


rule generate:
    input:
        checkpoint=lambda w: checkpoint_done(w.model),
        eval_items=data_file("eval_items"),
    output:
        alpaca_eval=f"{R}/generations/{{model}}/alpaca_eval.json",
    params:
        model_dir=lambda w: model_dir(w.model),
        generation=as_json(config["generation"]),
        out_dir=f"{R}/generations/{{model}}",
        suites=" ".join(SUITES),
    threads: 1
    log:
        log_path("generate", "{model}"),
    benchmark:
        benchmark_path("generate", "{model}")
    shell:
        "OMP_NUM_THREADS={threads} {PYTHON} -m evals.generate --model-dir {params.model_dir} --model {wildcards.model} "
        "--items {input.eval_items} --suites {params.suites} --generation-json {params.generation:q} "
        "--seed {config[seed]} --out-dir {params.out_dir} 2> {log:q}"
