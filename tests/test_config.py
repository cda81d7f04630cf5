"""Settings: README's table is the declarations', defaults per profile, and the refusals at start."""
from __future__ import annotations

import dataclasses
import pathlib
import re

import pytest

from blocklist.config import RATE_LIMIT_DEFAULTS, SETTINGS, Config, settings_table
from blocklist.errors import ConfigError

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
SECRET = "s" * 32
PRODUCTION = {"CALLMARK_PROFILE": "production", "CALLMARK_SECRET_KEY": SECRET}


def table_rows(markdown: str) -> list[tuple[str, str, str]]:
    """(setting, default, meaning) of each row of a three-column table, header and rule left out."""
    rows = [line for line in markdown.splitlines() if line.startswith("|")]
    return [tuple(cell.strip() for cell in row.strip("|").split(" | ")) for row in rows[2:]]


def readme_settings_table() -> str:
    section = README.read_text(encoding="utf-8").split("\n## Settings\n", 1)[1]
    table = re.search(r"^\|.*?(?=\n(?!\|))", section, re.S | re.M)
    assert table, "README's Settings section has no table"
    return table.group(0) + "\n"


# --- README --------------------------------------------------------------------------------------

def test_readme_lists_exactly_the_declared_settings():
    listed = [setting.strip("`") for setting, _, _ in table_rows(readme_settings_table())]
    assert listed == [declared.env for declared in SETTINGS]
    assert len(set(listed)) == len(listed)


def test_readme_shows_the_declared_default_and_meaning_of_every_setting():
    # on a difference, paste the output of: .venv/bin/python -m blocklist.config
    assert table_rows(readme_settings_table()) == table_rows(settings_table())
    assert readme_settings_table() == settings_table()


def test_every_variable_is_read_by_one_setting_only():
    variables = [declared.env for declared in SETTINGS]
    assert len(set(variables)) == len(variables)


# --- defaults --------------------------------------------------------------------------------------

def test_an_empty_environment_gives_the_dataclass_defaults():
    assert Config.from_env({}) == Config()


def test_the_development_defaults():
    config = Config.from_env({})
    assert config.profile == "development"
    assert (config.host, config.port, config.data_dir, config.redis_timeout) == ("127.0.0.1", 8000, "./var", 2.0)
    assert (config.distinct_networks, config.burst_guard, config.talker_share) == (False, False, 0.05)
    assert (config.fresh_reporters_to_block, config.aged_reporters_to_block) == (3, 3)
    assert config.forwarded_allow_ips == ""
    assert config.rate_limits == RATE_LIMIT_DEFAULTS["development"]
    assert config.secret_key is None and config.redis_url is None and not config.redis_cluster


def test_the_production_defaults():
    config = Config.from_env(PRODUCTION)
    assert (config.distinct_networks, config.burst_guard, config.talker_share) == (True, True, 0.2)
    assert (config.fresh_reporters_to_block, config.aged_reporters_to_block) == (21, 10)
    assert config.rate_limits == RATE_LIMIT_DEFAULTS["production"]
    assert (config.block_min_reporters, config.talker_cap, config.list_error_rate) == (3, 20, 0.001)


def test_a_redis_url_makes_production_the_default_profile():
    assert Config.from_env({"REDIS_URL": "redis://h:6379/0", "CALLMARK_SECRET_KEY": SECRET}).profile == "production"
    assert Config(redis_url="redis://h:6379/0").profile == "development"  # built directly: the field's default


def test_in_development_the_reporters_to_block_follow_the_block_minimum():
    config = Config.from_env({"CALLMARK_BLOCK_MIN_REPORTERS": "5"})
    assert (config.fresh_reporters_to_block, config.aged_reporters_to_block) == (5, 5)


def test_trusted_proxies_make_the_local_addresses_believed_unless_set():
    assert Config.from_env({"CALLMARK_TRUSTED_PROXIES": "1"}).forwarded_allow_ips == "127.0.0.1,::1"
    given = {"CALLMARK_TRUSTED_PROXIES": "1", "CALLMARK_FORWARDED_ALLOW_IPS": ""}
    assert Config.from_env(given).forwarded_allow_ips == ""  # set but empty: none


def test_blank_values_take_the_default():
    config = Config.from_env({"PORT": "", "CALLMARK_BURST_GUARD": "  ", "CALLMARK_DEFAULT_REGION": "",
                              "CALLMARK_TALKER_SHARE": "", "CALLMARK_RATE_LIMIT_FEED": ""})
    assert (config.port, config.burst_guard, config.default_region, config.talker_share) == (8000, False, "CN", 0.05)
    assert config.rate_limits["feed"] == RATE_LIMIT_DEFAULTS["development"]["feed"]


def test_values_are_parsed_and_normalised():
    config = Config.from_env({**PRODUCTION, "CALLMARK_DISTINCT_NETWORKS": "off", "CALLMARK_BURST_GUARD": " No ",
                              "CALLMARK_REDIS_TIMEOUT": "0.5", "CALLMARK_WORKERS": "3", "CALLMARK_DEFAULT_REGION": "us",
                              "CALLMARK_LOG_LEVEL": "debug", "CALLMARK_LOG_FORMAT": "TEXT",
                              "CALLMARK_TALKER_SHARE": "0.1", "CALLMARK_FRESH_REPORTERS_TO_BLOCK": "30"})
    assert (config.distinct_networks, config.burst_guard, config.redis_timeout, config.workers) == (False, False, 0.5, 3)
    assert (config.default_region, config.log_level, config.log_format) == ("US", "DEBUG", "text")
    assert (config.talker_share, config.fresh_reporters_to_block, config.aged_reporters_to_block) == (0.1, 30, 10)


def test_a_config_built_directly_has_its_profile_defaults_at_once():
    config = Config(profile="production", secret_key=SECRET)
    assert (config.distinct_networks, config.talker_share, config.fresh_reporters_to_block) == (True, 0.2, 21)
    assert config.rate_limits == RATE_LIMIT_DEFAULTS["production"]


def test_replace_with_another_profile_fills_the_fields_left_none():
    production = dataclasses.replace(Config(), profile="production", secret_key=SECRET, distinct_networks=None,
                                     burst_guard=None, rate_limits={"feed": "7/second"})
    assert (production.distinct_networks, production.burst_guard) == (True, True)
    assert production.rate_limits == {**RATE_LIMIT_DEFAULTS["production"], "feed": "7/second"}


def test_config_replace_keeps_the_defaults_following_the_new_profile():
    development = Config()
    assert (development.talker_share, development.fresh_reporters_to_block) == (0.05, 3)
    production = development.replace(profile="production", secret_key=SECRET, rate_limits={"feed": "7/second"})
    assert (production.distinct_networks, production.burst_guard) == (True, True)
    assert (production.talker_share, production.fresh_reporters_to_block, production.aged_reporters_to_block) == (
        0.2, 21, 10)
    assert production.rate_limits == {**RATE_LIMIT_DEFAULTS["production"], "feed": "7/second"}
    assert development.replace(talker_share=0.1).talker_share == 0.1 and development.profile == "development"


def test_a_profile_changed_after_construction_brings_its_defaults():
    config = Config()
    config.profile, config.secret_key = "production", SECRET
    assert (config.distinct_networks, config.burst_guard, config.talker_share) == (True, True, 0.2)
    assert config.rate_limits == RATE_LIMIT_DEFAULTS["production"]


def test_limits_set_after_construction_are_laid_over_the_profile_defaults():
    config = Config()
    config.rate_limits = {"feed": "7/second"}
    assert config.rate_limits == {**RATE_LIMIT_DEFAULTS["development"], "feed": "7/second"}


def test_validate_changes_nothing_and_can_run_again():
    config = Config(profile="production", secret_key=SECRET, trusted_proxies=1, rate_limits={"feed": "7/second"})
    given = dict(vars(config))
    config.validate()
    config.validate()
    assert vars(config) == given
    assert given["distinct_networks"] is None and config.distinct_networks is True  # kept unset, read as the default


# --- refusals --------------------------------------------------------------------------------------

@pytest.mark.parametrize("env, message", [
    ({"PORT": "eighty"}, "PORT must be an integer, got 'eighty'"),
    ({"CALLMARK_THREADS": "0"}, "CALLMARK_THREADS must be at least 1, got 0"),
    ({"CALLMARK_REDIS_TIMEOUT": "soon"}, "CALLMARK_REDIS_TIMEOUT must be a number, got 'soon'"),
    ({"CALLMARK_LIST_HEADROOM": "0.5"}, "CALLMARK_LIST_HEADROOM must be at least 1.0, got 0.5"),
    ({"CALLMARK_HALF_LIFE_DAYS": "nan"}, "CALLMARK_HALF_LIFE_DAYS must be at least 0.01, got nan"),
    ({"CALLMARK_BURST_GUARD": " Maybe "}, "CALLMARK_BURST_GUARD must be on or off (1/0, true/false), got 'maybe'"),
    ({"CALLMARK_PROFILE": "staging"}, "CALLMARK_PROFILE must be one of development, production, got 'staging'"),
    ({"CALLMARK_REDIS_CLUSTER": "on"}, "CALLMARK_REDIS_CLUSTER needs REDIS_URL naming one node of the cluster"),
    ({"CALLMARK_LOG_FORMAT": "xml"}, "CALLMARK_LOG_FORMAT must be json, text or auto, got 'xml'"),
    ({"CALLMARK_FRESH_REPORTERS_TO_BLOCK": "2"},
     "CALLMARK_FRESH_REPORTERS_TO_BLOCK must be between CALLMARK_BLOCK_MIN_REPORTERS and 50, got 2"),
    ({**PRODUCTION, "CALLMARK_BLOCK_MIN_REPORTERS": "11"},
     "CALLMARK_AGED_REPORTERS_TO_BLOCK must be between CALLMARK_BLOCK_MIN_REPORTERS and 50, got 10"),
    ({"CALLMARK_BURST_DEVICE_WEIGHT": "101"}, "CALLMARK_BURST_DEVICE_WEIGHT is a percent: at most 100"),
    ({"CALLMARK_RATE_LIMIT_FEED": "lots"}, "rate limit 'feed' is not valid: 'lots' (e.g. 60/minute;1000/day)"),
    ({"CALLMARK_BUCKETS": "20000"}, "CALLMARK_BUCKETS must be at most 16384 (the Redis Cluster slot count)"),
    ({"CALLMARK_PROFILE": "production"}, "CALLMARK_SECRET_KEY must be set in the production profile"),
    ({"CALLMARK_LIST_ERROR_RATE": "0.5"}, "CALLMARK_LIST_ERROR_RATE must be in [0.0001, 0.5)"),
    ({"CALLMARK_SECRET_KEY": "short"}, "CALLMARK_SECRET_KEY must be at least 32 characters"),
    ({"CALLMARK_FORWARDED_ALLOW_IPS": "10.0.0.0/8"},
     "CALLMARK_FORWARDED_ALLOW_IPS must be IP addresses separated by commas, or *; got '10.0.0.0/8'"),
])
def test_a_bad_setting_is_refused_with_its_message(env, message):
    with pytest.raises(ConfigError) as refused:
        Config.from_env(env)
    assert str(refused.value) == message


def test_a_config_changed_after_construction_is_checked_again():
    config = Config()
    config.log_format = "xml"
    with pytest.raises(ConfigError, match="CALLMARK_LOG_FORMAT must be json, text or auto"):
        config.validate()
