"""The Redis connection, the key names and the Lua scripts, bundled for domain code."""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Callable

import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

from . import embedded
from .config import Config
from .keys import Keys

log = logging.getLogger(__name__)

STATS_DAYS = 400  # days of per-day report statistics kept (GET /v1/stats)
TOP_MIN_REPORTERS = 5  # a number enters the most-reported ranking from this many reporters


def connect(config: Config) -> tuple[redis.Redis, "embedded.EmbeddedRedis | None"]:
    """A client for the configured Redis; with no REDIS_URL, the embedded server's; with
    CALLMARK_REDIS_CLUSTER, a cluster client that finds every node from REDIS_URL's."""
    options = dict(
        decode_responses=True,
        socket_timeout=config.redis_timeout,
        socket_connect_timeout=config.redis_timeout,
        health_check_interval=30,
    )
    if config.redis_cluster:
        return RedisCluster.from_url(config.redis_url, **options), None
    # No retries: a Redis that does not answer makes a request fail (503) within the timeout,
    # not after redis-py's default retries and backoff (seconds per request).
    options["retry"] = Retry(NoBackoff(), 0)
    if config.redis_url:
        return redis.Redis.from_url(config.redis_url, **options), None
    if config.redis_socket:
        return redis.Redis(unix_socket_path=config.redis_socket, **options), None
    server = embedded.attach_or_start(config.data_dir)
    return redis.Redis(unix_socket_path=server.socket, **options), server


REPORTER_CREDIT = 1000  # block credit of one full reporter: credits count thousandths of a reporter


def credit(block_min: int, reporters_to_block: int) -> int:
    """A vote's credit toward a block, in thousandths of a reporter: `reporters_to_block`
    such votes on distinct networks reach BLOCK_MIN reporters' worth, one fewer do not."""
    return math.ceil(block_min * REPORTER_CREDIT / max(1, reporters_to_block))


def script_header(constants: dict[str, int | float | str]) -> str:
    """The header prepended to the reputation scripts: one `local NAME = value` line each."""
    return "".join(f"local {name} = {_lua_literal(value)}\n" for name, value in constants.items())


def _lua_literal(value: int | float | str) -> str:
    if isinstance(value, str) and not any(c in value for c in "'\\\n"):
        return f"'{value}'"
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return repr(value)
    raise ValueError(f"no Lua literal for script constant {value!r}")


def _lua(name: str, package: str = "blocklist") -> str:
    return resources.files(package).joinpath("lua", name).read_text()


@dataclass
class Store:
    """What domain code needs: client, keys, scripts, settings, clock and the keying secret."""

    redis: redis.Redis
    binary: redis.Redis  # the same server, answering bytes: snapshots and deltas
    config: Config
    keys: Keys
    report_script: "redis.commands.core.Script"
    read_script: "redis.commands.core.Script"
    moderation_script: "redis.commands.core.Script"  # lua/moderation.lua: disputes, overrides, holds
    clock: Callable[[], float]
    secret: bytes  # keys token hashes and voter ids
    auth_cache: dict[str, Any] = field(default_factory=dict)  # per-process caches of devices and keys
    scripts: dict[tuple[str, str], "redis.commands.core.Script"] = field(default_factory=dict)
    constants: dict[str, int | float | str] = field(default_factory=dict)  # the reputation scripts' header

    def pipelined(self, fill: Callable[["redis.client.Pipeline"], None]) -> list:
        """Queue commands with `fill(pipe)` and run them in one round trip.

        Scripts go by EVALSHA alone (see `evalsha`), not with a SCRIPT EXISTS before every
        round trip. Each is loaded when this process first names it (`script`), so a NOSCRIPT
        means Redis lost them all (a restart, SCRIPT FLUSH): they are loaded and the round trip
        runs again, which is safe because no script of it ran and every other command queued
        by CallMark may be repeated.
        """
        for attempt in (1, 2):
            pipe = self.redis.pipeline(transaction=False)
            fill(pipe)
            try:
                return pipe.execute()
            except redis.exceptions.NoScriptError:
                if attempt == 2:
                    raise
                for script in (self.report_script, self.read_script, self.moderation_script, *self.scripts.values()):
                    self.redis.script_load(script.script)

    @staticmethod
    def evalsha(pipe: "redis.client.Pipeline", script: "redis.commands.core.Script", keys: list, args: list) -> None:
        """Queue a script on a pipeline by its SHA only; `pipelined` loads it if Redis lost it.
        (A plain command: redis-py's cluster pipeline refuses its `evalsha` helper, though the
        cluster routes EVALSHA by its keys like any other command.)"""
        pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)

    def script(self, package: str, name: str) -> "redis.commands.core.Script":
        """A Lua script from `package`/lua/, registered once per store."""
        if (package, name) not in self.scripts:
            script = self.redis.register_script(_lua(name, package))
            # Loaded now, not on its first NOSCRIPT: a round trip where one script ran and another
            # was missing could not simply run again.
            self.redis.script_load(script.script)
            self.scripts[package, name] = script
        return self.scripts[package, name]

    @classmethod
    def create(cls, client: redis.Redis, config: Config, secret: bytes,
               constants: dict[str, int | float | str]) -> "Store":
        """The store on `client`; `constants` are the scripts' header (reputation.script_constants)."""
        shared = script_header(constants) + _lua("verdict.lua")
        if isinstance(client, RedisCluster):
            binary = RedisCluster.from_url(config.redis_url, decode_responses=False,
                                           socket_timeout=config.redis_timeout,
                                           socket_connect_timeout=config.redis_timeout)
        else:
            pool = client.connection_pool
            binary = redis.Redis(connection_pool=redis.ConnectionPool(
                connection_class=pool.connection_class, **{**pool.connection_kwargs, "decode_responses": False}))
        return cls(
            redis=client,
            binary=binary,
            config=config,
            keys=Keys(config.buckets),
            report_script=client.register_script(shared + _lua("report.lua")),
            read_script=client.register_script(shared + _lua("read.lua")),
            moderation_script=client.register_script(shared + _lua("moderation.lua")),
            clock=config.clock or time.time,
            secret=secret,
            constants=constants,
        )
