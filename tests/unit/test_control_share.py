"""The adaptive control share (issue 23): the rule from the live version's estimates, and its settings."""

from __future__ import annotations

import math

import pytest

from activestream.config import Settings
from activestream.labeling.control_share import DEFAULT_ADAPTIVE, ControlShare, accuracy_width, control_share
from activestream.simulation.campaign import SimConfig
from activestream.wiring import explore_of

RULE = ControlShare(high=0.2, low=0.05, width=0.1)


def est(low: float, high: float) -> dict[str, float]:
    return {"est_accuracy": (low + high) / 2, "est_accuracy_low": low, "est_accuracy_high": high, "est_sample_size": 120.0}


def test_a_fixed_share_is_used_as_it_is_whatever_the_estimates() -> None:
    assert control_share(0.1, None) == 0.1
    assert control_share(0.1, est(0.9, 0.91)) == 0.1
    assert control_share(0.0, est(0.1, 0.9)) == 0.0


@pytest.mark.parametrize(
    ("metrics", "share"),
    [
        (None, 0.2),  # no live version yet
        ({}, 0.2),
        ({"est_hours_spent": 0.5, "est_control_labels_needed": 12.0}, 0.2),  # too few control labels
        ({"est_accuracy": 0.9}, 0.2),  # no interval: not something to steer by
        ({"est_accuracy": 0.9, "est_accuracy_low": math.nan, "est_accuracy_high": 0.95}, 0.2),
        ({"est_accuracy": 0.9, "est_accuracy_low": "0.85", "est_accuracy_high": 0.95}, 0.2),  # (a record from Redis: not a number)
        (est(0.80, 0.95), 0.2),  # 0.15 wide: too uncertain
        (est(0.85, 0.9501), 0.2),  # a hair over the width
        (est(0.85, 0.95), 0.05),  # exactly the width: steers
        (est(0.90, 0.94), 0.05),
    ],
)
def test_the_adaptive_share_is_high_until_the_accuracy_interval_is_narrower_than_the_width(metrics: dict[str, float] | None,
                                                                                          share: float) -> None:
    assert control_share(RULE, metrics) == share


def test_the_interval_width_is_high_minus_low() -> None:
    assert accuracy_width(est(0.85, 0.94)) == pytest.approx(0.09)
    assert accuracy_width(None) is None and accuracy_width({"est_accuracy_low": 0.8}) is None


@pytest.mark.parametrize(("high", "low", "width"), [(0.0, 0.0, 0.1), (0.2, 0.0, 0.1), (0.2, 0.3, 0.1), (1.2, 0.05, 0.1), (0.2, 0.05, 0.0)])
def test_parameters_that_would_stop_the_walk_or_make_no_sense_are_refused(high: float, low: float, width: float) -> None:
    with pytest.raises(ValueError, match="control share"):
        ControlShare(high=high, low=low, width=width)


def test_settings_choose_the_fixed_share_or_the_rule_and_simulate_has_the_same_default() -> None:
    assert explore_of(Settings.from_env({})) == (ControlShare() if DEFAULT_ADAPTIVE else 0.1)
    assert explore_of(Settings.from_env({"ACTIVESTREAM_EXPLORE_ADAPTIVE": "0", "ACTIVESTREAM_EXPLORE": "0.3"})) == 0.3
    rule = explore_of(Settings.from_env({"ACTIVESTREAM_EXPLORE_ADAPTIVE": "1", "ACTIVESTREAM_EXPLORE_HIGH": "0.3",
                                         "ACTIVESTREAM_EXPLORE_LOW": "0.02", "ACTIVESTREAM_EXPLORE_WIDTH": "0.08"}))
    assert rule == ControlShare(high=0.3, low=0.02, width=0.08)
    assert (SimConfig().explore_adaptive is not None) == bool(Settings.from_env({}).explore_adaptive)
    with pytest.raises(ValueError, match="ACTIVESTREAM_EXPLORE_LOW"):
        Settings.from_env({"ACTIVESTREAM_EXPLORE_LOW": "0"})
    with pytest.raises(ValueError, match="low must be in"):
        explore_of(Settings.from_env({"ACTIVESTREAM_EXPLORE_ADAPTIVE": "1", "ACTIVESTREAM_EXPLORE_LOW": "0.5"}))


def test_simulate_takes_the_rule_from_its_flag_and_refuses_it_without_the_live_estimates() -> None:
    import argparse

    from activestream.commands import simulate

    parser = argparse.ArgumentParser()
    simulate.add_parser(parser.add_subparsers())
    args = parser.parse_args(["simulate", "--data", "d.csv", "--label-column", "y", "--explore-adaptive", "--live-estimates"])
    args.metric = "accuracy"  # (the command resolves it from the data)
    assert simulate.sim_config(args, ["margin"]).explore_adaptive == ControlShare()
    args = parser.parse_args(["simulate", "--data", "d.csv", "--label-column", "y", "--no-explore-adaptive"])
    args.metric = "accuracy"
    assert simulate.sim_config(args, ["margin"]).explore_adaptive is None
    with pytest.raises(ValueError, match="add --live-estimates"):
        SimConfig(explore_adaptive=ControlShare())
