# Validation, paths and input functions shared by every rule file.
import json
import sys

import os

from evals.registry import check_suite_blocks
from methods.registry import check_method_blocks
from pipeline.config import api_key_variables, check_api_keys, check_config, load_config_file, models
from pipeline.hub_data import MIRROR_ENV

for _configfile in workflow.configfiles:  # Snakemake's own YAML loading keeps the last of two equal keys silently
    load_config_file(_configfile)
check_config(config, source="config (after --configfile/--config overrides)",
             plugin_checks=[check_method_blocks, check_suite_blocks])
check_api_keys(config)

STUDY = config["study"]
R = f"results/{STUDY}"
PYTHON = sys.executable  # the interpreter running Snakemake: the project's environment, also in cluster jobs
MODELS = models(config)
SUITES = list(config["evals"])
API_KEY_VARIABLES = api_key_variables(config)  # checked by `envvars:` in the Snakefile, never written anywhere
if config.get("data", {}).get("mirror") and not os.environ.get(MIRROR_ENV):
    # The local hub mirror reaches every job (data, base model, lm-eval's datasets) as one environment variable.
    os.environ[MIRROR_ENV] = os.path.abspath(config["data"]["mirror"])

wildcard_constraints:
    model="|".join(MODELS),
    method="|".join(config["methods"]) or "NO_METHOD",
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
