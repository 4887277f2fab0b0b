# Alignment methods benchmark: one DAG from data to comparison tables. Wiring only; see workflow/rules/.
from snakemake.utils import min_version

min_version("9.0")


# The default study unless --configfile names others: a complete study config, then any overlays (config/overlays/).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


# `snakemake --report results/<study>/report.html`: every table and plot, captioned (workflow/report/).
report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"


# API keys of HTTP judges: required before any job runs, passed to cluster jobs.
envvars:
    *API_KEY_VARIABLES,


include: "workflow/rules/download.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/iterative.smk"
include: "workflow/rules/generate.smk"
include: "workflow/rules/judge.smk"
include: "workflow/rules/aggregate.smk"


# On the submit node under any executor: no GPU, and HTTP judges need the internet that compute nodes may lack.
localrules:
    evaluate,
    leaderboard,
    aggregate,
    length_analysis,


# A local run's jobs fork from one warm interpreter (workflow/rules/common.smk PYTHON); cluster jobs start their own
# (a submit node's memory is not ours to fill with torch).
onstart:
    if workflow.local_exec and not CONDA:
        WARM_SERVER.start()


onsuccess:
    WARM_SERVER.stop()


onerror:
    WARM_SERVER.stop()


rule all:
    input:
        final_targets(),
    default_target: True
