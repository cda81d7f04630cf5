"""Every setting CallMark reads, named once, with its default and meaning.

Each `Config` field declares its environment variable, default, parser and meaning in one
`setting(...)`; `Config.from_env()`, the dataclass defaults and README's table of settings
(`settings_table()`, checked by tests/test_config.py) all come from those declarations.
"""
from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Iterator, Mapping, NamedTuple

from limits import parse_many

from .errors import ConfigError

PROFILES = ("development", "production")
# Production: fresh devices alone block only past 20 on distinct networks, aged devices
# without standing from 10 on; devices with standing (and imports) from BLOCK_MIN on.
FRESH_REPORTERS_TO_BLOCK = 21
AGED_REPORTERS_TO_BLOCK = 10
# Spam reporters a block needs per device that talked with the number. Production: 1 in 5,
# so that honest mistakes, which pile up on the numbers people call and answer, block no
# legitimate number (bench/simulate.py, after two weeks: 2.3 % false blocks at 1 in 20, 0 at 1 in 5).
PRODUCTION_TALKER_SHARE = 0.2
DEVELOPMENT_TALKER_SHARE = 0.05
# CALLMARK_DNC_BUCKET_BITS: at 10, 1,024 buckets (16 hash tags); at 22, the bucket and the
# registration's 42-bit field take all 64 bits of the keyed hash that dnc.py reads.
DNC_BUCKET_BITS = (10, 22)


# --- parsers: (variable, raw value) -> value; None counts as unset, so the default applies ------

Parser = Callable[[str, str], Any]


def text(name: str, raw: str) -> str | None:
    return raw or None


def verbatim(name: str, raw: str) -> str:
    """Kept as given: set but empty is a value of its own."""
    return raw


def upper(name: str, raw: str) -> str | None:
    return raw.upper() or None


def lower(name: str, raw: str) -> str | None:
    return raw.lower() or None


def integer(minimum: int = 0) -> Parser:
    def parse(name: str, raw: str) -> int | None:
        if raw == "":
            return None
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
        if value < minimum:
            raise ConfigError(f"{name} must be at least {minimum}, got {value}")
        return value

    return parse


def number(minimum: float = 0.0) -> Parser:
    def parse(name: str, raw: str) -> float | None:
        if raw == "":
            return None
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a number, got {raw!r}") from None
        if not value >= minimum:  # also refuses nan
            raise ConfigError(f"{name} must be at least {minimum}, got {value}")
        return value

    return parse


def flag(name: str, raw: str) -> bool | None:
    """An on/off setting; blank is unset."""
    raw = raw.strip().lower()
    if not raw:
        return None
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be on or off (1/0, true/false), got {raw!r}")


# --- declarations ---------------------------------------------------------------------------------

class Profiles(NamedTuple):
    """A default that differs per profile; either may be a function of the config."""

    production: Any
    development: Any


@dataclass(frozen=True)
class Setting:
    """One environment variable: its default, how it is read, and what it means (README's table)."""

    env: str
    default: Any  # a value, Profiles(...), or a function of the config for a derived default
    parse: Parser
    meaning: str
    shown: str | None = None  # README's default column, where rendering `default` does not say it

    @property
    def derived(self) -> bool:
        """The default depends on the profile or on other settings: worked out when the field is read."""
        return isinstance(self.default, Profiles) or callable(self.default)

    def effective(self, config: "Config", given: Any) -> Any:
        """What a field reads as: the value given, else the default for this config."""
        if given is not None:
            return given
        default = self.default
        if isinstance(default, Profiles):
            default = default.production if config.profile == "production" else default.development
        return default(config) if callable(default) else default

    def read(self, env: Mapping[str, str]) -> Any:
        """The value the environment gives, or None when it leaves the setting to its default."""
        raw = env.get(self.env)
        return None if raw is None else self.parse(self.env, raw)

    def shown_default(self) -> str:
        if self.shown is not None:
            return self.shown
        default = self.default
        if isinstance(default, Profiles):
            if isinstance(default.production, bool):
                return f"{_shown(default.production)} in production, {_shown(default.development)} in development"
            return f"production {_shown(default.production)}, development {_shown(default.development)}"
        return _shown(default)


def _shown(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{value}`"


def setting(env: str, default: Any, parse: Parser, meaning: str, shown: str | None = None) -> Any:
    """A Config field read from `env`; a field with a derived default holds None until given a value."""
    declared = Setting(env, default, parse, meaning, shown)
    return field(default=None if declared.derived else default, metadata={"setting": declared})


def _limit(env: str, production: str, development: str, meaning: str) -> Setting:
    return Setting(env, Profiles(production=production, development=development), text, meaning)


# Per profile: production fits real phones and vendors; development keeps demos and
# black-box tests from one address unthrottled. Read into Config.rate_limits; see ratelimit.py.
RATE_LIMITS: dict[str, Setting] = {
    "registration": _limit("CALLMARK_RATE_LIMIT_REGISTRATION", "20/hour;100/day", "5000/minute",
                           "device registrations per client address"),
    "registration_network": _limit("CALLMARK_RATE_LIMIT_REGISTRATION_NETWORK", "60/hour;300/day", "5000/minute",
                                   "device registrations per client network "
                                   "(`CALLMARK_NETWORK_PREFIX_V4`/`_V6`)"),
    "reports": _limit("CALLMARK_RATE_LIMIT_REPORTS", "60/minute;300/hour;1000/day", "50000/minute",
                      "reports per device token: a single report or withdrawal counts one, "
                      "a batch one per valid item (at least one)"),
    "calls": _limit("CALLMARK_RATE_LIMIT_CALLS", "60/minute;2000/day", "50000/minute",
                    "call events (`POST /v1/calls`) per device token"),
    "lookups": _limit("CALLMARK_RATE_LIMIT_LOOKUPS", "120/minute;5000/day", "50000/minute",
                      "number and prefix lookups per device token or API key"),
    "lookups_network": _limit("CALLMARK_RATE_LIMIT_LOOKUPS_NETWORK", "600/minute;20000/day", "50000/minute",
                              "devices' number and prefix lookups per client network "
                              "(API keys keep only their own limit)"),
    "lookups_fresh": _limit("CALLMARK_RATE_LIMIT_LOOKUPS_FRESH", "30/minute;200/day", "50000/minute",
                            "number and prefix lookups per device younger than `CALLMARK_FRESH_DEVICE_DAYS`"),
    "erasure": _limit("CALLMARK_RATE_LIMIT_ERASURE", "5/minute;20/day", "5000/minute",
                      "`DELETE /v1/devices/me` per device token "
                      "(its own budget: a device past its reports can still erase itself)"),
    "disputes": _limit("CALLMARK_RATE_LIMIT_DISPUTES", "5/day", "5000/minute",
                       "disputes (`POST /v1/disputes`) per device token"),
    "disputes_network": _limit("CALLMARK_RATE_LIMIT_DISPUTES_NETWORK", "20/day", "5000/minute",
                               "disputes per client network"),
    "feed": _limit("CALLMARK_RATE_LIMIT_FEED", "20/second", "200/second", "feed and export requests per API key"),
    # SMS pumping (codes triggered to premium numbers for a share of their fees) is the known attack
    # on a code by SMS: beside the device and its network, the destinations have budgets of their own.
    "verifications": _limit("CALLMARK_RATE_LIMIT_VERIFICATIONS", "5/hour;10/day", "5000/minute",
                            "Do-Not-Call verifications (codes by SMS) per device token"),
    "verifications_network": _limit("CALLMARK_RATE_LIMIT_VERIFICATIONS_NETWORK", "30/hour;200/day", "5000/minute",
                                    "verifications per client network"),
    "verifications_number": _limit("CALLMARK_RATE_LIMIT_VERIFICATIONS_NUMBER", "3/hour;6/day", "5000/minute",
                                   "verifications per destination number, whichever devices ask"),
    "verifications_country": _limit("CALLMARK_RATE_LIMIT_VERIFICATIONS_COUNTRY", "30/hour;200/day", "5000/minute",
                                    "verifications per destination country (region), for numbers outside "
                                    "`CALLMARK_DEFAULT_REGION`: pumping earns from premium ranges abroad; "
                                    "the service's own country is held by the other limits"),
    "dnc": _limit("CALLMARK_RATE_LIMIT_DNC", "30/minute;300/day", "5000/minute",
                  "other Do-Not-Call requests per device token: registering, listing, changing and removing "
                  "registrations, consents and their withdrawal"),
    "scrub": _limit("CALLMARK_RATE_LIMIT_SCRUB", "60/minute;5000/day", "5000/minute",
                    "scrub and receipt requests per `scrub` API key (the numbers scrubbed have "
                    "`CALLMARK_SCRUB_DAILY_NUMBERS`)"),
    "public": _limit("CALLMARK_RATE_LIMIT_PUBLIC", "60/minute;2000/day", "5000/minute",
                     "requests per client address to the public figures (exposure, the monthly report and "
                     "its page), which need no credentials"),
}
RATE_LIMIT_SETTINGS = {name: limit.env for name, limit in RATE_LIMITS.items()}  # limit name -> its variable
RATE_LIMIT_DEFAULTS = {profile: {name: getattr(limit.default, profile) for name, limit in RATE_LIMITS.items()}
                       for profile in PROFILES}

# Read by other code than Config; declared here so that README's table lists every setting.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # read by prometheus-client itself (blocklist/metrics.py)
OTHER_SETTINGS = (
    Setting(MULTIPROC_ENV, None, verbatim,
            "where gunicorn workers and the scheduler keep their metrics for `/metrics`; set it yourself "
            "when running `gunicorn app:app` with several workers",
            shown="a fresh temporary folder under `python app.py`"),
)


class _Effective:
    """A Config attribute that keeps the value given and reads as its effective value.

    Worked out on every read, so a change of the profile (or the proxies, or the limits) after
    construction takes effect, as it did when validate() filled these in.
    """

    def __init__(self, name: str, effective: Callable[[Config, Any], Any]) -> None:
        self.name, self.effective = name, effective

    def __get__(self, config: Config | None, owner: type | None = None) -> Any:
        if config is None:
            return self
        return self.effective(config, config.__dict__[self.name])

    def __set__(self, config: Config, value: Any) -> None:
        config.__dict__[self.name] = value


def _rate_limits(config: Config, given: dict[str, str]) -> dict[str, str]:
    return {**{name: limit.effective(config, None) for name, limit in RATE_LIMITS.items()}, **given}


def _effective_on_read(cls: type) -> type:
    """Make the fields with derived defaults, and rate_limits, read as their effective values."""
    for declared in fields(cls):
        if "setting" in declared.metadata and declared.metadata["setting"].derived:
            setattr(cls, declared.name, _Effective(declared.name, declared.metadata["setting"].effective))
    cls.rate_limits = _Effective("rate_limits", _rate_limits)
    return cls


@_effective_on_read
@dataclass
class Config:
    """The service's settings. `Config.from_env()` reads them; tests build one directly.

    A field whose default depends on the profile or on other settings keeps what it was given
    (None: unset) and reads as its default for the config as it is then (`_Effective`), as does
    `rate_limits` (the given limits over the profile's); so `validate()` has nothing to fill in.
    """

    redis_url: str | None = setting(
        "REDIS_URL", None, text,
        "Redis to use (`redis://host:6379/0`); unset: the embedded Redis in the data folder")
    redis_cluster: bool = setting(
        "CALLMARK_REDIS_CLUSTER", False, flag,
        "`REDIS_URL` names one node of a Redis Cluster (docs/DEPLOY.md)")
    # from_env's default is production when REDIS_URL is set; a Config built directly is development
    profile: str = setting(
        "CALLMARK_PROFILE", "development", text,
        "`production` requires `CALLMARK_SECRET_KEY` and turns on the abuse guards",
        shown="`development` without `REDIS_URL`, `production` with it")
    secret_key: str | None = setting(
        "CALLMARK_SECRET_KEY", None, text,
        "keys the hashes of device tokens and reporter ids; at least 32 characters",
        shown="generated once into the data folder (development only)")
    data_dir: str = setting(
        "CALLMARK_DATA_DIR", "./var", text,
        "embedded Redis data (AOF, `appendfsync everysec`) and generated secrets")
    host: str = setting("HOST", "127.0.0.1", text, "the address `python app.py` listens on")
    port: int = setting("PORT", 8000, integer(0), "the port `python app.py` listens on")
    start_wait: float = setting(
        "CALLMARK_START_WAIT", 60.0, number(0.0),
        "seconds a `python app.py` waits for an earlier one on the same data folder to exit; "
        "then it exits 1 (`data folder ... in use`)")
    workers: int = setting("CALLMARK_WORKERS", 0, integer(0), "gunicorn workers", shown="2 per CPU core")
    threads: int = setting("CALLMARK_THREADS", 4, integer(1), "threads per gunicorn worker")
    trusted_proxies: int = setting(
        "CALLMARK_TRUSTED_PROXIES", 0, integer(0),
        "proxies in front whose `X-Forwarded-For` names the client address (rate limits, networks); "
        "with any, `X-Forwarded-Proto` also says whether the client used https")
    forwarded_allow_ips: str | None = setting(
        "CALLMARK_FORWARDED_ALLOW_IPS", lambda config: "127.0.0.1,::1" if config.trusted_proxies else "", verbatim,
        "addresses (or `*`) from which gunicorn believes `X-Forwarded-Proto`/`-Ssl` (its `forwarded_allow_ips`)",
        shown="`127.0.0.1,::1` with trusted proxies, else none")
    redis_timeout: float = setting(
        "CALLMARK_REDIS_TIMEOUT", 2.0, number(0.05),
        "seconds before a Redis call fails with 503 `store_unavailable`")
    default_region: str = setting(
        "CALLMARK_DEFAULT_REGION", "CN", upper,
        "region for numbers in national format; a report may carry `region`")
    buckets: int = setting(
        "CALLMARK_BUCKETS", 64, integer(1),
        "hash-tag partitions of the numbers; fixed for the life of a deployment")
    half_life_days: float = setting("CALLMARK_HALF_LIFE_DAYS", 90.0, number(0.01), "half-life of a report's evidence")
    block_min_reporters: int = setting(
        "CALLMARK_BLOCK_MIN_REPORTERS", 3, integer(1), "distinct spam reporters needed to block")
    block_score_fraction: float = setting(
        "CALLMARK_BLOCK_SCORE_FRACTION", 0.5, number(0.0),
        "a block also needs decayed spam score ≥ reporters × this")
    # Abuse guards (docs/REPUTATION.md), on in production.
    distinct_networks: bool | None = setting(
        "CALLMARK_DISTINCT_NETWORKS", Profiles(production=True, development=False), flag,
        "a block needs its reporters on distinct networks")
    network_prefix_v4: int = setting(
        "CALLMARK_NETWORK_PREFIX_V4", 24, integer(8), "the bits of an IPv4 address that name its network")
    network_prefix_v6: int = setting(
        "CALLMARK_NETWORK_PREFIX_V6", 48, integer(16), "the bits of an IPv6 address that name its network")
    burst_guard: bool | None = setting(
        "CALLMARK_BURST_GUARD", Profiles(production=True, development=False), flag,
        "hold a number at warn when fresh devices tag it in a burst, and give devices registered in a burst "
        "on one network a low starting weight")
    burst_min_tags: int = setting(
        "CALLMARK_BURST_MIN_TAGS", 8, integer(2), "the burst: this many fresh devices' spam tags …")
    burst_window_minutes: int = setting(
        "CALLMARK_BURST_WINDOW_MINUTES", 10, integer(1), "… within this many minutes")
    fresh_device_days: float = setting(
        "CALLMARK_FRESH_DEVICE_DAYS", 7.0, number(0.0), "a device younger than this is fresh")
    network_burst_devices: int = setting(
        "CALLMARK_NETWORK_BURST_DEVICES", 5, integer(1),
        "registrations per network and hour that start at full weight")
    burst_device_weight: int = setting(
        "CALLMARK_BURST_DEVICE_WEIGHT", 10, integer(0),
        "the starting weight (percent) of devices registered past that")
    human_daily_tags: int = setting(
        "CALLMARK_HUMAN_DAILY_TAGS", 100, integer(1),
        "a device tagging more numbers than this in a day (or giving more tags, retags included) weighs nothing")
    fresh_reporters_to_block: int | None = setting(
        "CALLMARK_FRESH_REPORTERS_TO_BLOCK",
        Profiles(production=FRESH_REPORTERS_TO_BLOCK, development=lambda config: config.block_min_reporters),
        integer(1), "fresh devices (on distinct networks) that block a number on their own",
        shown=f"production `{FRESH_REPORTERS_TO_BLOCK}`, development as `CALLMARK_BLOCK_MIN_REPORTERS`")
    aged_reporters_to_block: int | None = setting(
        "CALLMARK_AGED_REPORTERS_TO_BLOCK",
        Profiles(production=AGED_REPORTERS_TO_BLOCK, development=lambda config: config.block_min_reporters),
        integer(1), "devices past the fresh window without standing that block a number on their own",
        shown=f"production `{AGED_REPORTERS_TO_BLOCK}`, development as `CALLMARK_BLOCK_MIN_REPORTERS`")
    standing_min_numbers: int = setting(
        "CALLMARK_STANDING_MIN_NUMBERS", 2, integer(1),
        "numbers a device tagged before their blocks (reached without it) that give it standing: "
        "its tags then count in full (docs/REPUTATION.md)")
    ring_once_devices: int = setting(
        "CALLMARK_RING_ONCE_DEVICES", 3, integer(1),
        "reporters' worth of block credit (ranked like reporters, one per network where counted) "
        "that must see ring-once calls from a number")
    ring_once_seconds: float = setting(
        "CALLMARK_RING_ONCE_SECONDS", 3.0, number(0.1), "an unanswered ring shorter than this is a ring-once call")
    ring_once_window_minutes: int = setting(
        "CALLMARK_RING_ONCE_WINDOW_MINUTES", 60, integer(1),
        "the detector's window; events are kept this long and no longer")
    conversation_seconds: float = setting(
        "CALLMARK_CONVERSATION_SECONDS", 60.0, number(1.0),
        "an answered call this long (`duration_seconds`) is a conversation")
    talker_share: float | None = setting(
        "CALLMARK_TALKER_SHARE", Profiles(production=PRODUCTION_TALKER_SHARE, development=DEVELOPMENT_TALKER_SHARE),
        number(0.0), "a block needs this share of the devices that talked with a number as spam reporters …")
    talker_cap: int = setting("CALLMARK_TALKER_CAP", 20, integer(1), "… up to this many")
    talker_days: int = setting(
        "CALLMARK_TALKER_DAYS", 180, integer(1),
        "how long after the last conversation a number's talkers are kept")
    change_retention_days: int = setting(
        "CALLMARK_FEED_RETENTION_DAYS", 30, integer(1), "how long the change log (and report details) are kept")
    idempotency_hours: int = setting(
        "CALLMARK_IDEMPOTENCY_HOURS", 48, integer(1), "how long a `report_id` is remembered")
    routing_file: str | None = setting(
        "CALLMARK_ROUTING_FILE", None, text,
        "the complaint routing table: its agencies, and which tag's complaints go to which (YAML, or JSON when "
        "named `*.json`; format in blocklist/routing.py)",
        shown="the shipped `blocklist/routing.yaml`")
    complaint_retention_days: int = setting(
        "CALLMARK_COMPLAINT_RETENTION_DAYS", 1825, integer(1),
        "how long a complaint is kept after it was received (the FTC keeps five years); its case and the "
        "public monthly counts stay")
    dnc_grace_days: int = setting(
        "CALLMARK_DNC_GRACE_DAYS", 31, integer(0),
        "days after a Do-Not-Call registration before a call to it counts as a violation (the scrub cycle)")
    dnc_reverify_days: int = setting(
        "CALLMARK_DNC_REVERIFY_DAYS", 730, integer(1),
        "days a Do-Not-Call registration lasts unless its number is verified again (numbers are recycled)")
    scrub_daily_numbers: int = setting(
        "CALLMARK_SCRUB_DAILY_NUMBERS", Profiles(production=2_000_000, development=100_000_000), integer(1),
        "numbers one `scrub` API key may scrub per day (UTC); an upload past it is refused whole")
    dnc_bucket_bits: int = setting(
        "CALLMARK_DNC_BUCKET_BITS", 14, integer(0),
        "bits of a Do-Not-Call registration's keyed hash that choose its bucket (2^bits small hashes); keep "
        "registrations / 2^bits at most about 80 so every bucket stays in Redis's compact listpack encoding: 14 "
        "up to about 1.4 million registrations, 22 for 258 million (docs/DEPLOY.md); 10 to 22, fixed for the "
        "life of a deployment")
    sms_webhook_url: str | None = setting(
        "CALLMARK_SMS_WEBHOOK_URL", None, text,
        "the SMS gateway: verification codes go there as an HTTP POST of `{\"to\": \"<E.164>\", \"text\": …}`",
        shown="unset: development appends texts to `<CALLMARK_DATA_DIR>/sms-outbox.jsonl`, production answers "
              "503 `sms_unavailable`")
    sms_webhook_token: str | None = setting(
        "CALLMARK_SMS_WEBHOOK_TOKEN", None, text, "sent to the gateway as `Authorization: Bearer <token>` when set")
    sms_timeout: float = setting(
        "CALLMARK_SMS_TIMEOUT", 5.0, number(0.1), "seconds the gateway has to answer one attempt")
    sms_retries: int = setting(
        "CALLMARK_SMS_RETRIES", 2, integer(0), "further attempts after a gateway error or timeout")
    sweep_interval: int = setting(
        "CALLMARK_SWEEP_INTERVAL", 60, integer(0), "seconds between decay sweeps in `python app.py` (0: off)")
    log_level: str = setting("CALLMARK_LOG_LEVEL", "INFO", upper, "log level; logs go to stderr")
    log_format: str = setting(
        "CALLMARK_LOG_FORMAT", "auto", lower,
        "`json`: one JSON object per line with the request id (no number, token or key ever); `text`: readable "
        "lines; `auto`: text when stderr is a terminal outside the production profile, else JSON")
    metrics_token: str | None = setting(
        "CALLMARK_METRICS_TOKEN", None, text,
        "when set, `/metrics` answers only `Authorization: Bearer <this token>` (else 401); "
        "unset, it is open: keep it internal")
    publish_interval: int = setting(
        "CALLMARK_PUBLISH_INTERVAL", 300, integer(0),
        "seconds between scheduled publishes of the lists in `python app.py` (0: off)")
    publish_lock_seconds: int = setting(
        "CALLMARK_PUBLISH_LOCK_SECONDS", 30, integer(3),
        "lifetime of the publish lock, renewed while a publish runs: a killed publisher's lock frees this soon")
    list_min_capacity: int = setting(
        "CALLMARK_LIST_MIN_CAPACITY", 100_000, integer(1), "smallest Bloom-filter capacity of a list")
    list_headroom: float = setting(
        "CALLMARK_LIST_HEADROOM", 1.25, number(1.0),
        "a new filter's capacity is its count × this (at least the minimum); a list that outgrows it "
        "starts a new generation with 2× headroom")
    list_error_rate: float = setting(
        "CALLMARK_LIST_ERROR_RATE", 0.001, number(0.0001), "false-positive rate of the lists, from 0.0001 up to (not including) 0.5")
    delta_retention: int = setting(
        "CALLMARK_DELTA_RETENTION", 60, integer(1), "how many recent versions a delta can start from …")
    delta_retention_days: int = setting(
        "CALLMARK_DELTA_RETENTION_DAYS", 30, integer(1),
        "… if published within this many days; older clients get 410 and take the snapshot")
    signing_key: str | None = setting(
        "CALLMARK_SIGNING_KEY", None, text, "base64 of the 32-byte Ed25519 seed that signs manifests",
        shown="generated once into the data folder (development only)")
    signing_key_file: str | None = setting(
        "CALLMARK_SIGNING_KEY_FILE", None, text, "a file holding that base64 seed, instead of the variable")
    signing_next_key: str | None = setting(
        "CALLMARK_SIGNING_NEXT_KEY", None, text,
        "the announced successor during a key rotation (see docs/PROTOCOL.md section 5)")
    signing_next_key_file: str | None = setting(
        "CALLMARK_SIGNING_NEXT_KEY_FILE", None, text, "a file holding that successor, instead of the variable")
    rate_limits: dict[str, str] = field(default_factory=dict)  # RATE_LIMITS: given ones over the profile's
    redis_socket: str | None = setting(
        "CALLMARK_REDIS_SOCKET", None, text, "the embedded Redis socket handed to gunicorn workers",
        shown="set by the launcher")
    clock: Callable[[], float] | None = field(default=None, repr=False)  # tests inject time

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Config":
        """The settings the environment gives, checked; unset ones take their declared defaults."""
        env = os.environ if env is None else env
        given = {declared.name: declared.metadata["setting"].read(env)
                 for declared in fields(cls) if "setting" in declared.metadata}
        given = {name: value for name, value in given.items() if value is not None}
        given.setdefault("profile", "production" if given.get("redis_url") else "development")
        given_limits = {name: limit.read(env) for name, limit in RATE_LIMITS.items()}
        config = cls(**given, rate_limits={name: value for name, value in given_limits.items() if value is not None})
        config.validate()
        return config

    def replace(self, **changes: Any) -> "Config":
        """A copy with `changes`. The settings left to their default go on following the profile
        and the other settings (dataclasses.replace would fix them at what they read as now)."""
        given = {f.name: self.__dict__[f.name] for f in fields(self) if f.init}
        return Config(**{**given, **changes})

    def validate(self) -> None:
        """Refuse settings that cannot work; changes nothing, so calling it again is cheap and harmless."""
        if self.profile not in PROFILES:
            raise ConfigError(f"CALLMARK_PROFILE must be one of {', '.join(PROFILES)}, got {self.profile!r}")
        if self.redis_cluster and not self.redis_url:
            raise ConfigError("CALLMARK_REDIS_CLUSTER needs REDIS_URL naming one node of the cluster")
        if self.log_format not in ("json", "text", "auto"):
            raise ConfigError(f"CALLMARK_LOG_FORMAT must be json, text or auto, got {self.log_format!r}")
        for name, value in (("CALLMARK_FRESH_REPORTERS_TO_BLOCK", self.fresh_reporters_to_block),
                            ("CALLMARK_AGED_REPORTERS_TO_BLOCK", self.aged_reporters_to_block)):
            if not self.block_min_reporters <= value <= 50:
                raise ConfigError(f"{name} must be between CALLMARK_BLOCK_MIN_REPORTERS and 50, got {value}")
        if self.burst_device_weight > 100:
            raise ConfigError("CALLMARK_BURST_DEVICE_WEIGHT is a percent: at most 100")
        for name, value in self.rate_limits.items():
            try:
                parse_many(value)
            except ValueError:
                raise ConfigError(f"rate limit {name!r} is not valid: {value!r} (e.g. 60/minute;1000/day)") from None
        if not DNC_BUCKET_BITS[0] <= self.dnc_bucket_bits <= DNC_BUCKET_BITS[1]:
            raise ConfigError(f"CALLMARK_DNC_BUCKET_BITS must be between {DNC_BUCKET_BITS[0]} and {DNC_BUCKET_BITS[1]} "
                              f"(with the 42-bit field, the bucket and field take at most 64 bits), got "
                              f"{self.dnc_bucket_bits}")
        if self.buckets > 16384:
            raise ConfigError("CALLMARK_BUCKETS must be at most 16384 (the Redis Cluster slot count)")
        if self.profile == "production" and not self.secret_key:
            raise ConfigError("CALLMARK_SECRET_KEY must be set in the production profile")
        if not 0.0001 <= self.list_error_rate < 0.5:
            raise ConfigError("CALLMARK_LIST_ERROR_RATE must be in [0.0001, 0.5)")
        if self.secret_key is not None and len(self.secret_key) < 32:
            raise ConfigError("CALLMARK_SECRET_KEY must be at least 32 characters")
        for address in filter(None, (a.strip() for a in self.forwarded_allow_ips.split(","))):
            if address == "*":
                continue
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise ConfigError("CALLMARK_FORWARDED_ALLOW_IPS must be IP addresses separated by commas, "
                                  f"or *; got {address!r}") from None


def _declared() -> Iterator[Setting]:
    for declared in fields(Config):
        if declared.name == "rate_limits":
            yield from RATE_LIMITS.values()
        elif "setting" in declared.metadata:
            yield declared.metadata["setting"]
    yield from OTHER_SETTINGS


SETTINGS: tuple[Setting, ...] = tuple(_declared())  # every setting, in README's order


def settings_table() -> str:
    """README's table of settings, rendered from the declarations."""
    rows = ["| setting | default | meaning |", "|---|---|---|"]
    rows += [f"| `{declared.env}` | {declared.shown_default()} | {declared.meaning} |" for declared in SETTINGS]
    return "\n".join(rows) + "\n"


if __name__ == "__main__":  # README's settings table: `python -m blocklist.config`
    print(settings_table(), end="")
