"""The service's parts that every process opens the same way: the store with its secret,
and the signing keys. The app (blocklist/web), the scheduler and the CLI start here."""
from __future__ import annotations

import os
import secrets

from . import reputation
from .config import Config
from .embedded import EmbeddedRedis
from .keyring import Keyring
from .secretfile import load_or_create
from .store import Store, connect

SECRET_FILE = "secret.key"  # in the data folder, when CALLMARK_SECRET_KEY is not set


def secret(config: Config) -> bytes:
    """CALLMARK_SECRET_KEY, or (development only: Config.validate refuses production without
    it) the secret generated once into the data folder."""
    if config.secret_key:
        return config.secret_key.encode()
    path = os.path.join(config.data_dir, SECRET_FILE)
    return load_or_create(path, lambda: secrets.token_urlsafe(48).encode())


def open_store(config: Config) -> tuple[Store, EmbeddedRedis | None]:
    """The store on the configured Redis, and the embedded server when this process started it."""
    client, server = connect(config)
    return Store.create(client, config, secret(config), reputation.script_constants(config)), server


def open_keyring(store: Store) -> Keyring:
    """This process's signing seeds; the key state itself is read from Redis at every use."""
    keyring = Keyring(store)
    keyring.start()
    return keyring
