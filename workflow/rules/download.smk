# Download stage of real studies (config key `data`; the micro world needs none): one local job on the submit node
# fetches every hub asset into one cache (pipeline/download.py), and every other job reads it offline: HF_HOME,
# HF_HUB_OFFLINE=1, HF_DATASETS_OFFLINE=1 and the data stage's mirror root are set here, in Snakemake's own
# environment, which local jobs inherit and Slurm jobs receive (sbatch exports it; the job's Snakemake sets them too).
import os

from pipeline.download import MIRROR_DIR
from pipeline.hub_data import MIRROR_ENV

DOWNLOADED = []  # the inputs that make a job wait for the download (the data stage and the base model)

if "data" in config:
    HUB_CACHE = os.path.abspath(os.path.expanduser(
        config.get("download", {}).get("cache") or os.environ.get("HF_HOME") or "~/.cache/huggingface"))
    CACHE_MIRROR = os.path.join(HUB_CACHE, MIRROR_DIR)
    # Where the download reads from: the hub, or a site's mirror (as the data stage reads one); not our own copy.
    SOURCE_MIRROR = next((m for m in (os.environ.get(MIRROR_ENV), config["data"].get("mirror"))
                          if m and os.path.abspath(m) != CACHE_MIRROR), None)
    os.environ.update({"HF_HOME": HUB_CACHE, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                       MIRROR_ENV: CACHE_MIRROR})
    DOWNLOADED = [f"{R}/download.json"]

    rule download:
        output:
            f"{R}/download.json",
        params:
            config=as_json({key: config[key] for key in ("data", "base", "reward_model", "evals")}),
            cache=HUB_CACHE,
            mirror=f"--mirror {SOURCE_MIRROR}" if SOURCE_MIRROR else "",
        localrule: True
        log:
            log_path("download"),
        benchmark:
            benchmark_path("download")
        shell:
            "{PYTHON} -m pipeline.download --config-json {params.config:q} --cache {params.cache:q} {params.mirror} "
            "--out {output} > {log:q} 2>&1"
