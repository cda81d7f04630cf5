"""CallMark: crowd-tagged caller reputation and compact blocklists for phones."""
from __future__ import annotations

import os
import secrets

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from .config import Config
from .secretfile import load_or_create
from .store import Store, connect

SECRET_FILE = "secret.key"  # in the data folder, when CALLMARK_SECRET_KEY is not set


def _secret(config: Config) -> bytes:
    """CALLMARK_SECRET_KEY, or (development only: Config.validate refuses production without
    it) the secret generated once into the data folder."""
    if config.secret_key:
        return config.secret_key.encode()
    path = os.path.join(config.data_dir, SECRET_FILE)
    return load_or_create(path, lambda: secrets.token_urlsafe(48).encode())


def _limiter_storage(config: Config, client) -> str:
    """The rate limiter's storage URI: the same Redis (and database) as everything else."""
    if config.redis_cluster:  # limits' cluster storage: the same nodes
        return "redis+cluster://" + config.redis_url.split("://", 1)[1]
    kwargs = client.connection_pool.connection_kwargs
    if "path" in kwargs:  # a Unix socket: the embedded server, or a unix:// REDIS_URL
        return f"redis+unix://{kwargs['path']}?db={kwargs.get('db', 0)}"
    return config.redis_url


def create_app(config: Config | None = None) -> Flask:
    """Build the application from `config` (default: the environment)."""
    config = config or Config.from_env()
    config.validate()
    from . import observability

    observability.configure_logging(config.log_level, config.log_format)
    app = Flask(__name__)
    app.config["CALLMARK"] = config
    app.json.ensure_ascii = False  # Chinese tag names stay readable
    app.json.sort_keys = False
    client, server = connect(config)
    app.extensions["callmark"] = Store.create(client, config, _secret(config))
    app.extensions["callmark.embedded"] = server

    from sync import api as sync_api
    from sync import cli as sync_cli

    from . import admin, api, cli, openapi, ratelimit
    from .api import errors

    if config.trusted_proxies:  # the client address (rate limits, networks) from X-Forwarded-For
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=config.trusted_proxies)
    observability.init_app(app)
    app.register_blueprint(api.bp)
    app.register_blueprint(admin.bp)
    openapi.init_app(app)
    ratelimit.init_app(app, _limiter_storage(config, client))
    sync_api.init_app(app)
    errors.register(app)
    cli.register(app)
    sync_cli.register(app)
    return app
