"""benchmarks/world_calibration.py on the tiny world and its tiny reward model (tests/methods/conftest.py).

Guards against a calibration that mixes what the pairs differ in: a "correctness" pair must hold exactly one
correct answer, a "length only" pair two correct answers of which the preferred is the shorter; and against pairs
drawn from the split the reward model trained on."""

import sys
from pathlib import Path

from tiny_setup import WORLD
from world.tasks import is_correct

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from world_calibration import calibration, calibration_pairs, pair_correctness  # noqa: E402


def test_pairs_differ_only_in_what_they_are_named_for():
    from world.data import generate_items

    pairs = calibration_pairs(WORLD, "prefs")
    gold = {it.instruction: it.gold for it in generate_items(WORLD)["prefs"]}
    trained_on = {it.instruction for it in generate_items(WORLD)["reward_model"]}
    assert len(pairs["correctness"]) > 0.9 * 2 * len(gold) and len(pairs["length only"]) == len(gold)
    for prompt, good, bad in pairs["correctness"]:
        instruction = prompt[0]["content"]
        assert instruction not in trained_on
        assert is_correct(good, gold[instruction]) and not is_correct(bad, gold[instruction])
    for prompt, concise, verbose in pairs["length only"]:
        instruction = prompt[0]["content"]
        assert is_correct(concise, gold[instruction]) and is_correct(verbose, gold[instruction])
        assert len(concise) < len(verbose)


def test_calibration_scores_both_kinds_with_the_reward_model(reward_model):
    numbers = calibration(WORLD, reward_model, "prefs")
    assert set(numbers) == {"correctness", "length only"}
    for row in numbers.values():
        assert row["n"] > 0 and 0 <= row["accuracy"] <= 1 and row["stderr"] <= 0.5 / row["n"] ** 0.5 + 1e-12
    assert numbers["length only"]["mean_length_difference"] < 0


def test_pair_correctness_counts_only_pairs_that_differ_in_correctness():
    def pair(question, chosen, rejected):
        return {"prompt": [{"role": "user", "content": question}], "chosen": [{"role": "assistant", "content": chosen}],
                "rejected": [{"role": "assistant", "content": rejected}]}

    gold = {"Add 2 and 3.": "5", "Add 1 and 1.": "2"}
    pairs = [pair("Add 2 and 3.", "5", "6"),                        # teaches correctness
             pair("Add 2 and 3.", "7", "The answer is 5."),         # teaches the wrong answer
             pair("Add 1 and 1.", "2", "The answer is 2. Glad to help!"),   # both correct: not counted
             pair("Add 1 and 1.", "3", "4")]                        # both wrong: not counted
    assert pair_correctness(pairs, gold) == {"pairs": 4, "differing": 2, "chosen_correct": 0.5}
