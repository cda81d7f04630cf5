"""The Lua scripts and the Python code agree: shared constants come from one generated
header, report.lua's ARGV is reputation.ReportArgs field by field, and a Redis that lost
the scripts gets them again."""
from __future__ import annotations

import ast
import hashlib
import re
from dataclasses import fields
from importlib import resources

import pytest

from blocklist import reputation
from blocklist import store as store_module
from blocklist.reputation import ReportArgs, Vote, script_constants
from blocklist.store import REPORTER_CREDIT, script_header

NUMBER = "+8613800138000"
HEADER_LINE = re.compile(r"local (\w+) = (.+)")
# Literals that equal a shared constant by chance and mean something else.
UNRELATED = {("moderation.lua", 1000)}  # the audit id's milliseconds and microseconds


def lua_source(name: str) -> str:
    return resources.files("blocklist").joinpath("lua", name).read_text()


def without_comments(source: str) -> str:
    return "\n".join(line.split("--", 1)[0] for line in source.splitlines())


def header_of(script: str) -> dict:
    """The generated header's constants, read back from a loaded script's text."""
    constants = {}
    for line in script.splitlines():
        match = HEADER_LINE.fullmatch(line)
        if not match:
            break
        constants[match[1]] = ast.literal_eval(match[2])
    return constants


def reputation_scripts(store):
    return {"report.lua": store.report_script, "read.lua": store.read_script,
            "moderation.lua": store.moderation_script}


def shared_constants() -> dict:
    return {**reputation.SCRIPT_CONSTANTS, "REPORTER_CREDIT": REPORTER_CREDIT}


def test_every_header_constant_equals_its_python_constant(store):
    header = header_of(store.report_script.script)
    assert header == script_constants(store.config) == store.constants
    for name, value in reputation.SCRIPT_CONSTANTS.items():
        if hasattr(reputation, name):
            assert header[name] == getattr(reputation, name), name
    for code, verdict in enumerate(reputation.VERDICTS):
        assert header[f"VERDICT_{verdict.upper()}"] == code
    assert (header["OVERRIDE_ALLOW"], header["OVERRIDE_BLOCK"]) == (
        reputation.OVERRIDE_FLAGS["allow"], reputation.OVERRIDE_FLAGS["block"])
    assert header["REPORTER_CREDIT"] == REPORTER_CREDIT
    assert header["LOW_BITS"] == 2**28 and header["STATE_LABELS"] == 64


def test_each_reputation_script_is_the_header_then_verdict_lua_then_its_own(store):
    prefix = script_header(store.constants) + lua_source("verdict.lua")
    for name, script in reputation_scripts(store).items():
        assert script.script == prefix + lua_source(name), name
        assert script.sha == hashlib.sha1(script.script.encode()).hexdigest(), name


@pytest.mark.parametrize("name", sorted(p.name for p in resources.files("blocklist").joinpath("lua").iterdir()
                                        if p.name.endswith(".lua")))
def test_no_script_hard_codes_a_shared_constant(store, name):
    code = without_comments(lua_source(name))
    for constant, value in shared_constants().items():
        if isinstance(value, str):  # a short one ('1', a flag) is the value of other fields too
            assert len(value) < 3 or (f"'{value}'" not in code and f'"{value}"' not in code), (name, constant)
        elif value >= 10 and (name, value) not in UNRELATED:
            assert not re.search(rf"(?<![\w.]){value}(?![\w.])", code), (name, constant, value)
            if value & (value - 1) == 0:  # a power of two may be spelled 2^n
                assert not re.search(rf"2\s*\^\s*{value.bit_length() - 1}(?!\d)", code), (name, constant)
    declared = {n.strip() for names in re.findall(r"local\s+([\w\s,]+?)\s*=", code) for n in names.split(",")}
    assert not declared & store.constants.keys(), (name, "redefines", declared & store.constants.keys())


def documented(script: str, what: str) -> list[tuple[int, str]]:
    return [(int(i), name) for i, name in re.findall(rf"^-- {what}\[(\d+)\]\s+(\w+)", script, re.M)]


def test_report_args_fields_are_the_argv_report_lua_documents_and_reads():
    source = lua_source("report.lua")
    argv = documented(source, "ARGV")
    assert [i for i, _ in argv] == list(range(1, len(argv) + 1))
    assert [name for _, name in argv] == [f.name for f in fields(ReportArgs)]
    # and the script's locals read them under the same names, from the same positions
    read = {}
    for names, values in re.findall(r"^local ([\w, ]+) = (.*ARGV\[.*)$", source, re.M):
        for local, value in zip(names.split(", "), re.split(r",\s*(?![^(]*\))", values)):
            read[local] = int(re.search(r"ARGV\[(\d+)\]", value)[1])
    assert read == {name: i for i, name in argv}


class Recorder:
    """A pipeline stand-in that keeps the commands queued on it."""

    def __init__(self):
        self.sent = []

    def execute_command(self, *args):
        self.sent.append(args)


def test_report_sends_the_documented_keys_and_the_args_in_field_order(store):
    args = ReportArgs.of(store, "vote", NUMBER, store.clock(), voter="abcdefgh", tag=3, fresh=True, violation=True)
    pipe = Recorder()
    reputation._report(store, args, "r-1", pipe=pipe)
    (command,) = pipe.sent
    assert command[:2] == ("EVALSHA", store.report_script.sha)
    keys = documented(lua_source("report.lua"), "KEYS")
    assert [i for i, _ in keys] == list(range(1, command[2] + 1))
    assert list(command[3 + command[2]:]) == args.argv()
    assert args.argv()[-1] == 1 and args.argv()[2] == NUMBER.lstrip("+")


@pytest.mark.parametrize("value", ["it's", "back\\slash", "two\nlines", None, True, float("inf")])
def test_a_constant_without_a_plain_lua_literal_is_refused(value):
    with pytest.raises(ValueError):
        store_module.script_header({"X": value})


def test_scripts_are_loaded_again_when_redis_lost_them(store, redis_client):
    """Redis keeps no scripts across a restart: every path loads them again on NOSCRIPT
    (pipelined EVALSHA, and a script called on its own), on a cluster alike."""
    voters = [f"voter{i:03d}" for i in range(4)]
    redis_client.script_flush()
    first = reputation.cast_votes(store, [Vote(NUMBER, "fraud", voters[0], store.clock())])
    assert first[0].outcome == "new"
    redis_client.script_flush()
    assert reputation.lookup_many(store, [NUMBER])[0]["reporters"] == 1
    redis_client.script_flush()
    assert reputation.withdraw_vote(store, NUMBER, voters[0]).outcome == "withdrawn"
    redis_client.script_flush()
    outcomes = reputation.cast_votes(store, [Vote(NUMBER, "fraud", v, store.clock()) for v in voters])
    assert [o.outcome for o in outcomes] == ["new"] * 4
    assert reputation.lookup(store, NUMBER)["verdict"] == "block"
