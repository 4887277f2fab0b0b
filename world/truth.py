"""The micro world's hidden truth and its biased observers.

- ``gold_reward``: correct and concise is best. Never shown to any method.
- ``synthesize``: candidate answers of known quality and style (feeds SFT data, preference pairs, baselines).
- ``preference_probability``: Bradley-Terry on the gold reward plus a verbosity bias; the annotator (the
  stand-in for human labels) and the oracle judge (the stand-in for GPT-4) are this function with their own
  temperature and bias.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass

from world.tasks import ANSWER_PREFIX, WORDS, is_correct

STYLES = ("concise", "verbose", "wrong", "wrong_verbose", "truncated", "off_format")
OPENERS = ("Sure!", "Of course!", "Great question!", "Happy to help.", "Certainly!", "Let me see.")
FILLERS = ("Let me think about this carefully.", "Here is my answer.", "This one is easy.", "I worked it out.")
CLOSERS = ("I hope this helps!", "Let me know if you need more.", "Have a nice day!", "Glad to help.")
OFF_FORMAT = ("I am not sure.", "That is a good question.", "Please ask again.", "I cannot tell.")


@dataclass(frozen=True)
class GoldReward:
    """r*(x, y) = 1[correct] - length_penalty * max(0, len(y) - len(gold)) / length_scale (characters)."""

    length_penalty: float
    length_scale: float

    def __call__(self, response: str, gold: str) -> float:
        excess = max(0, len(response.strip()) - len(gold)) / self.length_scale
        return float(is_correct(response, gold)) - self.length_penalty * excess


@dataclass(frozen=True)
class BiasedPreference:
    """P(y1 > y2) = sigmoid((r*(y1) - r*(y2)) / temperature + verbosity_bias * tanh((len1 - len2) / length_scale))."""

    temperature: float
    verbosity_bias: float
    length_scale: float

    def logit(self, r1: float, r2: float, len1: int, len2: int) -> float:
        return (r1 - r2) / self.temperature + self.verbosity_bias * math.tanh((len1 - len2) / self.length_scale)

    def probability(self, r1: float, r2: float, len1: int, len2: int) -> float:
        return 1.0 / (1.0 + math.exp(-self.logit(r1, r2, len1, len2)))


def stable_uniform(*parts: object) -> float:
    """A deterministic number in [0, 1) from hashed inputs: the world's coin, reproducible across processes."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _perturb(gold: str, rng: random.Random) -> str:
    if gold.lstrip("-").isdigit():
        return str(int(gold) + rng.choice([-1, 1]) * rng.randint(1, 9))
    tokens = gold.split()
    if len(set(tokens)) > 1 and rng.random() < 0.5:
        i, j = rng.sample(range(len(tokens)), 2)
        tokens[i], tokens[j] = tokens[j], tokens[i]
        if tokens != gold.split():
            return " ".join(tokens)
    i = rng.randrange(len(tokens))
    replacement = rng.choice(WORDS).upper() if gold.isupper() else rng.choice(WORDS)
    tokens[i] = replacement if not tokens[i].isdigit() else str((int(tokens[i]) + 1) % 10)
    wrong = " ".join(tokens)
    return wrong if wrong != gold else wrong + " " + tokens[0]


def _verbose(answer: str, rng: random.Random) -> str:
    parts = [rng.choice(OPENERS)]
    if rng.random() < 0.5:
        parts.append(rng.choice(FILLERS))
    parts.append(f"{ANSWER_PREFIX}{answer}.")
    parts.extend(rng.sample(CLOSERS, rng.randint(1, 2)))
    return " ".join(parts)


def synthesize(instruction: str, gold: str, style: str, rng: random.Random) -> str:
    """One candidate answer of a given style for an instruction with a known gold answer."""
    if style == "concise":
        return gold
    if style == "verbose":
        return _verbose(gold, rng)
    if style == "wrong":
        return _perturb(gold, rng)
    if style == "wrong_verbose":
        return _verbose(_perturb(gold, rng), rng)
    if style == "truncated":
        return gold[: max(1, len(gold) // 2)] if len(gold) > 1 else _perturb(gold, rng)
    if style == "off_format":
        return rng.choice(OFF_FORMAT)
    raise ValueError(f"unknown response style {style!r}; expected one of {STYLES}")


def sample_style(weights: dict[str, float], rng: random.Random) -> str:
    styles = list(weights)
    return rng.choices(styles, weights=[weights[s] for s in styles])[0]
