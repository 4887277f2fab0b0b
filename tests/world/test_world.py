"""The micro world's truth: checker, gold reward, biased observers, disjoint seeded splits."""

import math
import random

import pytest

from world.data import generate_items, kto_rows, labelled_pairs
from world.tasks import FAMILIES, extract_answer, is_correct, make_item
from world.truth import STYLES, BiasedPreference, GoldReward, synthesize

WORLD = {
    "seed": 3, "families": list(FAMILIES),
    "splits": {"sft": 60, "prefs": 40, "online": 12, "mt_bench": 12},
    "gold_reward": {"length_penalty": 0.2, "length_scale": 50},
    "annotator": {"temperature": 0.2, "verbosity_bias": 3.0, "length_scale": 50},
    "pair_styles": {"concise": 0.5, "verbose": 0.5},
}


def test_checker_reads_concise_and_verbose_answers():
    assert is_correct("68", "68")
    assert is_correct("Sure! The answer is 68. I hope this helps!", "68")
    assert is_correct("Sure! The answer is CAT DOG. Glad to help.", "CAT DOG")
    assert not is_correct("The answer is 67.", "68")
    assert not is_correct("I am not sure.", "68")
    assert extract_answer("  1 2 3 ") == "1 2 3"


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_synthesized_styles_have_the_quality_they_claim(family):
    rng = random.Random(0)
    for _ in range(20):
        item = make_item(rng, FAMILIES[family], "x")
        assert is_correct(synthesize(item.instruction, item.gold, "concise", rng), item.gold)
        assert is_correct(synthesize(item.instruction, item.gold, "verbose", rng), item.gold)
        assert not is_correct(synthesize(item.instruction, item.gold, "wrong", rng), item.gold)
        assert not is_correct(synthesize(item.instruction, item.gold, "wrong_verbose", rng), item.gold)
    with pytest.raises(ValueError, match="unknown response style"):
        synthesize("q", "1", "poetic", rng)
    assert len(STYLES) == 6


def test_two_turn_items_build_on_the_first_answer():
    item = make_item(random.Random(1), FAMILIES["add"], "m", two_turn=True)
    assert len(item.turns) == 2 and int(item.golds[1]) == int(item.golds[0]) + 10


def test_gold_reward_prefers_correct_then_concise():
    reward = GoldReward(length_penalty=0.2, length_scale=50)
    concise, verbose = "68", "Sure! The answer is 68. I hope this helps! Have a nice day!"
    assert reward(concise, "68") == 1.0
    assert 0 < reward(verbose, "68") < 1.0
    assert reward("67", "68") == 0.0


def test_verbosity_bias_moves_preferences_toward_longer_answers():
    unbiased = BiasedPreference(temperature=0.2, verbosity_bias=0.0, length_scale=50)
    biased = BiasedPreference(temperature=0.2, verbosity_bias=2.0, length_scale=50)
    # equal gold reward, first answer 40 characters longer
    assert unbiased.probability(0.8, 0.8, 60, 20) == pytest.approx(0.5)
    assert biased.probability(0.8, 0.8, 60, 20) == pytest.approx(1 / (1 + math.exp(-2 * math.tanh(0.8))))
    # a correct answer still beats a wrong one of the same length by a wide margin
    assert biased.probability(1.0, 0.0, 10, 10) > 0.99


def test_splits_are_disjoint_deterministic_and_sized():
    splits = generate_items(WORLD)
    again = generate_items(WORLD)
    assert {k: [i.item_id for i in v] for k, v in splits.items()} == {k: [i.item_id for i in v] for k, v in again.items()}
    instructions = [it.instruction for items in splits.values() for it in items]
    assert len(instructions) == len(set(instructions)) == sum(WORLD["splits"].values())
    assert all(len(it.turns) == 2 for it in splits["mt_bench"])


def test_biased_annotator_prefers_verbose_among_correct_answers():
    rng = random.Random(0)
    items = generate_items({**WORLD, "splits": {"prefs": 300}})["prefs"]
    pairs = labelled_pairs(items, WORLD, rng)
    longer_chosen = [len(p["chosen"][0]["content"]) > len(p["rejected"][0]["content"]) for p in pairs]
    assert sum(longer_chosen) / len(pairs) > 0.6
    kto = kto_rows(pairs)
    assert len(kto) == 2 * len(pairs) and sum(r["label"] for r in kto) == len(pairs)
