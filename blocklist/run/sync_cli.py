"""Operator commands for lists and signing keys: `flask --app app lists …`, `… signing …`."""
from __future__ import annotations

import sys

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from sync.signing import iso

from .. import publish
from ..errors import KeyChangeRefused, PublishError


def register(app: Flask) -> None:
    app.cli.add_command(lists_group)
    app.cli.add_command(signing_group)


@click.group("lists", cls=AppGroup, help="Publish the Bloom-filter lists.",
             epilog="Example: flask --app app lists publish")
def lists_group() -> None:
    pass


@lists_group.command("publish", short_help="Sweep decay and publish every list now.")
@click.option("--wait", default=600.0, show_default=True, help="Seconds to wait for a running publish.")
def publish_now(wait: float) -> None:
    """Sweep decay, publish every list now and print what was published."""
    store = current_app.extensions["callmark"]
    try:
        results = publish.publish(store, current_app.extensions["callmark.signing"], wait=wait)
    except PublishError as exc:
        click.echo(f"publish failed: {exc}", err=True)
        sys.exit(1)
    if results is None:
        click.echo(f"publish failed: another publisher held the lock for {wait:g} s", err=True)
        sys.exit(1)
    for result in results:
        click.echo(result.line())


@click.group("signing", cls=AppGroup, short_help="The keys that sign the lists' manifests.",
             help="The Ed25519 keys that sign manifests (docs/PROTOCOL.md section 5).",
             epilog="Example: flask --app app signing rotate, later flask --app app signing rotate --promote")
def signing_group() -> None:
    pass


WAIT = click.option("--wait", default=600.0, show_default=True, help="Seconds to wait for a running publish.")
SEEN = ("every instance serves it at once in GET /v1/keys/signing (cached up to 5 minutes); "
        "phones learn it at their next sync")


def _changing(change):
    """Run a key change; a refusal or a held lock is a message and exit status 1, not a traceback."""
    try:
        return change()
    except (KeyChangeRefused, PublishError) as exc:
        raise click.ClickException(str(exc)) from None


@signing_group.command("rotate", short_help="Announce a new signing key, or (--promote) sign with it.")
@click.option("--promote", is_flag=True, help="Switch to the announced key (step 2 of a rotation).")
@WAIT
def rotate(promote: bool, wait: float) -> None:
    """Step 1: announce a new key, endorsed by the current one. Step 2 (--promote): sign with it.

    With keys in the data folder the new seed is written there. With keys from the
    environment, first set CALLMARK_SIGNING_NEXT_KEY (or _FILE) to the new seed on every
    process that publishes, and here; after --promote, move it to CALLMARK_SIGNING_KEY at
    leisure. The state itself is in Redis: running processes follow it without a restart.
    """
    store = current_app.extensions["callmark"]
    keyring = current_app.extensions["callmark.signing"]
    if not promote:
        upcoming = _changing(lambda: keyring.announce(iso(store.clock())))
        click.echo(f"announced key {upcoming.key_id}: {SEEN}. "
                   f"Promote it with --promote after they have (30 days is safe).")
        return
    current = _changing(lambda: publish.promote(store, keyring, wait))
    click.echo(f"key {current.key_id} now signs: {SEEN}, and every publish from now on signs with it "
               f"(a process without its seed publishes nothing and logs why). "
               f"Run `flask --app app lists publish` to re-sign the lists now (the scheduler does it at its "
               f"next publish), then `signing retire` once they are.")


@signing_group.command("retire", short_help="Retire the key the current one took over from.")
@click.argument("key_id", required=False)
@WAIT
def retire(key_id: str | None, wait: float) -> None:
    """Step 3: retire KEY_ID (default: the key the current one took over from).

    Phones drop it from the keys they trust. Refused while a list is still signed by it.
    """
    store = current_app.extensions["callmark"]
    retired = _changing(lambda: publish.retire(store, current_app.extensions["callmark.signing"], key_id, wait))
    click.echo(f"retired key {retired}: {SEEN} and trust it no more")


@signing_group.command("revoke", short_help="Revoke a leaked key and re-sign every list.")
@click.argument("key_id")
@WAIT
def revoke(key_id: str, wait: float) -> None:
    """Revoke KEY_ID, a key that may have leaked, and re-sign every list.

    Phones refuse anything it signs and take fresh snapshots. Revoking the key that signs now
    promotes the announced key first (run `signing rotate` before, if none is announced).
    """
    store = current_app.extensions["callmark"]
    keyring = current_app.extensions["callmark.signing"]
    promoted = _changing(lambda: publish.revoke(store, keyring, key_id, wait))
    if promoted is not None:
        click.echo(f"key {promoted.key_id} now signs in place of the revoked key")
    click.echo(f"revoked key {key_id}: {SEEN}, refuse what it signed and take fresh snapshots")
    try:
        results = publish.publish(store, keyring, wait=wait)
    except PublishError as exc:
        results, failure = None, str(exc)
    else:
        failure = f"another publisher held the lock for {wait:g} s"
    if results is None:
        raise click.ClickException(f"the lists are not re-signed yet ({failure}): phones refuse them until "
                                   "`flask --app app lists publish` succeeds")
    for result in results:
        click.echo(result.line())
