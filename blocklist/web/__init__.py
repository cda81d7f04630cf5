"""The HTTP edge: the app factory, routes, auth, schemas, error mapping, rate limits,
OpenAPI, the operators' pages, request logging and metrics."""
from __future__ import annotations

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from .. import logs, routing
from ..config import Config
from ..run import cli  # the operator commands, `flask --app app …`
from ..service import open_keyring, open_store
from . import admin, api, complaints_api, dnc_api, errors, observability, openapi, public_pages, ratelimit, sync_api


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
    routing.cached(config.routing_file)  # a bad routing table stops the start, naming its line
    logs.configure_logging(config.log_level, config.log_format, config.profile)
    app = Flask(__name__)
    app.config["CALLMARK"] = config
    app.json.ensure_ascii = False  # Chinese tag names stay readable
    app.json.sort_keys = False
    store, server = open_store(config)
    app.extensions["callmark"] = store
    app.extensions["callmark.embedded"] = server
    app.extensions["callmark.signing"] = open_keyring(store)

    if config.trusted_proxies:  # the client address (rate limits, networks) from X-Forwarded-For
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=config.trusted_proxies)
    observability.init_app(app)
    app.register_blueprint(api.bp)
    app.register_blueprint(sync_api.bp)
    app.register_blueprint(dnc_api.bp)
    app.register_blueprint(complaints_api.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(public_pages.bp)
    openapi.init_app(app)
    ratelimit.init_app(app, _limiter_storage(config, store.redis))
    errors.register(app)
    cli.register(app)
    return app
