# Validation, paths and input functions shared by every rule file.
#
# `snakemake --lint` advice kept on purpose, named where it applies by a "lint advice kept" comment:
#   PYTHON     the shell runs {PYTHON}: the interpreter is the deployment, not a parameter (as a param, moving the
#              environment would rerun every job); with --use-conda it is `python` of the rule's workflow/envs/ file.
#   seed       the shell reads {config[seed]}: the shared stage's seed (data, base, SFT, reward model, judges);
#              another shared seed is another study (`study:`). The method stage's seeds are the {seed} wildcard.
#   prefix     a param names a folder that prefixes a declared output or input: checkpoint folders are written
#              whole and provenance.json (written last) is the declared file; the profiles assume a shared filesystem.
#   R          length_analysis reads the study folder ({R}) for the score and provenance files it declares as input.
#   functions  a stage's input functions stay beside its rules (one .smk per stage), so this file stays small.
import json
import os
import re
import sys

from evals.registry import check_suite_blocks
from methods.registry import check_method_blocks
from pipeline.config import (api_key_variables, check_api_keys, check_config, expand_sweeps,
                             load_config_file, models, seeded_name, seeds_from_command_line, seeds_of,
                             split_seeded)
from pipeline.hub_data import MIRROR_ENV
from pipeline.warm import WarmServer

for _configfile in workflow.configfiles:  # Snakemake's own YAML loading keeps the last of two equal keys silently
    load_config_file(_configfile)
seeds_from_command_line(config)
check_config(config, source="config (after --configfile/--config overrides)",
             plugin_checks=[check_method_blocks, check_suite_blocks])
check_api_keys(config)
config["methods"] = expand_sweeps(config["methods"])  # a sweep (a list of λ, of best-of-n's n): one model per value

STUDY = config["study"]
R = f"results/{STUDY}"
# The interpreter running Snakemake (the project's environment, also in cluster jobs), or with --use-conda the
# `python` of each rule's conda environment (workflow/envs/). Without conda, `-m pipeline.warm` runs a local job in a
# fork of this run's warm server (the Snakefile's onstart; torch and friends imported once, not once per job) and
# any other job, e.g. on a cluster node, as a plain `python -m` (pipeline/warm.py; ALIGNBENCH_WARM=0 turns it off).
CONDA = "CONDA" in {m.name for m in workflow.deployment_settings.deployment_method}
PYTHON = "python" if CONDA else f"{sys.executable} -m pipeline.warm"
WARM_SERVER = WarmServer(key=R, log=f"{R}/logs/warm_server.log")
MODELS = models(config)  # "sft" and every <variant>-s<seed> (pipeline/config.py seeded_name)
SEEDS = seeds_of(config)  # the method stage's seeds: the {seed} wildcard of the training rules
SUITES = list(config["evals"])
API_KEY_VARIABLES = api_key_variables(config)  # checked by `envvars:` in the Snakefile, never written anywhere
if config.get("data", {}).get("mirror") and not os.environ.get(MIRROR_ENV):
    # The local hub mirror reaches every job (data, base model, lm-eval's datasets) as one environment variable.
    os.environ[MIRROR_ENV] = os.path.abspath(config["data"]["mirror"])

wildcard_constraints:
    model="|".join(map(re.escape, MODELS)),
    method="|".join(map(re.escape, config["methods"])) or "NO_METHOD",
    suite="|".join(SUITES),
    seed=r"\d+",


def as_json(obj):
    return json.dumps(obj, sort_keys=True)


def log_path(rule_name, pattern=""):
    return f"{R}/logs/{rule_name}/{pattern or 'all'}.log"


def benchmark_path(rule_name, pattern=""):
    return f"{R}/benchmarks/{rule_name}/{pattern or 'all'}.tsv"


def checkpoint_done(model):
    """A checkpoint folder is complete once its provenance.json is written (last, after the weights)."""
    return f"{R}/models/{model}/provenance.json"


def final_targets():
    """Every file of the study, not only the tables. Snakemake rebuilds a missing intermediate file only when a target
    asks for it: a checkpoint whose provenance.json a killed forced rerun had already removed was otherwise left
    missing ("Nothing to be done") while the tables still named its hash. Called after every rule file is included."""
    iteration_files = [f"{R}/models/{seeded_name(m, s)}/iter{t}/provenance.json"
                       for m in ITERATIVE_METHODS for s in SEEDS for t in iterations(m)]
    iteration_files += [f"{iterative_work(seeded_name(m, s), t)}/{name}" for m in ITERATIVE_METHODS for s in SEEDS
                        for t in iterations(m) for name in ("samples.jsonl", "stats.json")]   # the iterative outputs
    return [
        *rules.data.output,
        *[checkpoint_done(m) for m in ["base", "reward_model", *MODELS]],   # sft and every <variant>-s<seed>
        *iteration_files,
        *[generation_file(m, s) for m in MODELS for s in EVAL_SUITES],
        *[f"{R}/judgments/{m}/{s}.jsonl" for m in MODELS for s in JUDGED],
        *[f"{R}/scores/{m}/{s}.json" for m in MODELS for s in SUITES],
        *[f"{R}/scores/{m}/{s}.lm_eval_results.json" for m in MODELS for s in HARNESS],
        *[f"{R}/scores/leaderboard/{s}.json" for s in LEADERBOARDS],
        *rules.aggregate.output,
        *rules.length_analysis.output,
    ]
