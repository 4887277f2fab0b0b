# Aggregation: tables from every score file, every suite's cross-model leaderboard and every checkpoint's provenance:
# one row per method variant, each cell the mean over its seeds with a 95 % CI (evals/aggregate.py seed_interval).


rule aggregate:
    # lint advice kept: PYTHON, prefix (why: workflow/rules/common.smk)
    conda:
        "../envs/evaluate.yaml"
    input:
        scores=expand(f"{R}/scores/{{model}}/{{suite}}.json", model=MODELS, suite=SUITES),
        leaderboards=expand(f"{R}/scores/leaderboard/{{suite}}.json", suite=LEADERBOARDS),
        checkpoints=[checkpoint_done(m) for m in MODELS],
    output:
        md=f"{R}/tables/methods.md",
        html=report(f"{R}/tables/methods.html", caption="../report/methods.rst", category="Tables"),
        csv=f"{R}/tables/methods.csv",
        json=f"{R}/tables/methods.json",
        per_seed=f"{R}/tables/per_seed.csv",  # every seed's value of every cell (long format), the cells' source
        compute=f"{R}/tables/compute.md",
        compute_html=report(f"{R}/tables/compute.html", caption="../report/compute.rst", category="Tables"),
        compute_csv=f"{R}/tables/compute.csv",
        table4=f"{R}/tables/table4.md",
        table5=f"{R}/tables/table5.md",
        table4_html=report(f"{R}/tables/table4.html", caption="../report/table4.rst", category="Tables"),
        table5_html=report(f"{R}/tables/table5.html", caption="../report/table5.rst", category="Tables"),
        table4_csv=f"{R}/tables/table4.csv",
        table5_csv=f"{R}/tables/table5.csv",
    params:
        models=" ".join(MODELS),
        models_dir=f"{R}/models",
        evals=as_json(config["evals"]),
        suites=" ".join(SUITES),
        micro_world="--micro-world" if "world" in config else "",
        out_dir=f"{R}/tables",
    log:
        log_path("aggregate"),
    benchmark:
        benchmark_path("aggregate")
    shell:
        "{PYTHON} -m evals.aggregate --scores {input.scores} --leaderboards {input.leaderboards} "
        "--models {params.models} --models-dir {params.models_dir} --evals-json {params.evals:q} --suites {params.suites} "
        "{params.micro_world} --out-dir {params.out_dir} > {log:q} 2>&1"


rule length_analysis:
    # lint advice kept: PYTHON, prefix, R (why: workflow/rules/common.smk)
    conda:
        "../envs/evaluate.yaml"
    input:
        scores=expand(f"{R}/scores/{{model}}/{{suite}}.json", model=MODELS, suite=SUITES),
        leaderboards=expand(f"{R}/scores/leaderboard/{{suite}}.json", suite=LEADERBOARDS),
        checkpoints=[checkpoint_done(m) for m in MODELS],
    output:
        table6=f"{R}/tables/table6.md",
        table6_html=report(f"{R}/tables/table6.html", caption="../report/table6.rst", category="Length bias"),
        table6_csv=f"{R}/tables/table6.csv",
        md=f"{R}/tables/length_analysis.md",
        html=report(f"{R}/tables/length_analysis.html", caption="../report/length_analysis.rst", category="Length bias"),
        json=f"{R}/tables/length_analysis.json",
        plot=report(f"{R}/tables/winrate_vs_length.png", caption="../report/winrate_vs_length.rst",
                    category="Length bias"),
        # written when the study has an iterative method
        **({"iteration_plot": report(f"{R}/tables/iterative_length.png", caption="../report/iterative_length.rst",
                                     category="Length bias")} if ITERATIVE_METHODS else {}),
    params:
        models=" ".join(MODELS),
        out_dir=f"{R}/tables",
        published=" ".join(sorted({b["published"] for b in config["evals"].values() if b.get("published")})),
        # micro world: the gold reward the over-optimisation curve needs (reward-model score vs gold)
        gold=f"--gold-reward-json '{as_json(config['world']['gold_reward'])}'" if "world" in config else "",
    log:
        log_path("length_analysis"),
    benchmark:
        benchmark_path("length_analysis")
    shell:
        "{PYTHON} -m evals.length_analysis --results {R} --models {params.models} --out-dir {params.out_dir} "
        "--published {params.published} {params.gold} > {log:q} 2>&1"
