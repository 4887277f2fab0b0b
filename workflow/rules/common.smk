# Validation, paths and input functions shared by every rule file.
#
# `snakemake --lint` advice kept on purpose, named where it applies by a "lint advice kept" comment:
#   PYTHON     the shell runs {PYTHON}: the interpreter is the deployment, not a parameter (as a param, moving the
#              environment would rerun every job); with --use-conda it is `python` of the rule's workflow/envs/ file.
#   seed       the shell reads {config[seed]}: the one study-wide seed; another seed is another study (`study:`).
#   prefix     a param names a folder that prefixes a declared output or input: checkpoint folders are written
#              whole and provenance.json (written last) is the declared file; the profiles assume a shared filesystem.
#   R          length_analysis reads the study folder ({R}) for the score and provenance files it declares as input.
#   functions  a stage's input functions stay beside its rules (one .smk per stage), so this file stays small.
import json
import os
import re
import sys

import os

from evals.registry import check_suite_blocks
from methods.registry import check_method_blocks
from pipeline.config import (api_key_variables, check_api_keys, check_config, expand_sweeps,
                             load_config_file, models)
from pipeline.hub_data import MIRROR_ENV

for _configfile in workflow.configfiles:  # Snakemake's own YAML loading keeps the last of two equal keys silently
    load_config_file(_configfile)
check_config(config, source="config (after --configfile/--config overrides)",
             plugin_checks=[check_method_blocks, check_suite_blocks])
check_api_keys(config)
config["methods"] = expand_sweeps(config["methods"])  # a swept key (a list of λ): one model, one block per value

STUDY = config["study"]
R = f"results/{STUDY}"
# The interpreter running Snakemake (the project's environment, also in cluster jobs), or with --use-conda the
# `python` of each rule's conda environment (workflow/envs/).
PYTHON = "python" if "CONDA" in {m.name for m in workflow.deployment_settings.deployment_method} else sys.executable
MODELS = models(config)
SUITES = list(config["evals"])
API_KEY_VARIABLES = api_key_variables(config)  # checked by `envvars:` in the Snakefile, never written anywhere
if config.get("data", {}).get("mirror") and not os.environ.get(MIRROR_ENV):
    # The local hub mirror reaches every job (data, base model, lm-eval's datasets) as one environment variable.
    os.environ[MIRROR_ENV] = os.path.abspath(config["data"]["mirror"])

wildcard_constraints:
    model="|".join(map(re.escape, MODELS)),
    method="|".join(map(re.escape, config["methods"])) or "NO_METHOD",
    suite="|".join(SUITES),


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
    return [f"{R}/tables/methods.md", f"{R}/tables/methods.csv", f"{R}/tables/length_analysis.md",
            checkpoint_done("reward_model")]
