"""Seeded instruction tasks with checkable gold answers: the ground truth of the micro world.

Each family turns a random draw into (instruction, gold answer). Two-turn items add a follow-up turn whose
gold answer is computed from the first turn's gold answer (MT-Bench style).
"""

from __future__ import annotations

import random
import re
from dataclasses import asdict, dataclass, field
from typing import Callable

WORDS = (
    "cat dog sun tree fish bird red blue cup box hat pen map key car bus egg ink jam owl fox "
    "pig cow bee ant bat rat yak elk"
).split()
LETTERS = "abcdeilnorst"

ANSWER_PREFIX = "The answer is "


@dataclass(frozen=True)
class Item:
    """One instruction with its gold answer; ``turns``/``golds`` hold both turns of a two-turn item."""

    item_id: str
    family: str
    turns: tuple[str, ...]
    golds: tuple[str, ...]
    category: str = ""

    @property
    def instruction(self) -> str:
        return self.turns[0]

    @property
    def gold(self) -> str:
        return self.golds[0]

    def to_json(self) -> dict:
        d = asdict(self)
        d["turns"], d["golds"] = list(self.turns), list(self.golds)
        return d

    @classmethod
    def from_json(cls, d: dict) -> "Item":
        return cls(d["item_id"], d["family"], tuple(d["turns"]), tuple(d["golds"]), d.get("category", ""))


@dataclass(frozen=True)
class Family:
    """A skill family: phrasings, a sampler of (slots, gold), and the MT-Bench category it stands for."""

    name: str
    phrasings: tuple[str, ...]
    sample: Callable[[random.Random], tuple[dict, str]]
    category: str
    follow_ups: tuple[tuple[str, Callable[[str], str]], ...] = field(default=())


def _add(rng: random.Random) -> tuple[dict, str]:
    a, b = rng.randint(0, 49), rng.randint(0, 49)
    return {"a": a, "b": b}, str(a + b)


def _larger(rng: random.Random) -> tuple[dict, str]:
    a, b = rng.sample(range(10, 100), 2)
    return {"a": a, "b": b}, str(max(a, b))


def _upper(rng: random.Random) -> tuple[dict, str]:
    words = rng.sample(WORDS, rng.randint(2, 3))
    return {"words": " ".join(words)}, " ".join(words).upper()


def _sort(rng: random.Random) -> tuple[dict, str]:
    digits = [str(rng.randint(0, 9)) for _ in range(rng.randint(3, 5))]
    return {"digits": " ".join(digits)}, " ".join(sorted(digits))


def _reverse(rng: random.Random) -> tuple[dict, str]:
    words = rng.sample(WORDS, rng.randint(3, 4))
    return {"words": " ".join(words)}, " ".join(reversed(words))


def _count(rng: random.Random) -> tuple[dict, str]:
    letter = rng.choice(LETTERS[:5])
    word = "".join(rng.choice(LETTERS) for _ in range(rng.randint(4, 7)))
    return {"letter": letter, "word": word}, str(word.count(letter))


def _reverse_list(gold: str) -> str:
    return " ".join(reversed(gold.split()))


def _plus_ten(gold: str) -> str:
    return str(int(gold) + 10)


def _first_item(gold: str) -> str:
    return gold.split()[0]


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in [
        Family("add", ("What is {a} + {b}?", "Add {a} and {b}.", "Compute {a} plus {b}.", "Sum {a} and {b}."),
               _add, "math", (("Now add 10 to that number.", _plus_ten),)),
        Family("larger", ("Which is larger, {a} or {b}?", "Pick the larger number: {a} {b}.",
                          "What is the bigger of {a} and {b}?", "Larger of {a} and {b}?"),
               _larger, "reasoning", (("Now add 10 to that number.", _plus_ten),)),
        Family("upper", ("Uppercase: {words}", "Write in capitals: {words}", "Make uppercase: {words}",
                         "Shout these words: {words}"),
               _upper, "writing", (("Now reverse the order of those words.", _reverse_list),)),
        Family("sort", ("Sort these digits: {digits}", "Put in order: {digits}", "Sort ascending: {digits}",
                        "Order these: {digits}"),
               _sort, "coding", (("Now reverse that list.", _reverse_list),
                                 ("Now give only the first one.", _first_item))),
        Family("reverse", ("Reverse: {words}", "Reverse the words: {words}", "Say backwards: {words}",
                           "Flip the order: {words}"),
               _reverse, "extraction", (("Now give only the first word.", _first_item),)),
        Family("count", ("How many {letter} in {word}?", "Count the letter {letter} in {word}.",
                         "Number of {letter} in {word}?", "Count {letter} in {word}."),
               _count, "stem", (("Now add 10 to that number.", _plus_ten),)),
    ]
}


def make_item(rng: random.Random, family: Family, item_id: str, two_turn: bool = False) -> Item:
    slots, gold = family.sample(rng)
    instruction = rng.choice(family.phrasings).format(**slots)
    if not two_turn:
        return Item(item_id, family.name, (instruction,), (gold,), family.category)
    follow_up, step = rng.choice(family.follow_ups)
    return Item(item_id, family.name, (instruction, follow_up), (gold, step(gold)), family.category)


def extract_answer(response: str) -> str:
    """The answer span of a response: after 'The answer is ' up to the next period, else the whole text."""
    text = response.strip()
    match = re.search(re.escape(ANSWER_PREFIX) + r"(.+?)(?:\.(?:\s|$)|$)", text)
    span = match.group(1) if match else text
    return " ".join(span.split()).rstrip(".")


def is_correct(response: str, gold: str) -> bool:
    """The gold checker: the extracted answer equals the gold answer (whitespace-normalised)."""
    return extract_answer(response) == " ".join(gold.split())
