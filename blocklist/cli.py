"""Operator commands: `flask --app app <group> <command>`. Output on stdout, logs on stderr."""
from __future__ import annotations

import sys

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from . import importer, reputation


def register(app: Flask) -> None:
    app.cli.add_command(import_group)
    app.cli.add_command(reputation_group)


def _store():
    return current_app.extensions["callmark"]


@click.group("import", cls=AppGroup, help="Import data sets as reports.")
def import_group() -> None:
    pass


@import_group.command("ftc-dnc")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--dated-now", is_flag=True, help="Date every report now instead of by Created_Date.")
def import_ftc_dnc(files: tuple[str, ...], dated_now: bool) -> None:
    """Import FTC Do-Not-Call "Reported Calls" CSV FILES (numbers read with region US)."""
    total = sum(importer.count_rows(path) for path in files)
    with click.progressbar(length=total, label="importing", file=sys.stderr) as bar:
        summary = importer.import_ftc(_store(), list(files), dated_now=dated_now, progress=bar.update)
    for line in summary.lines():
        click.echo(line)


@click.group("reputation", cls=AppGroup, help="Reputation maintenance.")
def reputation_group() -> None:
    pass


@reputation_group.command("sweep")
def sweep() -> None:
    """Re-evaluate numbers whose block ends by decay now; print how many changed."""
    click.echo(f"changed: {reputation.sweep(_store())}")
