# Training: the base model, the one SFT checkpoint, and every method from it (generic, via the registry), once per
# seed of `seeds:` as the model <method>-s<seed> (pipeline/config.py seeded_name).
# lint advice kept: functions (why: workflow/rules/common.smk)
from methods.registry import get_method


def launch_options():
    """methods/launch.py options from the config's `launch:` block: one process per GPU the job gets, else
    launch.cpu_processes; an accelerate config (FSDP, DDP) for several GPUs."""
    launch = config.get("launch", {})
    options = f"--cpu-processes {int(launch.get('cpu_processes', 1))}"
    if launch.get("accelerate_config"):
        options += f" --accelerate-config {launch['accelerate_config']}"
    return options


# The micro base model is pretrained on the world's text; a hub base model (`base.hub_id`) is loaded as is.
BASE_DATA = {"pretrain": data_file("pretrain"), "sft": data_file("sft")} if "hub_id" not in config["base"] else {}


rule base:
    # lint advice kept: PYTHON, seed, prefix (why: workflow/rules/common.smk)
    conda:
        "../envs/train.yaml"
    input:
        DOWNLOADED,
        **BASE_DATA,
    output:
        checkpoint_done("base"),
    params:
        launch=launch_options(),
        block=as_json(config["base"]),
        data=" ".join(f"--{kind}-data {path}" for kind, path in BASE_DATA.items()),
        out_dir=f"{R}/models/base",
    threads: 2
    log:
        log_path("base"),
    benchmark:
        benchmark_path("base")
    shell:
        "OMP_NUM_THREADS={threads} {PYTHON} -m methods.launch {params.launch} -- "
        "methods.base_model --config-json {params.block:q} --seed {config[seed]} "
        "{params.data} --out-dir {params.out_dir} > {log:q} 2>&1"


rule sft:
    # lint advice kept: PYTHON, seed, prefix (why: workflow/rules/common.smk)
    conda:
        "../envs/train.yaml"
    input:
        base=checkpoint_done("base"),
        sft=data_file("sft"),
    output:
        checkpoint_done("sft"),
    params:
        launch=launch_options(),
        block=as_json(config["sft"]),
        base=f"{R}/models/base",
        out_dir=f"{R}/models/sft",
    threads: 2
    log:
        log_path("sft"),
    benchmark:
        benchmark_path("sft")
    shell:
        "OMP_NUM_THREADS={threads} {PYTHON} -m methods.launch {params.launch} -- "
        "methods.train --method sft --block-json {params.block:q} --seed {config[seed]} "
        "--policy {params.base} --reference {params.base} --data sft={input.sft} "
        "--out-dir {params.out_dir} > {log:q} 2>&1"


def spec_of(method):
    """The registered method a config block trains with (its `module`, else its own name)."""
    return get_method(config["methods"][method].get("module", method))


# Methods whose module declares family "iterative" run through workflow/rules/iterative.smk, family "inference"
# (no training: a rule over the SFT model, e.g. best-of-n) through `inference_rule`, the rest through `train`.
ITERATIVE_METHODS = [m for m in config["methods"] if spec_of(m).family == "iterative"]
INFERENCE_METHODS = [m for m in config["methods"] if spec_of(m).family == "inference"]
GENERIC_METHODS = [m for m in config["methods"] if m not in ITERATIVE_METHODS + INFERENCE_METHODS]


def method_spec(wildcards):
    return spec_of(wildcards.method)


def method_data(wildcards):
    return {kind: data_file(kind) for kind in method_spec(wildcards).data}


def method_inputs(wildcards):
    inputs = {"sft": checkpoint_done("sft"), **method_data(wildcards)}
    if method_spec(wildcards).needs_reward_model:
        inputs["reward_model"] = checkpoint_done("reward_model")
    return inputs


def method_args(wildcards):
    data = " ".join(f"{kind}={path}" for kind, path in method_data(wildcards).items())
    reward = f"--reward-model {R}/models/reward_model" if method_spec(wildcards).needs_reward_model else ""
    return f"--data {data} {reward}"


rule train:
    # lint advice kept: PYTHON (why: workflow/rules/common.smk)
    conda:
        "../envs/train.yaml"
    wildcard_constraints:
        method="|".join(GENERIC_METHODS) or "NO_METHOD",
    input:
        unpack(method_inputs),
    output:
        checkpoint_done("{method}-s{seed}"),
    params:
        launch=launch_options(),
        block=lambda w: as_json(config["methods"][w.method]),
        args=method_args,
        sft=f"{R}/models/sft",
        out_dir=f"{R}/models/{{method}}-s{{seed}}",
    threads: 1
    log:
        log_path("train", "{method}-s{seed}"),
    benchmark:
        benchmark_path("train", "{method}-s{seed}")
    shell:
        "OMP_NUM_THREADS={threads} {PYTHON} -m methods.launch {params.launch} -- "
        "methods.train --method {wildcards.method} --block-json {params.block:q} "
        "--seed {wildcards.seed} --policy {params.sft} --reference {params.sft} {params.args} "
        "--out-dir {params.out_dir} > {log:q} 2>&1"


rule inference_rule:
    # An inference-time method's folder: its rule and provenance (seconds, no GPU); generation applies the rule.
    # lint advice kept: PYTHON (why: workflow/rules/common.smk)
    conda:
        "../envs/train.yaml"
    wildcard_constraints:
        method="|".join(INFERENCE_METHODS) or "NO_METHOD",
    input:
        unpack(method_inputs),
    output:
        checkpoint_done("{method}-s{seed}"),
    params:
        block=lambda w: as_json(config["methods"][w.method]),
        args=method_args,
        sft=f"{R}/models/sft",
        out_dir=f"{R}/models/{{method}}-s{{seed}}",
    localrule: True
    log:
        log_path("inference_rule", "{method}-s{seed}"),
    benchmark:
        benchmark_path("inference_rule", "{method}-s{seed}")
    shell:
        "{PYTHON} -m methods.train --method {wildcards.method} --block-json {params.block:q} "
        "--seed {wildcards.seed} --policy {params.sft} --reference {params.sft} {params.args} "
        "--out-dir {params.out_dir} > {log:q} 2>&1"


rule reward_model:
    # lint advice kept: PYTHON, seed, prefix (why: workflow/rules/common.smk)
    conda:
        "../envs/train.yaml"
    input:
        sft=checkpoint_done("sft"),
        prefs=data_file("rm_prefs"),
    output:
        checkpoint_done("reward_model"),
    params:
        launch=launch_options(),
        block=as_json(config["reward_model"]),
        sft=f"{R}/models/sft",
        out_dir=f"{R}/models/reward_model",
    threads: 1
    log:
        log_path("reward_model"),
    benchmark:
        benchmark_path("reward_model")
    shell:
        "OMP_NUM_THREADS={threads} {PYTHON} -m methods.launch {params.launch} -- "
        "methods.reward_model --block-json {params.block:q} "
        "--seed {config[seed]} --sft {params.sft} --prefs {input.prefs} --out-dir {params.out_dir} > {log:q} 2>&1"
