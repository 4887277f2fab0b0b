"""IPO is the dpo module with `loss_type: ipo` (a config preset, not a copy). TRL's IPO regresses the per-token
mean log-ratio margin towards 1 / (2 beta): that margin rises."""

import pytest

from test_dpo import train_and_measure


def test_ipo_raises_the_implicit_reward_margin(world, sft, tmp_path):
    trainer = {"loss_type": "ipo", "learning_rate": 5e-3, "beta": 0.5, "max_steps": 12}
    record, before, after = train_and_measure("ipo", trainer, world, sft, tmp_path, average=True)
    assert before == pytest.approx(0.0, abs=1e-6)
    assert after > before + 0.05, (before, after)
    assert record["config"]["module"] == "dpo" and record["module"] == "dpo"
