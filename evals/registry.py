"""The suite registry: a config name under ``evals:`` maps to a suite module in ``evals/suites/`` that registered
itself with ``@register_suite``. The rules and the aggregate stage read a suite's declarations (its files, the data
each stage needs, its columns) from here, so adding a suite touches no rule and no table code.

    @register_suite
    class MTBench(ChatSuite):
        name = "mt_bench"
        version = "1"
        judge_format = "single_mt_bench"
        ...

Two families: a ``ChatSuite`` answers conversations (batched with every other chat suite in one model load),
is judged per (model, suite) and scored from its judgments; a ``HarnessSuite`` evaluates the already-loaded model
itself (lm-eval) in the same process and is scored from the harness' results. Importing this module and the suite
modules is light (no torch, no scikit-learn): heavy imports live inside the stage functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generator, Mapping

from pipeline.plugins import import_all, lookup

if TYPE_CHECKING:
    from evals.judges.base import Judge

SUITES_PACKAGE = "evals.suites"


@dataclass(frozen=True)
class Column:
    """One table column taken from a score file (or a cross-model leaderboard file).

    ``key``: the metric's key in the score file's ``metrics``; ``title``: the column title in methods.{md,csv};
    ``interval``: shown as ``v [lower, upper]`` (a confidence interval) instead of ``v ± stderr``;
    ``leaderboard``: read from ``scores/leaderboard/<suite>.json`` instead of the per-model score file;
    ``paper``: ``{table name: column title}`` for the published table shapes (``table4``, ``table5``);
    ``group``: tables sort columns by it, stably (-1: the micro world's gold metrics first, 1: lengths last).
    """

    key: str
    title: str
    digits: int = 1
    interval: bool = False
    leaderboard: bool = False
    paper: Mapping[str, str] = field(default_factory=dict)
    group: int = 0

    def in_paper(self, table: str) -> str | None:
        return self.paper.get(table)


# A chat suite's answering coroutine: it yields rounds of conversations (with generation overrides) and receives
# the answers of each round in order; its return value is the list of generation rows to write.
Round = tuple[list[list[dict]], dict[str, Any]]
AnswerRounds = Generator[Round, list[str], list[dict]]


class Suite:
    """What every suite declares. Data kinds are the data stage's file keys (world/data.py OUTPUTS)."""

    name: ClassVar[str]
    version: ClassVar[str]                       # bump on any change to how the suite generates, judges or scores
    generation_file: ClassVar[str]               # under generations/<model>/
    generation_data: ClassVar[tuple[str, ...]] = ()
    score_data: ClassVar[tuple[str, ...]] = ()
    judge_format: ClassVar[str | None] = None    # the oracle judge's answer format; None: no judge
    settings_schema: ClassVar[str | None] = None  # workflow/schemas/<name>.schema.yaml of its `evals.<suite>` block
    has_leaderboard: ClassVar[bool] = False      # a cross-model step (scores/leaderboard/<suite>.json)
    # The suite's own generation settings, over the config's `generation:` block (and under the suite's
    # `evals.<suite>.generation:` overrides): max_new_tokens, temperature, top_p.
    generation: ClassVar[dict[str, Any]] = {}

    def columns(self, settings: Mapping[str, Any]) -> list[Column]:
        """The table columns of this suite under its config block ``settings``."""
        raise NotImplementedError

    def caption(self, settings: Mapping[str, Any]) -> str:
        """One sentence under the tables saying how the suite's numbers were computed."""
        return ""

    def generation_inputs(self, settings: Mapping[str, Any]) -> tuple[str, ...]:
        """Data kinds the generation stage reads for this suite."""
        return self.generation_data

    def score_inputs(self, settings: Mapping[str, Any]) -> tuple[str, ...]:
        """Data kinds the score stage reads (besides the gold items)."""
        return self.score_data

    def score(self, model: str, generations: Path, judgments: Path | None, data: Mapping[str, Path],
              settings: Mapping[str, Any], world: Mapping[str, Any] | None) -> dict[str, Any]:
        """The score file's contents (schema ``score``)."""
        raise NotImplementedError

    @property
    def is_judged(self) -> bool:
        return self.judge_format is not None


class ChatSuite(Suite):
    """A suite of conversations answered by the model, judged per model, scored from the judgments."""

    judge_data: ClassVar[tuple[str, ...]] = ()
    generation_schema: ClassVar[str]
    judgment_schema: ClassVar[str]

    def answer(self, data: Mapping[str, Path], model: str, settings: Mapping[str, Any]) -> AnswerRounds:
        raise NotImplementedError

    def judge_inputs(self, settings: Mapping[str, Any]) -> tuple[str, ...]:
        """Data kinds the judge stage reads (besides the gold items)."""
        return self.judge_data

    def write_generations(self, path: Path, rows: list[dict]) -> None:
        from pipeline.io import write_json, write_jsonl

        if path.suffix == ".jsonl":
            write_jsonl(path, rows, schema=self.generation_schema)
        else:
            write_json(path, rows, schema=self.generation_schema)

    def read_judged(self, generations: Path, judgments: Path | None) -> tuple[list[dict], list[dict]]:
        """What every chat suite's ``score`` opens with: (judgment rows, generation rows), schema-checked; no
        judgment file or an empty one is an InputError naming the file."""
        from pipeline.io import InputError, read_json, read_jsonl

        if judgments is None:
            raise InputError(f"suite {self.name}: no judgments file given for {generations}")
        rows = read_jsonl(judgments, schema=self.judgment_schema)
        if not rows:
            raise InputError(f"{judgments}: no judgments")
        reader = read_jsonl if generations.suffix == ".jsonl" else read_json
        return rows, reader(generations, schema=self.generation_schema)

    @staticmethod
    def judges(rows: list[dict]) -> list[str]:
        """The judge ids that made the judgment rows (a row's ``judge``, or its first element as FastChat's
        ``[judge, prompt]``); rows scored without a call (AlpacaEval's identical outputs) name none. Score files
        record them so that every caption names the judge behind its numbers."""
        ids = {(row["judge"][0] if isinstance(row["judge"], list) else row["judge"]) for row in rows}
        return sorted(i for i in ids if not i.startswith("none ("))

    def judge(self, judge: "Judge", model: str, generations: Path, data: Mapping[str, Path],
              settings: Mapping[str, Any]) -> list[dict]:
        """One judgment row per judge call (or per game pair), in the upstream format plus our bookkeeping."""
        raise NotImplementedError

    def leaderboard(self, generations: Mapping[str, Path], judgments: Mapping[str, Path], data: Mapping[str, Path],
                    settings: Mapping[str, Any], seed: int) -> dict[str, Any]:
        """Cross-model scores (only where ``has_leaderboard``): model -> metrics."""
        raise NotImplementedError


class HarnessSuite(Suite):
    """A suite the harness runs on the loaded model in the generation process (lm-eval)."""

    def run(self, backend: Any, out_dir: Path, data: Mapping[str, Path], model: str,
            settings: Mapping[str, Any], seed: int) -> None:
        raise NotImplementedError


_REGISTRY: dict[str, Suite] = {}


def register_suite(cls: type[Suite]) -> type[Suite]:
    """Class decorator: register one instance under ``cls.name``; a taken name raises."""
    for attr in ("name", "version", "generation_file"):
        if not isinstance(getattr(cls, attr, None), str):
            raise TypeError(f"suite class {cls.__name__} must declare {attr!r} as a string")
    if cls.name in _REGISTRY:
        raise ValueError(f"suite {cls.name!r} is already registered (by {type(_REGISTRY[cls.name]).__module__})")
    _REGISTRY[cls.name] = cls()
    return cls


def registered() -> dict[str, Suite]:
    """Import every module of evals/suites/ and return all registered suites."""
    import_all(SUITES_PACKAGE)
    return dict(_REGISTRY)


def get_suite(name: str) -> Suite:
    """The suite registered as ``name`` (imports only evals/suites/<name>.py when it exists)."""
    return lookup(_REGISTRY, SUITES_PACKAGE, name, "suite")


def configured(config: Mapping[str, Any]) -> dict[str, Suite]:
    """The suites of a config's ``evals:`` block, in config order."""
    return {name: get_suite(name) for name in config["evals"]}


def generation_settings(suite: Suite, settings: Mapping[str, Any]) -> dict[str, Any]:
    """Per-call generation overrides of a suite: its declared settings, then ``evals.<suite>.generation``."""
    return {**suite.generation, **dict(settings.get("generation") or {})}


def check_suite_blocks(config: Mapping[str, Any], source: str) -> None:
    """Every key of ``evals:`` names a registered suite, a judged suite's block names its judge, and a block matches
    the suite's ``settings_schema`` when it declares one; errors name the config key (a ``plugin_checks`` of
    pipeline.config.check_config, so a new suite needs no edit to the config schema)."""
    from pipeline.config import ConfigError
    from pipeline.io import InputError, validate

    for name, block in config["evals"].items():
        try:
            suite = get_suite(name)
        except KeyError as err:
            raise ConfigError(f"{source}: key evals.{name}: {err.args[0]}") from None
        if suite.is_judged and "judge" not in block:
            raise ConfigError(f"{source}: key evals.{name}.judge: required (suite {name!r} is judged)")
        if suite.settings_schema is not None:
            try:
                validate(block, suite.settings_schema, f"{source}: key evals.{name}")
            except InputError as err:
                raise ConfigError(str(err)) from None
