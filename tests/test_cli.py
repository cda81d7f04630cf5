"""The operator commands' help: every command and option says what it does in full (no line
cut off with "…"), every group shows an example, and a command prints only its own output."""
from __future__ import annotations

import os
import subprocess
import sys

import click
import pytest

OURS = ("import", "reputation", "keys", "lists", "signing")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def command_lines(text: str) -> list[str]:
    """The lines of a help text's Commands: section."""
    return text.split("Commands:", 1)[1].strip().splitlines() if "Commands:" in text else []


@pytest.mark.parametrize("name", OURS)
def test_each_group_says_every_command_in_full_and_shows_an_example(app, name):
    runner = app.test_cli_runner()
    shown = runner.invoke(args=[name, "--help"])
    assert shown.exit_code == 0, shown.output
    assert "Example: flask --app app " in shown.output
    commands = command_lines(shown.output.split("Example:")[0])
    assert commands and not any(line.rstrip().endswith("...") for line in commands), commands
    top = [line for line in command_lines(runner.invoke(args=["--help"]).output) if line.split()[0] == name]
    assert top and not top[0].rstrip().endswith("..."), top


@pytest.mark.parametrize("name", OURS)
def test_every_option_of_every_command_has_help(app, name):
    group = app.cli.get_command(click.Context(app.cli), name)
    for command in group.commands.values():
        assert command.help or command.short_help, command.name
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, f"{name} {command.name} {param.opts}"


def test_the_scope_help_names_every_scope(app):
    shown = app.test_cli_runner().invoke(args=["keys", "create", "--help"]).output
    for scope in ("feed", "scrub", "regulator", "admin"):
        assert f"{scope}:" in shown


def test_a_command_prints_only_its_own_output(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    env.update(CALLMARK_DATA_DIR=str(tmp_path / "var"), CALLMARK_PROFILE="development")
    run = subprocess.run([os.path.join(os.path.dirname(sys.executable), "flask"), "--app", "app", "keys", "list"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout == "" and run.stderr == ""  # no keys yet, and nothing about the embedded Redis


@pytest.mark.parametrize("form, profile, terminal, shown", [
    ("auto", "development", True, "text"), ("auto", "development", False, "json"),
    ("auto", "production", True, "json"), ("json", "development", True, "json"), ("text", "production", False, "text"),
])
def test_logs_are_text_on_a_terminal_outside_production_and_json_otherwise(monkeypatch, form, profile, terminal, shown):
    from blocklist import logs

    monkeypatch.setattr(sys.stderr, "isatty", lambda: terminal)
    assert logs.effective_format(form, profile) == shown
