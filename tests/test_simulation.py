"""The reputation model's targets, asserted on the seeded simulation's quick mode
(bench/simulate.py; docs/REPUTATION.md explains the model and the figures)."""
from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench"))

import simulate  # noqa: E402


@pytest.fixture(scope="module")
def result(redis_url):
    return simulate.run(quick=True, redis_url=redis_url)


def test_the_simulation_is_the_production_model(result):
    assert 0.025 <= result["mistake_share"] <= 0.035  # honest users make about 3 % mistakes
    assert result["honest_tags"] > 1000


def test_legitimate_numbers_are_falsely_blocked_at_most_one_in_a_thousand(result):
    assert result["false_block_rate"] <= 0.001


def test_spam_calling_many_people_blocks_after_a_median_of_five_honest_reports_or_fewer(result):
    assert result["median_reports_to_block"] <= 5


def test_at_least_95_percent_of_active_spammers_block_within_a_day(result):
    assert result["recall_within_day"] >= 0.95
    assert result["precision"] >= 0.99


def test_no_burst_of_twenty_fresh_devices_on_one_network_blocks_a_legitimate_number(result):
    assert all(result["fresh_burst"][k] != "block" for k in (5, 10, 20))


def test_aged_attackers_on_distinct_networks_need_more_the_more_people_talk_with_the_number(result):
    needed = result["attackers_to_block_by_talkers"]
    assert needed[0] == 3  # the contract: three distinct reporters block an unknown number
    assert needed[200] >= 10  # 5 % of the 200 people who talked with it


def test_ring_once_numbers_are_flagged_within_the_window_and_answered_ones_never(result):
    assert result["ring_once_flagged"] == result["ring_once"]
    assert result["ring_once_median_flag_hour"] <= 1
    assert result["answered_numbers_flagged"] == 0


def test_rotating_operators_blocks_reach_the_range_list(result):
    assert result["rotating_operators_in_ranges"] >= 0.9 * result["rotating_operators"]
