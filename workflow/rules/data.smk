# Data stage: the micro world's splits (config key `world`) or, in real studies, hub datasets in the same formats
# (config key `data`, pipeline/hub_data.py). Which one runs follows from the config, not from the study's name.
# lint advice kept: functions (why: workflow/rules/common.smk)
if "world" in config:
    from world.data import OUTPUTS as DATA_FILES

    DATA_ENTRY = "world.data"
    DATA_BLOCK = config["world"]
    DATA_ARGS = ""  # the world has its own seed
else:
    from pipeline.hub_data import outputs

    DATA_ENTRY = "pipeline.hub_data"
    DATA_BLOCK = config["data"]
    DATA_FILES = outputs(DATA_BLOCK)
    DATA_ARGS = f"--seed {config['seed']}"  # seeds the optional row shuffles


def data_file(kind):
    if kind not in DATA_FILES:
        raise ValueError(f"data file {kind!r} is not written by {DATA_ENTRY} (it writes {sorted(DATA_FILES)})")
    return f"{R}/data/{DATA_FILES[kind]}"


rule data:
    # lint advice kept: PYTHON, prefix (why: workflow/rules/common.smk)
    conda:
        "../envs/data.yaml"
    input:
        DOWNLOADED,
    output:
        [data_file(kind) for kind in DATA_FILES],
    params:
        block=as_json(DATA_BLOCK),
        entry=DATA_ENTRY,
        args=DATA_ARGS,
        out_dir=f"{R}/data",
    log:
        log_path("data"),
    benchmark:
        benchmark_path("data")
    shell:
        "{PYTHON} -m {params.entry} --config-json {params.block:q} {params.args} --out-dir {params.out_dir} > {log:q} 2>&1"
