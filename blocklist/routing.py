"""The complaint routing table: which regulator (agency) receives the complaints about a number, by tag.

Each tag of the taxonomy (blocklist/tags.py) belongs to a sector with a regulator of its own: a
loan call is the financial regulator's business, a fraud the police's. The table is a YAML file,
or a JSON one when its name ends in `.json`, with three keys; blocklist/routing.yaml is the default:

    agencies:            # agency id -> its names, both required (at most NAME_MAX characters each)
      finance: {zh: 金融监管部门, en: Financial regulator}
      telecom: {zh: 电信管理机构 / 12321, en: Telecom regulator (12321)}
    routes:              # tag -> agency id; optional
      loan: finance
    default: telecom     # the agency of every tag without a route

`load()` refuses a table with anything wrong in it, an unknown key, tag or agency, a repeated key or
a missing name, with the file and the line: a typo stops the service at start instead of sending
complaints to the wrong regulator.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import NoReturn

import yaml

from .errors import ConfigError
from .tags import BY_CODE, TAXONOMY

DEFAULT_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "routing.yaml")
AGENCY_ID = re.compile(r"[a-z][a-z0-9_-]{0,31}")  # the whole id: short and lowercase, safe in URLs and logs
NAME_MAX = 100  # characters of an agency's name, in either language
KEYS = ("agencies", "routes", "default")  # the table's top level
NAMES = {"zh": "name_zh", "en": "name_en"}  # an agency's keys -> the Agency fields they fill
STR = "tag:yaml.org,2002:str"


class RoutingError(ConfigError, ValueError):
    """The routing table cannot be read or is not valid. A ConfigError, so that a bad table stops
    the service at start with one line."""


@dataclass(frozen=True)
class Agency:
    id: str
    name_zh: str
    name_en: str

    def describe(self) -> dict:
        return {"id": self.id, "name_zh": self.name_zh, "name_en": self.name_en}


@dataclass(frozen=True)
class Routing:
    agencies: dict[str, Agency]  # by id, in the table's order
    routes: dict[str, str]  # tag -> agency id, for the tags the table routes
    default: str  # the agency id of every other tag
    source: str  # the file it was loaded from

    def agency_for(self, tag: str) -> Agency:
        """The agency that receives the complaints about numbers reported with `tag`."""
        return self.agencies[self.routes.get(tag, self.default)]

    def describe(self) -> dict:
        """The agencies, and where every tag of the taxonomy goes."""
        return {"agencies": [agency.describe() for agency in self.agencies.values()],
                "routes": {tag.code: self.agency_for(tag.code).id for tag in TAXONOMY},
                "default": self.default}


def load(path: str | None = None) -> Routing:
    """The routing table in `path` (default: DEFAULT_FILE), checked; raises RoutingError."""
    return _Table(DEFAULT_FILE if path is None else path).routing()


@lru_cache(maxsize=4)
def cached(path: str | None = None) -> Routing:
    """`load(path)`, read once per process: the service checks the table at start
    (blocklist/web/__init__.py), and a changed file takes effect at the next start."""
    return load(path)


class _Table:
    """One table file read into YAML nodes, which know their lines, and checked node by node.

    A JSON table is checked by the json module, then composed as YAML too (valid JSON is YAML once
    its tabs are spaces), so both formats are checked alike and their problems have lines.
    """

    def __init__(self, path: str):
        self.path = path
        self.json = os.path.splitext(path)[1].lower() == ".json"
        self.text = ""

    def fail(self, problem: str, node: yaml.Node | None = None, line: int | None = None) -> NoReturn:
        if node is not None:
            line = _line(node)
        where = "" if line is None else f", line {line}"
        raise RoutingError(f"routing table {self.path}{where}: {problem}")

    def read(self) -> yaml.Node | None:
        """The file's root node; None for a file without a document."""
        try:
            with open(self.path, "rb") as file:
                data = file.read()
        except OSError as exc:
            self.fail(f"cannot read it ({exc.strerror})")
        try:
            self.text = data.decode("utf-8").removeprefix("\ufeff")
        except UnicodeDecodeError as exc:
            self.fail("not UTF-8 text", line=data.count(b"\n", 0, exc.start) + 1)
        if self.json:
            try:
                json.loads(self.text)
            except json.JSONDecodeError as exc:
                self.fail(f"not valid JSON: {exc.msg}", line=exc.lineno)
            self.text = self.text.replace("\t", " ")  # in valid JSON, a tab is whitespace: YAML refuses it there
        try:
            return yaml.compose(self.text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            problem = ", ".join(filter(None, (exc.context, exc.problem)))
            self.fail(f"not valid YAML: {problem}", line=(exc.problem_mark or exc.context_mark).line + 1)
        except yaml.reader.ReaderError as exc:
            self.fail(f"{exc.reason} (U+{exc.character:04X})", line=self.text.count("\n", 0, exc.position) + 1)

    def string(self, node: yaml.Node) -> str | None:
        """The string a scalar node holds; None for anything else (a number, null, a list, a mapping)."""
        if not isinstance(node, yaml.ScalarNode) or node.tag != STR:
            return None
        if not self.json:
            return node.value
        if node.style != '"':  # JSON's bare scalars are numbers, true, false and null: 1e5 is no string
            return None
        return json.loads(self.text[node.start_mark.index:node.end_mark.index])  # JSON's escapes, not YAML's

    def mapping(self, node: yaml.Node, problem: str) -> list[tuple[str, yaml.Node, yaml.Node]]:
        """(key, key node, value node) of a mapping node; fails with `problem` on any other node.

        Composing keeps every pair of a mapping (loading would keep the last of a repeated key
        silently), so keys that repeat are refused here.
        """
        if not isinstance(node, yaml.MappingNode):
            self.fail(f"{problem}, not {_shown(node)}", node)
        pairs: dict[str, tuple[str, yaml.Node, yaml.Node]] = {}
        for key_node, value in node.value:
            key = self.string(key_node)
            if key is None:
                self.fail(f"a key must be a string, not {_shown(key_node)}", key_node)
            if key in pairs:
                self.fail(f"repeated key {key!r} (first on line {_line(pairs[key][1])})", key_node)
            pairs[key] = (key, key_node, value)
        return list(pairs.values())

    def routing(self) -> Routing:
        root = self.read()
        if root is None:
            self.fail(f"the table is empty (its keys are: {', '.join(KEYS)})", line=1)
        top = {}
        for key, key_node, value in self.mapping(root, f"the table must be a mapping of {', '.join(KEYS)}"):
            if key not in KEYS:
                self.fail(f"unknown key {key!r} (the keys are: {', '.join(KEYS)})", key_node)
            top[key] = value
        if "agencies" not in top:
            self.fail("no agencies", root)
        agencies = self.agencies(top["agencies"])
        routes = self.routes(top["routes"], agencies) if "routes" in top else {}
        if "default" not in top:
            self.fail("no default agency", root)
        return Routing(agencies, routes, self.agency_id(top["default"], agencies, "the default"), self.path)

    def agencies(self, node: yaml.Node) -> dict[str, Agency]:
        found = {}
        for agency_id, key_node, names in self.mapping(node, "agencies must be a mapping of agency id to names"):
            if not AGENCY_ID.fullmatch(agency_id):
                self.fail(f"agency id {agency_id!r} is not valid: it must match ^{AGENCY_ID.pattern}$", key_node)
            given = {}
            for key, name_key, name in self.mapping(names, f"agency {agency_id!r} must be a mapping of zh and en"):
                if key not in NAMES:
                    self.fail(f"agency {agency_id!r}: unknown key {key!r} (the keys are: {', '.join(NAMES)})",
                              name_key)
                text = self.string(name)
                if text is None or not text.strip() or len(text) > NAME_MAX:
                    self.fail(f"agency {agency_id!r}: {key} must be a non-empty string of at most {NAME_MAX} "
                              f"characters, not {_shown(name)}", name)
                given[NAMES[key]] = text
            missing = [key for key, field in NAMES.items() if field not in given]
            if missing:
                self.fail(f"agency {agency_id!r} has no {missing[0]} name", key_node)
            found[agency_id] = Agency(agency_id, **given)
        if not found:
            self.fail("agencies is empty", node)
        return found

    def routes(self, node: yaml.Node, agencies: dict[str, Agency]) -> dict[str, str]:
        found = {}
        for tag, key_node, agency in self.mapping(node, "routes must be a mapping of tag to agency id"):
            if tag not in BY_CODE:
                self.fail(f"unknown tag {tag!r} (the tags are: {', '.join(BY_CODE)})", key_node)
            found[tag] = self.agency_id(agency, agencies, f"tag {tag!r}")
        return found

    def agency_id(self, node: yaml.Node, agencies: dict[str, Agency], what: str) -> str:
        """The id of one of `agencies` that `node` names."""
        agency_id = self.string(node)
        if agency_id not in agencies:
            self.fail(f"{what} goes to unknown agency {_shown(node)} (the agencies are: {', '.join(agencies)})",
                      node)
        return agency_id


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _shown(node: yaml.Node) -> str:
    """A node as an error message shows it."""
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return repr(node.value) if node.value or node.style else "nothing"  # a bare empty scalar is null
