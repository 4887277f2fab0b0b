# Data stage: the micro world's splits (or, in real studies, hub datasets in the same formats).
from world.data import OUTPUTS as DATA_FILES


def data_file(kind):
    return f"{R}/data/{DATA_FILES[kind]}"


rule data:
    output:
        [data_file(kind) for kind in DATA_FILES],
    params:
        world=as_json(config.get("world", {})),
        out_dir=f"{R}/data",
    log:
        log_path("data"),
    benchmark:
        benchmark_path("data")
    shell:
        "{PYTHON} -m world.data --config-json {params.world:q} --out-dir {params.out_dir} > {log:q} 2>&1"
