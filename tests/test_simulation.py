"""The reputation model's targets, asserted on the seeded simulation's quick mode
(bench/simulate.py; docs/REPUTATION.md explains the model, the worlds and the figures)."""
from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench"))

import simulate  # noqa: E402


@pytest.fixture(scope="module")
def result(redis_url):
    return simulate.run(quick=True, redis_url=redis_url)


@pytest.fixture(scope="module")
def scenario(result):
    return result["scenarios"]


# --- the honest world, after its warm-up -------------------------------------------------

def test_the_simulation_is_the_production_model_after_a_two_week_warm_up(result):
    assert 0.025 <= result["mistake_share"] <= 0.035  # honest users make about 3 % mistakes
    assert result["honest_tags"] > 1000
    assert result["warmup_days"] == 14
    ranks = result["ranks_at_start"]  # honest devices have a history: most have earned standing
    assert ranks["standing"] > 0.5 and ranks["fresh"] > 0


def test_legitimate_numbers_are_falsely_blocked_at_most_one_in_a_thousand(result):
    assert result["false_block_rate"] <= 0.001, result["falsely_blocked"]
    assert result["precision"] >= 0.99


def test_spam_calling_many_people_blocks_after_a_median_of_five_honest_reports_or_fewer(result):
    assert result["median_reports_to_block"] <= 5


def test_at_least_95_percent_of_active_spammers_block_within_a_day(result):
    assert result["recall_within_day"] >= 0.95


def test_ring_once_numbers_are_flagged_within_the_window_and_answered_ones_never(result):
    assert result["ring_once_flagged"] == result["ring_once"]
    assert result["ring_once_median_flag_hour"] <= 1
    assert result["answered_numbers_flagged"] == 0


def test_rotating_operators_blocks_reach_the_range_list(result):
    assert result["rotating_operators_in_ranges"] >= 0.9 * result["rotating_operators"]


# --- the launch day: every device fresh --------------------------------------------------

def test_on_launch_day_three_quarters_of_the_spammers_that_keep_their_number_block_within_24_hours(result):
    assert result["launch_day"]["recall_within_day_keepers"] >= 0.75
    assert result["launch_day"]["false_block_rate"] <= 0.001


# --- griefing and the named attack scenarios ---------------------------------------------

def test_no_burst_of_twenty_fresh_devices_on_one_network_blocks_a_legitimate_number(result):
    assert all(result["fresh_burst"][k] != "block" for k in (5, 10, 20))


def test_aged_attackers_on_distinct_networks_need_more_the_more_people_talk_with_the_number(result):
    needed = result["attackers_to_block_by_talkers"]
    assert needed[0] >= 10  # aged devices without standing: 10 on 10 networks for an unknown number
    assert needed[200] > needed[0]  # 5 % of the 200 people who talked with it, in reporters' worth


def test_fresh_sybils_on_distinct_networks_need_more_than_twenty_to_block(scenario):
    needed = scenario["fresh_sybils"]["sybils_to_block"]
    assert needed is None or needed > 20
    assert scenario["fresh_sybils"]["verdict_at_20"] != "block"


def test_aged_sybils_without_standing_need_at_least_ten(scenario):
    needed = scenario["aged_sybils"]["sybils_to_block"]
    assert needed is None or needed >= 10


def test_a_retag_burst_of_fresh_devices_is_held_or_does_not_block(scenario):
    retag = scenario["retag"]
    assert retag["held"] or retag["verdict"] != "block"
    assert retag["held_25"] or retag["verdict_25"] != "block"


def test_three_fresh_devices_ringing_once_do_not_block_a_number(scenario):
    assert scenario["detector_abuse"]["verdict_at_3"] != "block"


def test_one_device_files_no_more_reports_a_minute_through_batches_than_the_report_limit(scenario):
    assert scenario["batch_amplification"]["accepted_per_minute"] <= simulate.REPORTS_PER_MINUTE


def test_patient_sybils_need_standing_and_a_week_and_an_override_ends_their_attacks(scenario):
    patient = scenario["patient_sybils"]
    assert patient["sybils_to_block"] is None or patient["sybils_to_block"] >= 3
    assert patient["days_to_block"] is None or patient["days_to_block"] >= patient["wait_days"]
    assert patient["verdict_after_override"] == "allow"
    assert not patient["same_attackers_block_a_second_number"]  # the contradiction cost them their standing
    for farm in (patient["eager"], patient["self_farm"]):  # standing counts only past the fresh window
        assert farm["days_to_block"] is None or farm["days_to_block"] >= 7
    assert patient["self_farm"]["sybils"] > 20  # farming standing without real spam takes more than 20 fresh sybils


def test_a_fresh_devices_dispute_leaves_a_block_in_place(scenario):
    dispute = scenario["dispute_abuse"]
    assert dispute["dispute_status"] == 201
    assert dispute["verdict_after"] == "block"
