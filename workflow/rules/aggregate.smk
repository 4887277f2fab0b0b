# Aggregation: tables from every score file and every checkpoint's provenance.


rule aggregate:
    input:
        scores=expand(f"{R}/scores/{{model}}/{{suite}}.json", model=MODELS, suite=SUITES),
        checkpoints=[checkpoint_done(m) for m in MODELS],
    output:
        md=f"{R}/tables/methods.md",
        csv=f"{R}/tables/methods.csv",
        json=f"{R}/tables/methods.json",
    params:
        models=" ".join(MODELS),
        models_dir=f"{R}/models",
        out_dir=f"{R}/tables",
    log:
        log_path("aggregate"),
    benchmark:
        benchmark_path("aggregate")
    shell:
        "{PYTHON} -m pipeline.aggregate --scores {input.scores} --models {params.models} "
        "--models-dir {params.models_dir} --out-dir {params.out_dir} 2> {log:q}"
