"""blocklist/keys.py names every key, and docs/STORAGE.md's key table is generated from it."""
from __future__ import annotations

import inspect
import re
from pathlib import Path

from blocklist import keys
from blocklist.keys import Keys

STORAGE = Path(__file__).resolve().parent.parent / "docs" / "STORAGE.md"


def test_storage_md_shows_the_key_table_generated_from_keys():
    assert keys.table() in STORAGE.read_text(), "regenerate it: python -m blocklist.keys"


def test_every_key_method_is_a_documented_family_or_named_as_none():
    methods = {name for name, m in vars(Keys).items() if callable(m) and not name.startswith("_")}
    listed = [key for key, _, _ in keys.families()]
    assert len(listed) == len(methods - keys.NOT_FAMILIES) == len(set(listed)) >= 30
    assert keys.NOT_FAMILIES <= methods


def test_every_real_key_has_the_shape_its_table_row_shows():
    real = Keys(64)
    for name, method in vars(Keys).items():
        if name.startswith("_") or name in keys.NOT_FAMILIES or not callable(method):
            continue
        params = list(inspect.signature(method).parameters)[1:]
        args = [17 if p in ("bucket", "day", "from_version") else "+8613800138000" if p == "number" else "abc"
                for p in params]
        (template,) = [key for key, _, _ in keys.families() if key == getattr(keys._Template(0), name)(
            *(f"<{p}>" for p in params))]
        pattern = re.escape(template).replace(re.escape("<bucket>"), "[0-9]+")
        pattern = re.sub(r"<(\d+)\\ hex\\ of\\ sha256\\ [^>]*>", lambda m: f"[0-9a-f]{{{m.group(1)}}}", pattern)
        pattern = re.sub(r"<[a-z_]+>", ".+", pattern)
        assert re.fullmatch(pattern, getattr(real, name)(*args)), (name, template, getattr(real, name)(*args))
