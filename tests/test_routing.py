"""The complaint routing table: the shipped one, custom tables in YAML and JSON, and the refusal of
every bad table with the line of its problem."""
from __future__ import annotations

import dataclasses
import json

import pytest

from blocklist.errors import ConfigError
from blocklist.routing import DEFAULT_FILE, Agency, RoutingError, load
from blocklist.tags import BY_CODE, TAXONOMY

SHIPPED = {  # every tag -> its agency in blocklist/routing.yaml
    "fraud": "police", "debt_collection": "finance", "loan": "finance", "securities": "finance",
    "harassment": "telecom", "ring_once": "telecom", "real_estate": "housing", "insurance": "finance",
    "education": "education", "recruitment": "hr", "health": "health", "travel": "market",
    "housekeeping": "market", "telemarketing": "market", "silent": "telecom",
    "delivery": "telecom", "customer_service": "telecom", "safe": "telecom",  # by the default
}
TAGS = ", ".join(BY_CODE)
AGENCIES = "finance, telecom"  # the agencies of the tables below


def table(*lines: str) -> str:
    """A file of `lines`: line N of the file is lines[N - 1]."""
    return "\n".join(lines) + "\n"


def written(tmp_path, text: str | bytes, name: str = "routing.yaml") -> str:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return str(path)


def refusal(path: str) -> str:
    with pytest.raises(RoutingError) as refused:
        load(path)
    return str(refused.value)


GOOD_YAML = (
    "agencies:",
    "  finance: {zh: 金融监管部门, en: Financial regulator}",
    "  telecom: {zh: 电信管理机构, en: Telecom regulator}",
    "routes:",
    "  loan: finance",
    "default: telecom",
)

# --- the shipped table ------------------------------------------------------------------------------

def test_the_shipped_table_routes_every_tag():
    routing = load()
    assert {tag.code: routing.agency_for(tag.code).id for tag in TAXONOMY} == SHIPPED
    assert routing.source == DEFAULT_FILE and load(DEFAULT_FILE) == routing


def test_tags_without_a_route_go_to_the_default():
    routing = load()
    assert routing.default == "telecom"
    assert set(BY_CODE) - set(routing.routes) == {"delivery", "customer_service", "safe"}
    assert routing.agency_for("delivery") == routing.agencies["telecom"]


def test_the_shipped_agencies_have_both_names():
    agencies = load().agencies
    assert list(agencies) == ["finance", "housing", "education", "health", "hr", "market", "police", "telecom"]
    assert agencies["finance"] == Agency("finance", "金融监管部门", "Financial regulator")
    assert agencies["police"] == Agency("police", "公安机关", "Public security")
    assert agencies["telecom"] == Agency("telecom", "电信管理机构 / 12321", "Telecom regulator (12321)")


def test_describe_lists_the_agencies_and_where_every_tag_goes():
    described = load().describe()
    assert described["routes"] == SHIPPED and described["default"] == "telecom"
    assert described["agencies"][0] == {"id": "finance", "name_zh": "金融监管部门", "name_en": "Financial regulator"}
    assert [agency["id"] for agency in described["agencies"]] == list(load().agencies)


# --- custom tables ----------------------------------------------------------------------------------

def test_a_custom_yaml_table_loads(tmp_path):
    path = written(tmp_path, table(*GOOD_YAML))
    routing = load(path)
    assert routing.source == path
    assert routing.routes == {"loan": "finance"} and routing.default == "telecom"
    assert routing.agency_for("loan") == Agency("finance", "金融监管部门", "Financial regulator")
    assert routing.agency_for("fraud") == Agency("telecom", "电信管理机构", "Telecom regulator")


def test_a_table_without_routes_sends_every_tag_to_the_default(tmp_path):
    routing = load(written(tmp_path, table("agencies: {all: {zh: 全部, en: All}}", "default: all")))
    assert routing.routes == {} and {routing.agency_for(tag.code).id for tag in TAXONOMY} == {"all"}


def test_a_custom_json_table_loads_as_json_reads_it(tmp_path):
    # Tab indentation, \u escapes (a surrogate pair among them) and \/ : what YAML would read
    # differently or refuse.
    names = {"finance": {"zh": "金融监管部门 𠀀", "en": "Financial regulator / bank\\desk"},
             "telecom": {"zh": "电信管理机构", "en": "Telecom regulator (12321)"}}
    text = json.dumps({"agencies": names, "routes": {"loan": "finance", "fraud": "finance"}, "default": "telecom"},
                      indent="\t").replace("/", "\\/")
    assert "\t" in text and "\\ud840\\udc00" in text and "\\/" in text
    routing = load(written(tmp_path, text, "routing.json"))
    assert routing.agencies["finance"] == Agency("finance", "金融监管部门 𠀀", "Financial regulator / bank\\desk")
    assert routing.routes == {"loan": "finance", "fraud": "finance"} and routing.default == "telecom"


def test_compact_json_loads(tmp_path):
    text = '{"agencies":{"a":{"zh":"甲","en":"A"}},"routes":{"loan":"a"},"default":"a"}'
    assert load(written(tmp_path, text, "r.JSON")).agency_for("loan") == Agency("a", "甲", "A")


def test_a_routing_error_is_a_config_error_and_a_value_error():
    assert issubclass(RoutingError, ConfigError) and issubclass(RoutingError, ValueError)


# --- bad tables: each refusal names the file, the line and the problem ------------------------------------

BAD_YAML = [
    ("syntax", table("agencies:", "  finance: {zh: a, en: b", "default: finance"), 3, "not valid YAML"),
    ("tab indentation", table("agencies:", "\tfinance: {zh: a, en: b}", "default: finance"), 2, "not valid YAML"),
    ("two documents", table(*GOOD_YAML, "---", "default: telecom"), 7,
     "not valid YAML: expected a single document in the stream, but found another document"),
    ("empty", "# nothing\n", 1, "the table is empty"),
    ("a list", table("# a list", "- agencies", "- default"), 2, "the table must be a mapping"),
    ("a string", table("agencies"), 1, "the table must be a mapping of agencies, routes, default, not 'agencies'"),
    ("unknown top-level key", table(*GOOD_YAML[:5], "defualt: telecom"), 6,
     "unknown key 'defualt' (the keys are: agencies, routes, default)"),
    ("no agencies", table("# routes alone", "routes: {loan: finance}", "default: finance"), 2, "no agencies"),
    ("empty agencies", table("routes: {}", "agencies: {}", "default: finance"), 2, "agencies is empty"),
    ("agencies a list", table("agencies:", "  - finance", "default: finance"), 2,
     "agencies must be a mapping of agency id to names, not a list"),
    ("agencies null", table("default: finance", "agencies:", "routes: {}"), 2,
     "agencies must be a mapping of agency id to names, not nothing"),
    ("agency id upper case", table(*GOOD_YAML[:2], "  Telecom: {zh: a, en: b}", "default: finance"), 3,
     "agency id 'Telecom' is not valid: it must match ^[a-z][a-z0-9_-]{0,31}$"),
    ("agency id starting with a digit", table("agencies:", "  9a: {zh: a, en: b}", "default: finance"), 2,
     "agency id '9a' is not valid"),
    ("a number for an agency id", table("agencies:", "  12321: {zh: a, en: b}", "default: finance"), 2,
     "a key must be a string, not '12321'"),
    ("agency id too long", table("agencies:", "  " + "a" * 33 + ": {zh: a, en: b}", "default: finance"), 2,
     f"agency id '{'a' * 33}' is not valid"),
    ("agency not a mapping", table("agencies:", "  finance: Financial regulator", "default: finance"), 2,
     "agency 'finance' must be a mapping of zh and en, not 'Financial regulator'"),
    ("no en name", table("agencies:", "  finance:", "    zh: 金融监管部门", "default: finance"), 2,
     "agency 'finance' has no en name"),
    ("no zh name", table(*GOOD_YAML[:2], "  telecom: {en: Telecom regulator}", "default: finance"), 3,
     "agency 'telecom' has no zh name"),
    ("empty name", table("agencies:", "  finance:", "    zh: ''", "    en: b", "default: finance"), 3,
     "agency 'finance': zh must be a non-empty string of at most 100 characters, not ''"),
    ("blank name", table("agencies:", "  finance:", "    zh: a", "    en: '  '", "default: finance"), 4,
     "agency 'finance': en must be a non-empty string"),
    ("null name", table("agencies:", "  finance:", "    zh: a", "    en:", "default: finance"), 4,
     "agency 'finance': en must be a non-empty string of at most 100 characters, not nothing"),
    ("number name", table("agencies:", "  telecom: {zh: 12321, en: b}", "default: telecom"), 2,
     "agency 'telecom': zh must be a non-empty string of at most 100 characters, not '12321'"),
    ("list name", table("agencies:", "  telecom: {zh: [a], en: b}", "default: telecom"), 2,
     "zh must be a non-empty string of at most 100 characters, not a list"),
    ("name too long", table("agencies:", "  finance:", "    zh: a", "    en: " + "e" * 101, "default: finance"), 4,
     "agency 'finance': en must be a non-empty string of at most 100 characters"),
    ("unknown name key", table("agencies:", "  finance:", "    zh: a", "    en: b", "    fr: c", "default: finance"), 5,
     "agency 'finance': unknown key 'fr' (the keys are: zh, en)"),
    ("routes a list", table(*GOOD_YAML[:3], "routes: [loan]", "default: telecom"), 4,
     "routes must be a mapping of tag to agency id, not a list"),
    ("routes null", table(*GOOD_YAML[:3], "default: telecom", "routes:", ""), 5,
     "routes must be a mapping of tag to agency id, not nothing"),
    ("unknown tag", table(*GOOD_YAML[:5], "  spam: finance", "  lone: finance", "default: telecom"), 6,
     f"unknown tag 'spam' (the tags are: {TAGS})"),
    ("route to an unknown agency", table(*GOOD_YAML[:5], "  fraud: police", "default: telecom"), 6,
     f"tag 'fraud' goes to unknown agency 'police' (the agencies are: {AGENCIES})"),
    ("route to a list", table(*GOOD_YAML[:5], "  fraud: [telecom]", "default: telecom"), 6,
     "tag 'fraud' goes to unknown agency a list"),
    ("no default", table(*GOOD_YAML[:5]), 1, "no default agency"),
    ("unknown default", table(*GOOD_YAML[:5], "default: telcom"), 6,
     f"the default goes to unknown agency 'telcom' (the agencies are: {AGENCIES})"),
    ("null default", table(*GOOD_YAML[:5], "default: null"), 6, "the default goes to unknown agency 'null'"),
    ("repeated agency", table(*GOOD_YAML[:3], "  finance: {zh: c, en: d}", *GOOD_YAML[3:]), 4,
     "repeated key 'finance' (first on line 2)"),
    ("repeated route", table(*GOOD_YAML[:5], "  loan: telecom", "default: telecom"), 6,
     "repeated key 'loan' (first on line 5)"),
    ("repeated name", table("agencies:", "  finance: {zh: a, en: b,", "    zh: c}", "default: finance"), 3,
     "repeated key 'zh' (first on line 2)"),
    ("repeated top-level key", table(*GOOD_YAML, "", "default: finance"), 8,
     "repeated key 'default' (first on line 6)"),
    ("a merge key", table("agencies:", "  finance: &names {zh: a, en: b}", "  telecom: {<<: *names}",
                          "default: telecom"), 3, "a key must be a string, not '<<'"),
]


@pytest.mark.parametrize("text, line, problem", [case[1:] for case in BAD_YAML], ids=[case[0] for case in BAD_YAML])
def test_a_bad_yaml_table_is_refused_with_its_line(tmp_path, text, line, problem):
    path = written(tmp_path, text)
    message = refusal(path)
    assert message.startswith(f"routing table {path}, line {line}: "), message
    assert problem in message, message


def test_the_lone_tag_example(tmp_path):
    path = written(tmp_path, table(*GOOD_YAML[:5], "", "  lone: finance", "default: telecom"))
    assert refusal(path) == f"routing table {path}, line 7: unknown tag 'lone' (the tags are: {TAGS})"
    assert TAGS.startswith("fraud, debt_collection, loan, ") and TAGS.endswith(", safe")


GOOD_JSON = (
    "{",
    '  "agencies": {',
    '    "finance": {"zh": "金融监管部门", "en": "Financial regulator"},',
    '    "telecom": {"zh": "电信管理机构", "en": "Telecom regulator"}',
    "  },",
    '  "routes": {"loan": "finance"},',
    '  "default": "telecom"',
    "}",
)


def test_the_good_json_table_loads(tmp_path):
    """The base of the JSON cases below is valid: each of them has one problem."""
    path = written(tmp_path, table(*GOOD_JSON), "routing.json")
    assert load(path) == dataclasses.replace(load(written(tmp_path, table(*GOOD_YAML))), source=path)


BAD_JSON = [
    ("syntax: a trailing comma", table(*GOOD_JSON[:5], '  "routes": {"loan": "finance",},', *GOOD_JSON[6:]), 6,
     "not valid JSON"),
    ("syntax: a comment", table("// routing", *GOOD_JSON), 1, "not valid JSON: Expecting value"),
    ("syntax: single quotes", table(*GOOD_JSON[:6], "  'default': 'telecom'", "}"), 7, "not valid JSON"),
    ("a list", table("[", '  "agencies"', "]"), 1,
     "the table must be a mapping of agencies, routes, default, not a list"),
    ("unknown tag", table(*GOOD_JSON[:5], '  "routes": {', '    "lone": "finance"', "  },", *GOOD_JSON[6:]), 7,
     f"unknown tag 'lone' (the tags are: {TAGS})"),
    ("unknown tag, tab-indented",
     table(*GOOD_JSON[:5], '\t"routes": {', '\t\t"lone": "finance"', "\t},", *GOOD_JSON[6:]), 7, "unknown tag 'lone'"),
    ("a number for a name", table(*GOOD_JSON[:3], '    "telecom": {"zh": "电信", "en": 1e5}', *GOOD_JSON[4:]), 4,
     "agency 'telecom': en must be a non-empty string of at most 100 characters, not '1e5'"),
    ("true for a name", table(*GOOD_JSON[:3], '    "telecom": {"zh": true, "en": "b"}', *GOOD_JSON[4:]), 4,
     "agency 'telecom': zh must be a non-empty string"),
    ("null default", table(*GOOD_JSON[:6], '  "default": null', "}"), 7, "the default goes to unknown agency 'null'"),
    ("a number for an agency", table(*GOOD_JSON[:5], '  "routes": {"loan": 12321},', *GOOD_JSON[6:]), 6,
     "tag 'loan' goes to unknown agency '12321'"),
    ("repeated agency", table(*GOOD_JSON[:3], '    "finance": {"zh": "电信", "en": "b"}', *GOOD_JSON[4:]), 4,
     "repeated key 'finance' (first on line 3)"),
    ("repeated top-level key", table(*GOOD_JSON[:6], '  "default": "telecom",', '  "default": "finance"', "}"), 8,
     "repeated key 'default' (first on line 7)"),
    ("unknown key", table(*GOOD_JSON[:6], '  "default": "telecom",', '  "comment": "x"', "}"), 8,
     "unknown key 'comment'"),
]


@pytest.mark.parametrize("text, line, problem", [case[1:] for case in BAD_JSON], ids=[case[0] for case in BAD_JSON])
def test_a_bad_json_table_is_refused_with_its_line(tmp_path, text, line, problem):
    path = written(tmp_path, text, "routing.json")
    message = refusal(path)
    assert message.startswith(f"routing table {path}, line {line}: "), message
    assert problem in message, message


def test_json_that_yaml_would_read_is_still_refused_as_json(tmp_path):
    """Named .json, a table is JSON: YAML's comfort (bare words, comments) is a syntax error."""
    text = table("# routing", *GOOD_YAML)
    path = written(tmp_path, text, "routing.json")
    assert refusal(path).startswith(f"routing table {path}, line 1: not valid JSON: Expecting value")
    assert load(written(tmp_path, text)).default == "telecom"


def test_a_file_that_is_not_utf8_is_refused_with_its_line(tmp_path):
    path = written(tmp_path, table(*GOOD_YAML[:2]).encode() + "  telecom: {zh: 电信, en: b}\n".encode("gb18030"))
    assert refusal(path).startswith(f"routing table {path}, line 3: not UTF-8 text")


def test_special_characters_are_refused_with_their_line(tmp_path):
    path = written(tmp_path, table(*GOOD_YAML[:2], "  telecom: {zh: a\x07, en: b}", "default: telecom"))
    assert refusal(path).startswith(f"routing table {path}, line 3: special characters are not allowed (U+0007)")


def test_a_byte_order_mark_is_ignored(tmp_path):
    for name in ("routing.yaml", "routing.json"):
        text = table(*(GOOD_JSON if name.endswith(".json") else GOOD_YAML))
        assert load(written(tmp_path, "\ufeff" + text, name)).default == "telecom"


def test_a_missing_file_is_refused(tmp_path):
    path = str(tmp_path / "none.yaml")
    assert refusal(path) == f"routing table {path}: cannot read it (No such file or directory)"


def test_a_folder_is_refused(tmp_path):
    assert refusal(str(tmp_path)) == f"routing table {tmp_path}: cannot read it (Is a directory)"
