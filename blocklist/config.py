"""Every setting CallMark reads, named once, with its default and meaning."""
from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from typing import Callable, Mapping

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

# Per profile: production fits real phones and vendors; development keeps demos and
# black-box tests from one address unthrottled.
RATE_LIMIT_DEFAULTS = {
    "production": {
        "registration": "20/hour;100/day",  # per client address
        "registration_network": "60/hour;300/day",  # per client network (CALLMARK_NETWORK_PREFIX_V4/_V6)
        "reports": "60/minute;300/hour;1000/day",  # per device token; every item of a batch counts
        "lookups": "120/minute;5000/day",  # per device token or API key
        "lookups_network": "600/minute;20000/day",  # device lookups per client network
        "lookups_fresh": "30/minute;200/day",  # per device younger than CALLMARK_FRESH_DEVICE_DAYS
        "calls": "60/minute;2000/day",  # call events per device token
        "erasure": "5/minute;20/day",  # DELETE /v1/devices/me per device token
        "disputes": "5/day",  # per device token
        "disputes_network": "20/day",  # per client network
        "feed": "20/second",  # per API key
    },
    "development": {
        "registration": "5000/minute",
        "registration_network": "5000/minute",
        "reports": "50000/minute",
        "lookups": "50000/minute",
        "lookups_network": "50000/minute",
        "lookups_fresh": "50000/minute",
        "calls": "50000/minute",
        "erasure": "5000/minute",
        "disputes": "5000/minute",
        "disputes_network": "5000/minute",
        "feed": "200/second",
    },
}
RATE_LIMIT_SETTINGS = {  # limit name -> environment variable that overrides it
    "registration": "CALLMARK_RATE_LIMIT_REGISTRATION",
    "registration_network": "CALLMARK_RATE_LIMIT_REGISTRATION_NETWORK",
    "reports": "CALLMARK_RATE_LIMIT_REPORTS",
    "lookups": "CALLMARK_RATE_LIMIT_LOOKUPS",
    "lookups_network": "CALLMARK_RATE_LIMIT_LOOKUPS_NETWORK",
    "lookups_fresh": "CALLMARK_RATE_LIMIT_LOOKUPS_FRESH",
    "calls": "CALLMARK_RATE_LIMIT_CALLS",
    "erasure": "CALLMARK_RATE_LIMIT_ERASURE",
    "disputes": "CALLMARK_RATE_LIMIT_DISPUTES",
    "disputes_network": "CALLMARK_RATE_LIMIT_DISPUTES_NETWORK",
    "feed": "CALLMARK_RATE_LIMIT_FEED",
}


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, minimum: float = 0.0) -> float:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not value >= minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _flag(env: Mapping[str, str], name: str) -> bool | None:
    """An on/off setting; None when unset, so the profile decides."""
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return None
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be on or off (1/0, true/false), got {raw!r}")


@dataclass
class Config:
    """The service's settings. `Config.from_env()` reads them; tests build one directly."""

    redis_url: str | None = None  # REDIS_URL: external Redis; unset = embedded server
    redis_cluster: bool = False  # CALLMARK_REDIS_CLUSTER: REDIS_URL names a seed node of a Redis Cluster
    redis_socket: str | None = None  # CALLMARK_REDIS_SOCKET: set by the launcher for its workers
    redis_timeout: float = 2.0  # CALLMARK_REDIS_TIMEOUT: seconds before a Redis call fails (503)
    data_dir: str = "./var"  # CALLMARK_DATA_DIR: embedded Redis data and generated secrets
    profile: str = "development"  # CALLMARK_PROFILE: development | production
    host: str = "127.0.0.1"  # HOST
    port: int = 8000  # PORT
    workers: int = 0  # CALLMARK_WORKERS: gunicorn workers; 0 = 2 per CPU core
    threads: int = 4  # CALLMARK_THREADS: threads per gunicorn worker
    secret_key: str | None = None  # CALLMARK_SECRET_KEY: keys token and reporter hashes
    default_region: str = "CN"  # CALLMARK_DEFAULT_REGION: region for national-format numbers
    buckets: int = 64  # CALLMARK_BUCKETS: hash-tag partitions, fixed per deployment
    half_life_days: float = 90.0  # CALLMARK_HALF_LIFE_DAYS: evidence half-life
    block_min_reporters: int = 3  # CALLMARK_BLOCK_MIN_REPORTERS: distinct spam reporters to block
    block_score_fraction: float = 0.5  # CALLMARK_BLOCK_SCORE_FRACTION: decayed score needed, x reporters
    change_retention_days: int = 30  # CALLMARK_FEED_RETENTION_DAYS: change-log retention
    idempotency_hours: int = 48  # CALLMARK_IDEMPOTENCY_HOURS: how long a report_id is remembered
    sweep_interval: int = 60  # CALLMARK_SWEEP_INTERVAL: seconds between decay sweeps (0 = off)
    log_level: str = "INFO"  # CALLMARK_LOG_LEVEL
    log_format: str = "json"  # CALLMARK_LOG_FORMAT: json | text
    metrics_token: str | None = None  # CALLMARK_METRICS_TOKEN: /metrics wants it as a bearer token; unset = open
    list_min_capacity: int = 100_000  # CALLMARK_LIST_MIN_CAPACITY: smallest Bloom-filter capacity
    list_headroom: float = 1.25  # CALLMARK_LIST_HEADROOM: capacity = count x this, at least the minimum
    list_error_rate: float = 0.001  # CALLMARK_LIST_ERROR_RATE: false-positive rate of the lists
    publish_lock_seconds: int = 30  # CALLMARK_PUBLISH_LOCK_SECONDS: a dead publisher's lock frees after this
    publish_interval: int = 300  # CALLMARK_PUBLISH_INTERVAL: seconds between scheduled publishes (0 = off)
    delta_retention: int = 60  # CALLMARK_DELTA_RETENTION: versions a delta can start from
    delta_retention_days: int = 30  # CALLMARK_DELTA_RETENTION_DAYS: and how old they may be
    signing_key: str | None = None  # CALLMARK_SIGNING_KEY: base64 Ed25519 seed that signs manifests
    signing_key_file: str | None = None  # CALLMARK_SIGNING_KEY_FILE: or a file holding it
    signing_next_key: str | None = None  # CALLMARK_SIGNING_NEXT_KEY: announced successor (rotation)
    signing_next_key_file: str | None = None  # CALLMARK_SIGNING_NEXT_KEY_FILE: or a file holding it
    # Abuse guards (docs/REPUTATION.md); None = the profile's default (on in production).
    distinct_networks: bool | None = None  # CALLMARK_DISTINCT_NETWORKS: block needs distinct networks
    network_prefix_v4: int = 24  # CALLMARK_NETWORK_PREFIX_V4: bits of an IPv4 address naming its network
    network_prefix_v6: int = 48  # CALLMARK_NETWORK_PREFIX_V6: bits of an IPv6 address naming its network
    burst_guard: bool | None = None  # CALLMARK_BURST_GUARD: hold bursts of fresh devices' tags at warn
    burst_min_tags: int = 8  # CALLMARK_BURST_MIN_TAGS: fresh devices' spam tags that make a burst
    burst_window_minutes: int = 10  # CALLMARK_BURST_WINDOW_MINUTES: ... within this many minutes
    fresh_device_days: float = 7.0  # CALLMARK_FRESH_DEVICE_DAYS: a device this young is fresh
    network_burst_devices: int = 5  # CALLMARK_NETWORK_BURST_DEVICES: registrations per network per hour at full weight
    burst_device_weight: int = 10  # CALLMARK_BURST_DEVICE_WEIGHT: percent weight of devices past that
    human_daily_tags: int = 100  # CALLMARK_HUMAN_DAILY_TAGS: tags a day beyond which a device weighs nothing
    # Reporters on distinct networks a block needs when all are fresh devices, or aged devices
    # without standing (docs/REPUTATION.md); None = the profile's default.
    fresh_reporters_to_block: int | None = None  # CALLMARK_FRESH_REPORTERS_TO_BLOCK
    aged_reporters_to_block: int | None = None  # CALLMARK_AGED_REPORTERS_TO_BLOCK
    standing_min_numbers: int = 2  # CALLMARK_STANDING_MIN_NUMBERS: early right tags that earn standing
    ring_once_devices: int = 3  # CALLMARK_RING_ONCE_DEVICES: distinct devices that must see ring-once calls
    ring_once_seconds: float = 3.0  # CALLMARK_RING_ONCE_SECONDS: an unanswered ring shorter than this
    ring_once_window_minutes: int = 60  # CALLMARK_RING_ONCE_WINDOW_MINUTES: ... within this window
    conversation_seconds: float = 60.0  # CALLMARK_CONVERSATION_SECONDS: an answered call this long is a conversation
    talker_share: float | None = None  # CALLMARK_TALKER_SHARE: spam reporters needed per device that talked with a number
    talker_cap: int = 20  # CALLMARK_TALKER_CAP: ... but never more than this many to block
    talker_days: int = 180  # CALLMARK_TALKER_DAYS: a number's conversations are counted this long after the last
    trusted_proxies: int = 0  # CALLMARK_TRUSTED_PROXIES: proxies whose X-Forwarded-For is believed
    # CALLMARK_FORWARDED_ALLOW_IPS: addresses (or *) whose X-Forwarded-Proto gunicorn believes;
    # None = 127.0.0.1 and ::1 when trusted_proxies > 0, else none
    forwarded_allow_ips: str | None = None
    start_wait: float = 60.0  # CALLMARK_START_WAIT: seconds python app.py waits for an earlier one on its data folder
    rate_limits: dict[str, str] = field(default_factory=dict)  # CALLMARK_RATE_LIMIT_*: see ratelimit.py
    clock: Callable[[], float] | None = field(default=None, repr=False)  # tests inject time

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Config":
        env = os.environ if env is None else env
        redis_url = env.get("REDIS_URL") or None
        profile = env.get("CALLMARK_PROFILE") or ("production" if redis_url else "development")
        config = cls(
            redis_url=redis_url,
            redis_socket=env.get("CALLMARK_REDIS_SOCKET") or None,
            redis_cluster=bool(_flag(env, "CALLMARK_REDIS_CLUSTER")),
            redis_timeout=_float(env, "CALLMARK_REDIS_TIMEOUT", 2.0, 0.05),
            data_dir=env.get("CALLMARK_DATA_DIR") or "./var",
            profile=profile,
            host=env.get("HOST") or "127.0.0.1",
            port=_int(env, "PORT", 8000, 0),
            workers=_int(env, "CALLMARK_WORKERS", 0, 0),
            threads=_int(env, "CALLMARK_THREADS", 4, 1),
            secret_key=env.get("CALLMARK_SECRET_KEY") or None,
            default_region=(env.get("CALLMARK_DEFAULT_REGION") or "CN").upper(),
            buckets=_int(env, "CALLMARK_BUCKETS", 64, 1),
            half_life_days=_float(env, "CALLMARK_HALF_LIFE_DAYS", 90.0, 0.01),
            block_min_reporters=_int(env, "CALLMARK_BLOCK_MIN_REPORTERS", 3, 1),
            block_score_fraction=_float(env, "CALLMARK_BLOCK_SCORE_FRACTION", 0.5, 0.0),
            change_retention_days=_int(env, "CALLMARK_FEED_RETENTION_DAYS", 30, 1),
            idempotency_hours=_int(env, "CALLMARK_IDEMPOTENCY_HOURS", 48, 1),
            sweep_interval=_int(env, "CALLMARK_SWEEP_INTERVAL", 60, 0),
            log_level=(env.get("CALLMARK_LOG_LEVEL") or "INFO").upper(),
            log_format=(env.get("CALLMARK_LOG_FORMAT") or "json").lower(),
            metrics_token=env.get("CALLMARK_METRICS_TOKEN") or None,
            list_min_capacity=_int(env, "CALLMARK_LIST_MIN_CAPACITY", 100_000, 1),
            list_headroom=_float(env, "CALLMARK_LIST_HEADROOM", 1.25, 1.0),
            list_error_rate=_float(env, "CALLMARK_LIST_ERROR_RATE", 0.001, 0.0001),
            publish_interval=_int(env, "CALLMARK_PUBLISH_INTERVAL", 300, 0),
            publish_lock_seconds=_int(env, "CALLMARK_PUBLISH_LOCK_SECONDS", 30, 3),
            delta_retention=_int(env, "CALLMARK_DELTA_RETENTION", 60, 1),
            delta_retention_days=_int(env, "CALLMARK_DELTA_RETENTION_DAYS", 30, 1),
            signing_key=env.get("CALLMARK_SIGNING_KEY") or None,
            signing_key_file=env.get("CALLMARK_SIGNING_KEY_FILE") or None,
            signing_next_key=env.get("CALLMARK_SIGNING_NEXT_KEY") or None,
            signing_next_key_file=env.get("CALLMARK_SIGNING_NEXT_KEY_FILE") or None,
        )
        config.distinct_networks = _flag(env, "CALLMARK_DISTINCT_NETWORKS")
        config.network_prefix_v4 = _int(env, "CALLMARK_NETWORK_PREFIX_V4", 24, 8)
        config.network_prefix_v6 = _int(env, "CALLMARK_NETWORK_PREFIX_V6", 48, 16)
        config.burst_guard = _flag(env, "CALLMARK_BURST_GUARD")
        config.burst_min_tags = _int(env, "CALLMARK_BURST_MIN_TAGS", 8, 2)
        config.burst_window_minutes = _int(env, "CALLMARK_BURST_WINDOW_MINUTES", 10, 1)
        config.fresh_device_days = _float(env, "CALLMARK_FRESH_DEVICE_DAYS", 7.0, 0.0)
        config.network_burst_devices = _int(env, "CALLMARK_NETWORK_BURST_DEVICES", 5, 1)
        config.burst_device_weight = _int(env, "CALLMARK_BURST_DEVICE_WEIGHT", 10, 0)
        config.human_daily_tags = _int(env, "CALLMARK_HUMAN_DAILY_TAGS", 100, 1)
        if env.get("CALLMARK_FRESH_REPORTERS_TO_BLOCK"):
            config.fresh_reporters_to_block = _int(env, "CALLMARK_FRESH_REPORTERS_TO_BLOCK", 0, 1)
        if env.get("CALLMARK_AGED_REPORTERS_TO_BLOCK"):
            config.aged_reporters_to_block = _int(env, "CALLMARK_AGED_REPORTERS_TO_BLOCK", 0, 1)
        config.standing_min_numbers = _int(env, "CALLMARK_STANDING_MIN_NUMBERS", 2, 1)
        config.ring_once_devices = _int(env, "CALLMARK_RING_ONCE_DEVICES", 3, 1)
        config.ring_once_seconds = _float(env, "CALLMARK_RING_ONCE_SECONDS", 3.0, 0.1)
        config.ring_once_window_minutes = _int(env, "CALLMARK_RING_ONCE_WINDOW_MINUTES", 60, 1)
        config.conversation_seconds = _float(env, "CALLMARK_CONVERSATION_SECONDS", 60.0, 1.0)
        if env.get("CALLMARK_TALKER_SHARE"):
            config.talker_share = _float(env, "CALLMARK_TALKER_SHARE", 0.0, 0.0)
        config.talker_cap = _int(env, "CALLMARK_TALKER_CAP", 20, 1)
        config.talker_days = _int(env, "CALLMARK_TALKER_DAYS", 180, 1)
        config.trusted_proxies = _int(env, "CALLMARK_TRUSTED_PROXIES", 0, 0)
        if "CALLMARK_FORWARDED_ALLOW_IPS" in env:
            config.forwarded_allow_ips = env["CALLMARK_FORWARDED_ALLOW_IPS"]
        config.start_wait = _float(env, "CALLMARK_START_WAIT", 60.0, 0.0)
        config.rate_limits = {name: env[var] for name, var in RATE_LIMIT_SETTINGS.items() if env.get(var)}
        config.validate()
        return config

    def validate(self) -> None:
        if self.profile not in PROFILES:
            raise ConfigError(f"CALLMARK_PROFILE must be one of {', '.join(PROFILES)}, got {self.profile!r}")
        self.rate_limits = {**RATE_LIMIT_DEFAULTS[self.profile], **self.rate_limits}
        if self.redis_cluster and not self.redis_url:
            raise ConfigError("CALLMARK_REDIS_CLUSTER needs REDIS_URL naming one node of the cluster")
        if self.log_format not in ("json", "text"):
            raise ConfigError(f"CALLMARK_LOG_FORMAT must be json or text, got {self.log_format!r}")
        guarded = self.profile == "production"
        self.distinct_networks = guarded if self.distinct_networks is None else self.distinct_networks
        self.burst_guard = guarded if self.burst_guard is None else self.burst_guard
        if self.talker_share is None:
            self.talker_share = PRODUCTION_TALKER_SHARE if guarded else DEVELOPMENT_TALKER_SHARE
        if self.fresh_reporters_to_block is None:
            self.fresh_reporters_to_block = FRESH_REPORTERS_TO_BLOCK if guarded else self.block_min_reporters
        if self.aged_reporters_to_block is None:
            self.aged_reporters_to_block = AGED_REPORTERS_TO_BLOCK if guarded else self.block_min_reporters
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
        if self.buckets > 16384:
            raise ConfigError("CALLMARK_BUCKETS must be at most 16384 (the Redis Cluster slot count)")
        if self.profile == "production" and not self.secret_key:
            raise ConfigError("CALLMARK_SECRET_KEY must be set in the production profile")
        if not 0.0001 <= self.list_error_rate < 0.5:
            raise ConfigError("CALLMARK_LIST_ERROR_RATE must be in [0.0001, 0.5)")
        if self.secret_key is not None and len(self.secret_key) < 32:
            raise ConfigError("CALLMARK_SECRET_KEY must be at least 32 characters")
        if self.forwarded_allow_ips is None:
            self.forwarded_allow_ips = "127.0.0.1,::1" if self.trusted_proxies else ""
        for address in filter(None, (a.strip() for a in self.forwarded_allow_ips.split(","))):
            if address == "*":
                continue
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise ConfigError("CALLMARK_FORWARDED_ALLOW_IPS must be IP addresses separated by commas, "
                                  f"or *; got {address!r}") from None
