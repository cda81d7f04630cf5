"""Operator commands: `flask --app app <group> <command>`. Output on stdout, logs on stderr."""
from __future__ import annotations

import sys
from datetime import datetime

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from .. import apikeys, importer, reputation
from ..errors import CallMarkError
from . import sync_cli


def register(app: Flask) -> None:
    """Add every operator command to `flask --app app`."""
    app.cli.add_command(import_group)
    app.cli.add_command(reputation_group)
    app.cli.add_command(keys_group)
    sync_cli.register(app)


def _store():
    return current_app.extensions["callmark"]


@click.group("import", cls=AppGroup, help="Import data sets as reports and complaints.",
             epilog="Example: flask --app app import ftc-dnc --dated-now dnc-reported-calls-2021-07-07.csv")
def import_group() -> None:
    pass


@import_group.command("ftc-dnc", short_help="Import FTC Do-Not-Call complaint files (reports and complaints).")
@click.argument("files", nargs=-1, required=True, type=click.Path())
@click.option("--dated-now", is_flag=True, help="Date every complaint now: an old file counts as fresh evidence.")
@click.option("--date", "day", type=click.DateTime(formats=["%Y-%m-%d"]), metavar="YYYY-MM-DD",
              help="Date every complaint on this day (00:00 UTC).")
def import_ftc_dnc(files: tuple[str, ...], dated_now: bool, day: datetime | None) -> None:
    """Import FTC Do-Not-Call complaint FILES, one vote per complaint, numbers read as
    dialled in the US. The header tells the format.

    A "Reported Calls" daily file (Company_Phone_Number, Created_Date, ..., Subject) is
    dated by Created_Date and tagged by Subject. The 90-day numbers file (one column,
    `pattern`) gives only the number of each complaint: a row is tagged harassment, the tag
    of "No Subject Provided" and of an unwanted call of unknown kind (telemarketing would
    claim it advertised), and dated by --date, else by the day in its name
    (...-2025-12-11.csv).

    Evidence decays with a half-life of CALLMARK_HALF_LIFE_DAYS (90 days): a file imported
    with its own old dates adds history but blocks nothing; --dated-now counts it as fresh.
    Importing a file again with the same dating counts nothing twice; with another dating
    it re-dates the complaints already imported, each still one vote.

    Progress goes to stderr, the summary to stdout.
    """
    if dated_now and day:
        raise click.UsageError("--date and --dated-now exclude each other: choose one dating")
    store = _store()
    try:
        sources = importer.read_files(store, list(files), dated_now=dated_now, day=day.date() if day else None)
    except CallMarkError as exc:
        raise click.ClickException(exc.message) from None
    for source in sources:
        click.echo(f"{source.path}: {source.format}, {source.rows} rows, dated {source.dating}", err=True)
    with click.progressbar(length=sum(source.rows for source in sources), label="importing", file=sys.stderr) as bar:
        summary = importer.import_sources(store, sources, progress=bar.update)
    for line in summary.lines():
        click.echo(line)


@click.group("reputation", cls=AppGroup, help="Reputation maintenance.",
             epilog="Example: flask --app app reputation sweep")
def reputation_group() -> None:
    pass


@reputation_group.command("sweep", short_help="Re-evaluate the numbers whose block ends by decay now.")
def sweep() -> None:
    """Re-evaluate numbers whose block ends by decay now; print how many changed."""
    click.echo(f"changed: {reputation.sweep(_store())}")


@click.group("keys", cls=AppGroup, short_help="API keys: feed, scrub, regulator and admin.",
             help="API keys for app vendors (feed), telemarketers (scrub), regulators (regulator) and operators (admin).",
             epilog="Example: flask --app app keys create --name pboc --scope regulator --agency finance")
def keys_group() -> None:
    pass


@keys_group.command("create", short_help="Create a key and print it once.")
@click.option("--name", required=True, help="A name to know the key by (letters, digits, . _ -).")
@click.option("--scope", required=True, type=click.Choice(apikeys.SCOPES),
              help="feed: app vendors' feed and lookups; scrub: a telemarketer's Do-Not-Call scrubs (the name is "
                   "the organisation); regulator: one agency's complaint cases (with --agency); admin: everything.")
@click.option("--agency", help="A regulator key's agency: an id of the routing table (CALLMARK_ROUTING_FILE).")
def create_key(name: str, scope: str, agency: str | None) -> None:
    """Create a key and print it, alone on the last line; it is never shown again."""
    try:
        key = apikeys.create(_store(), name, scope, agency)
    except CallMarkError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"created {scope} key {name!r}" + (f" for agency {agency!r}" if agency else "")
               + "; store it now, it is not shown again:")
    click.echo(key)


@keys_group.command("list", short_help="List the keys (never the keys themselves).")
def list_keys() -> None:
    """Name, scope, created and last used of every key (never the key itself)."""
    for key in apikeys.list_keys(_store()):
        last = reputation.iso_unix(key["last_used"]) if key["last_used"] else "never"
        scope = f"{key['scope']} ({key['agency']})" if key["agency"] else key["scope"]
        click.echo(f"{key['name']}\t{scope}\tcreated {reputation.iso_unix(key['created'])}\tlast used {last}")


@keys_group.command("revoke", short_help="Revoke a key at once.")
@click.argument("name")
def revoke_key(name: str) -> None:
    """Revoke the key NAME: it stops working at once."""
    try:
        apikeys.revoke(_store(), name)
    except CallMarkError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"revoked {name!r}")
