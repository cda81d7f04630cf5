"""Operator commands for lists and signing keys: `flask --app app lists …`, `… signing …`."""
from __future__ import annotations

import os
import sys

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from . import publish, signing


def register(app: Flask) -> None:
    app.cli.add_command(lists_group)
    app.cli.add_command(signing_group)


@click.group("lists", cls=AppGroup, help="Publish the Bloom-filter lists.")
def lists_group() -> None:
    pass


@lists_group.command("publish")
@click.option("--wait", default=600.0, show_default=True, help="Seconds to wait for a running publish.")
def publish_now(wait: float) -> None:
    """Sweep decay, publish every list now and print what was published."""
    store = current_app.extensions["callmark"]
    current, _ = current_app.extensions["callmark.signing"]
    try:
        results = publish.publish(store, current, wait=wait)
    except publish.PublishError as exc:
        click.echo(f"publish failed: {exc}", err=True)
        sys.exit(1)
    if results is None:
        click.echo(f"publish failed: another publisher held the lock for {wait:g} s", err=True)
        sys.exit(1)
    for result in results:
        click.echo(result.line())


@click.group("signing", cls=AppGroup, help="The Ed25519 keys that sign manifests.")
def signing_group() -> None:
    pass


@signing_group.command("rotate")
@click.option("--promote", is_flag=True, help="Switch to the announced key (step 2 of a rotation).")
def rotate(promote: bool) -> None:
    """Step 1: announce a new key, endorsed by the current one. Step 2 (--promote): sign with it.

    Works on the keys in the data folder; with keys from the environment, set
    CALLMARK_SIGNING_NEXT_KEY (step 1), then move it to CALLMARK_SIGNING_KEY (step 2).
    """
    config = current_app.extensions["callmark"].config
    if config.signing_key or config.signing_key_file:
        raise click.ClickException("the signing keys come from the environment: rotate them there (see --help)")
    folder = config.data_dir
    current_path = os.path.join(folder, signing.SIGNING_FILE)
    next_path = os.path.join(folder, signing.NEXT_SIGNING_FILE)
    if not promote:
        if os.path.exists(next_path):
            raise click.ClickException("a key is already announced; promote it with --promote")
        with open(next_path, "xb") as f:
            f.write(signing.new_seed_text())
            os.fchmod(f.fileno(), 0o600)
        store = current_app.extensions["callmark"]
        current, upcoming = signing.load_keys(config)
        signing.announce(store, current, upcoming, publish.iso(store.clock()))
        click.echo(f"announced key {upcoming.key_id}; clients learn it at their next sync. "
                   f"Promote it with --promote after they have (30 days is safe).")
        return
    if not os.path.exists(next_path):
        raise click.ClickException("no key is announced; run `signing rotate` first")
    os.replace(current_path, os.path.join(folder, signing.PREVIOUS_SIGNING_FILE))
    os.replace(next_path, current_path)
    current, _ = signing.load_keys(config)
    click.echo(f"key {current.key_id} now signs; restart the service, and publish to re-sign the manifests")
