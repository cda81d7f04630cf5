"""The edge-case vectors of docs/PROTOCOL.md sections 9.5 to 9.7 (canonical JSON, base64,
varints, the Rice parameter, the lookup answer), checked against the reference code, and the
HTTP answers of section 7 that a port cannot see from a vector.

Run this file as a script to print the ```vectors-edge lines in the layout the document uses.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest

from sync import bloom, delta, signing
from sync.client import SyncError, check_manifest, lookup

PROTOCOL = Path(__file__).resolve().parent.parent / "docs" / "PROTOCOL.md"
MANIFEST_SEED = bytes(range(32))  # TEST ONLY: key K of section 9.4
PUBLISHED_AT = "2026-05-28T09:30:00Z"
NUMBER = "+8613800138000"
SHORT_NUMBER = "+8695588"  # a service number: 7 digits, too short for the server to list a block of it
FROM_OFFSET = 10  # where the from-version varint (`01`) sits in delta.body: magic, version, name

JSON_INPUTS = {  # JSON texts as a client may receive them; their canonical form is the vector
    "json.order": '{"b": 1, "a": 2, "B": 3, "aa": 4, "a\\u0000": 5, "é": 6, "\\uffff": 7, "😀": 8, '
                  '"z": {"y": 1, "x": 2}}',
    "json.strings": '{"s": "é☎😀 \\uD83D\\uDE00 \\"\\\\\\/ \\b\\f\\n\\r\\t \\u0000\\u001F\\u007F\\u0080 end"}',
    "json.numbers": '{"n": [0, -0, 10, -7, 18446744073709551616, 1.0, 2.50, 1E3, -0.0, 0.1, 0.0001, 0.00001, '
                    '1e15, 1e16, 123456789.125, 5e-324, 1.5e300, 0.30000000000000004]}',
    "json.literals": '{"t": true, "f": false, "z": null, "o": {}, "a": [], '
                     '"nested": {"b": [{"d": null, "c": true}], "a": false}}',
}
EXTRA_MEMBERS = {"note": "Zürich ☎ 😀\u0007", "flags": {"region": None, "old": False, "beta": True}, "ratio": 0.25}
VARINTS = ["8100", "ac8280808000", "80808080808080808002", "ffffffffffffffffff7f", "8080808080808080808001"]
RICE_CASES = [(20, [13]), (20, [0, 6, 16])]  # (m, positions): a tie, and bits against bytes


def key() -> signing.SigningKey:
    return signing.SigningKey.from_seed(MANIFEST_SEED)


def manifest_of(name: str, snapshot: bytes, **extra) -> dict:
    """The manifest of section 9.4 for a snapshot of capacity 1000, error rate 0.001."""
    parsed = bloom.parse_snapshot(snapshot)
    return {"list": name, "version": 1, "generation": 1, "error_rate": parsed.error_rate,
            "capacity": parsed.capacity, "count": parsed.count, "num_slices": parsed.num_slices,
            "bits_per_slice": parsed.bits_per_slice, "sha256": hashlib.sha256(snapshot).hexdigest(),
            "snapshot_bytes": len(snapshot), "published_at": PUBLISHED_AT, "key_id": key().key_id, **extra}


VECTOR_SNAPSHOT = bloom.build_snapshot(
    ["+8613800138000", "+8613912345678", "+12025550143", "+442079460000", "+4008001234"], 1000, 0.001)


def vector_delta_body() -> bytes:
    """delta.body of section 9.3, recomputed."""
    old = bloom.parse_snapshot(VECTOR_SNAPSHOT).bits
    target = bloom.build_snapshot(["+8613800138000", "+8613912345678", "+442079460000", "+4008001234",
                                   "+8618612345678"], 1000, 0.001)
    return delta.encode(delta.diff_positions(old, bloom.parse_snapshot(target).bits), list_name="spam",
                        from_version=1, to_version=2, num_bits=len(old),
                        snapshot_sha256=hashlib.sha256(target).digest())


def varint_read(hex_bytes: str) -> str:
    """What the decoder makes of these bytes as the from version of delta.body."""
    body = vector_delta_body()
    assert body[FROM_OFFSET] == 1
    try:
        header, _ = delta.decode(body[:FROM_OFFSET] + bytes.fromhex(hex_bytes) + body[FROM_OFFSET + 1:])
    except delta.DeltaError:
        return "refused"
    return str(header.from_version)


def flip_trailing_bits(b64: str) -> str:
    """The same bytes in base64 with every unused bit of the last character set."""
    data = b64.rstrip("=")
    unused = (6 * len(data)) % 8
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = alphabet.index(data[-1]) | ((1 << unused) - 1)
    return data[:-1] + alphabet[last] + b64[len(data):]


def write_list(folder: Path, name: str, members: list[str]) -> None:
    """A list as the reference client stores it (sync/client.py): a JSON line, then the snapshot."""
    snapshot = bloom.build_snapshot(members, 1000, 0.001)
    manifest = manifest_of(name, snapshot)
    head = json.dumps({"manifest": manifest, "signature": key().sign(manifest), "etag": None},
                      sort_keys=True, separators=(",", ":"))
    (folder / f"{name}.list").write_bytes(head.encode() + b"\n" + snapshot)


def lookup_answer(folder: Path, lists: dict[str, list[str]], number: str) -> str:
    folder.mkdir()
    (folder / "keys.json").write_text(json.dumps({"keys": {key().key_id: key().public_b64},
                                                  "retired": {}, "revoked": []}))
    for name, members in lists.items():
        write_list(folder, name, members)
    return ", ".join(lookup(str(folder), number)["lists"]) or "-"


def lookup_cases() -> dict[str, tuple[dict[str, list[str]], str]]:
    everywhere = {"spam": [NUMBER], "fraud": [NUMBER], "ring_once": [NUMBER], "ranges": [NUMBER[:-1] + "x"]}
    return {
        "lookup.listed": (everywhere, NUMBER),
        "lookup.allowed": ({**everywhere, "allow": [NUMBER]}, NUMBER),
        "lookup.short": ({"spam": [], "ranges": [SHORT_NUMBER[:-1] + "x"]}, SHORT_NUMBER),
        "lookup.none": ({"spam": ["+8613912345678"], "allow": []}, NUMBER),
    }


def compute_vectors(folder: Path) -> dict[str, str]:
    """Every ```vectors-edge line of PROTOCOL.md, from the reference code."""
    out: dict[str, str] = {}
    for name, text in JSON_INPUTS.items():
        out[f"{name}.input"] = text
        out[f"{name}.canonical"] = signing.canonical(json.loads(text)).decode("ascii")
    extended = manifest_of("spam", VECTOR_SNAPSHOT, **EXTRA_MEMBERS)
    out["manifest_extra.canonical"] = signing.canonical(extended).decode("ascii")
    out["manifest_extra.signature"] = key().sign(extended)
    signature = key().sign(manifest_of("spam", VECTOR_SNAPSHOT))
    out["b64.accepted.signature_trailing_bits"] = flip_trailing_bits(signature)
    out["b64.accepted.public_key_trailing_bits"] = flip_trailing_bits(key().public_b64)
    out["b64.refused.unpadded"] = signature.rstrip("=")
    out["b64.refused.excess_padding"] = signature + "="
    out["b64.refused.urlsafe"] = signature.replace("+", "-").replace("/", "_")
    for hex_bytes in VARINTS:
        out[f"varint.decode.{hex_bytes}"] = varint_read(hex_bytes)
    for m, positions in RICE_CASES:
        body = delta.encode(positions, list_name="spam", from_version=1, to_version=2, num_bits=m,
                            snapshot_sha256=bytes(32))
        out[f"rice.{m}/{','.join(map(str, positions))}"] = str(delta.decode_header(body)[0].rice_k)
    for name, (lists, number) in lookup_cases().items():
        out[name] = lookup_answer(folder / name, lists, number)
    return out


def document_vectors() -> dict[str, str]:
    """The `name = value` lines of every ```vectors-edge block of PROTOCOL.md."""
    found: dict[str, str] = {}
    for block in re.findall(r"```vectors-edge\n(.*?)```", PROTOCOL.read_text(encoding="utf-8"), flags=re.S):
        for line in block.splitlines():
            name, _, value = line.partition(" = ")
            assert name not in found, f"vector {name} appears twice"
            found[name.strip()] = value.strip()
    return found


DOC = document_vectors()
MANIFEST = json.loads([line for line in PROTOCOL.read_text(encoding="utf-8").splitlines()
                       if line.startswith("manifest.canonical = ")][0].partition(" = ")[2])
PUBLIC_KEY = DOC.get("b64.accepted.public_key_trailing_bits")


def test_protocol_edge_vectors_match_the_code(tmp_path):
    assert DOC == compute_vectors(tmp_path)


# ---------------------------------------------------------------- section 4: canonical JSON

@pytest.mark.parametrize("name", sorted(JSON_INPUTS))
def test_canonical_json_of_the_parsed_input_is_the_vector(name):
    out = signing.canonical(json.loads(DOC[f"{name}.input"]))
    assert out == DOC[f"{name}.canonical"].encode("ascii")


def test_canonical_json_sorts_by_code_point_not_utf16():
    assert signing.canonical({"😀": 1, "\uffff": 2}) == b'{"\\uffff":2,"\\ud83d\\ude00":1}'


def test_canonical_json_escapes_in_lowercase_hex_and_keeps_short_escapes():
    assert signing.canonical({"s": "\u00c9\x7f\x1f\n/"}) == b'{"s":"\\u00c9\\u007f\\u001f\\n/"}'


def test_canonical_json_writes_doubles_as_python_repr():
    assert signing.canonical({"a": [1e-05, 1e16, 1e15, 2.0, 0.0001]}) == \
        b'{"a":[1e-05,1e+16,1000000000000000.0,2.0,0.0001]}'


def test_extended_manifest_verifies_and_passes_the_client_checks():
    manifest = json.loads(DOC["manifest_extra.canonical"])
    assert manifest["note"] == "Zürich ☎ 😀\u0007" and manifest["flags"]["region"] is None
    assert signing.verify(key().public_b64, manifest, DOC["manifest_extra.signature"])
    check_manifest(manifest, DOC["manifest_extra.signature"], "spam", {key().key_id: key().public_b64})


def test_extended_manifest_signature_covers_the_extra_members():
    manifest = json.loads(DOC["manifest_extra.canonical"])
    manifest["flags"]["beta"] = False
    assert not signing.verify(key().public_b64, manifest, DOC["manifest_extra.signature"])


# ---------------------------------------------------------------- section 4: base64

def test_base64_with_unused_bits_set_still_verifies():
    signature = DOC["b64.accepted.signature_trailing_bits"]
    assert signature.endswith("P==")  # the canonical encoding ends in A==
    assert signing.verify(PUBLIC_KEY, MANIFEST, signature)
    assert signing.key_id(base64.b64decode(PUBLIC_KEY)) == "56475aa75463474c"


@pytest.mark.parametrize("name", ["b64.refused.unpadded", "b64.refused.excess_padding", "b64.refused.urlsafe"])
def test_base64_outside_the_strict_form_is_refused(name):
    assert not signing.verify(key().public_b64, MANIFEST, DOC[name])


# ---------------------------------------------------------------- section 6: varints and r

@pytest.mark.parametrize("hex_bytes,expected", [
    ("8100", 1),  # not minimal
    ("ac8280808000", 300),
    ("80808080808080808002", 2**64),  # ten bytes, above 2^64 - 1
    ("ffffffffffffffffff7f", 2**70 - 1),
])
def test_decoder_accepts_any_varint_of_at_most_ten_bytes(hex_bytes, expected):
    assert DOC[f"varint.decode.{hex_bytes}"] == str(expected)
    body = vector_delta_body()
    header, positions = delta.decode(body[:FROM_OFFSET] + bytes.fromhex(hex_bytes) + body[FROM_OFFSET + 1:])
    assert header.from_version == expected
    assert positions.tolist() == delta.decode(body)[1].tolist()


def test_decoder_refuses_an_eleven_byte_varint():
    assert DOC["varint.decode.8080808080808080808001"] == "refused"
    body = vector_delta_body()
    with pytest.raises(delta.DeltaError, match="longer than 10"):
        delta.decode(body[:FROM_OFFSET] + bytes.fromhex("8080808080808080808001") + body[FROM_OFFSET + 1:])


def test_rice_tie_goes_to_the_smallest_r_within_the_clipped_window():
    gaps = np.array([13])
    assert delta.rice_parameter(gaps, 20) == 3 == int(DOC["rice.20/13"])  # r* = 4 costs as much as 3


def test_rice_counts_bits_not_bytes():
    gaps = np.diff(np.array([0, 6, 16]), prepend=-1) - 1
    assert delta.rice_parameter(gaps, 20) == 1 == int(DOC["rice.20/0,6,16"])  # r = 2 would be a byte shorter


# ---------------------------------------------------------------- section 8: lookup

@pytest.mark.parametrize("name", sorted(lookup_cases()))
def test_lookup_answer_is_the_vector(tmp_path, name):
    lists, number = lookup_cases()[name]
    assert lookup_answer(tmp_path / "lists", lists, number) == DOC[name]


def test_lookup_refuses_to_answer_with_a_damaged_list(tmp_path):
    lookup_answer(tmp_path / "lists", {"spam": [NUMBER]}, NUMBER)
    path = tmp_path / "lists" / "spam.list"
    path.write_bytes(path.read_bytes()[:-1] + b"\xff")
    with pytest.raises(SyncError):
        lookup(str(tmp_path / "lists"), NUMBER)


# ---------------------------------------------------------------- section 7: HTTP

def publish_twice(store, signer, client) -> tuple[dict, dict]:
    """Versions 1 and 2 of spam (one number blocked in between): the two manifests as served."""
    from blocklist import publish
    from blocklist.reputation import Vote, cast_votes

    publish.publish(store, signer)
    first = client.get("/v1/lists/spam/manifest").get_json()["manifest"]
    cast_votes(store, [Vote(number=NUMBER, tag="loan", voter=f"v{i:07d}", at=store.clock()) for i in range(3)])
    publish.publish(store, signer)
    return first, client.get("/v1/lists/spam/manifest").get_json()["manifest"]


def test_snapshot_etag_is_the_sha256_with_or_without_version(store, signer, client):
    _, latest = publish_twice(store, signer, client)
    for query in ("", f"?version={latest['version']}"):
        response = client.get(f"/v1/lists/spam/snapshot{query}")
        assert response.status_code == 200 and response.headers["ETag"] == f'"{latest["sha256"]}"'
        again = client.get(f"/v1/lists/spam/snapshot{query}", headers={"If-None-Match": response.headers["ETag"]})
        assert (again.status_code, again.data, again.headers["ETag"]) == (304, b"", response.headers["ETag"])
    assert client.get("/v1/lists/spam/snapshot").headers["Cache-Control"] == "public, max-age=60"


def test_delta_etag_names_from_and_latest_with_or_without_to(store, signer, client):
    first, latest = publish_twice(store, signer, client)
    etag = f'"{first["version"]}-{latest["version"]}"'
    for query in (f"from={first['version']}", f"from={first['version']}&to={latest['version']}"):
        response = client.get(f"/v1/lists/spam/delta?{query}")
        assert (response.status_code, response.headers["ETag"]) == (200, etag)
        again = client.get(f"/v1/lists/spam/delta?{query}", headers={"If-None-Match": etag})
        assert (again.status_code, again.data) == (304, b"")


def test_delta_from_the_latest_version_is_304_without_if_none_match(store, signer, client):
    _, latest = publish_twice(store, signer, client)
    response = client.get(f"/v1/lists/spam/delta?from={latest['version']}")
    assert (response.status_code, response.data) == (304, b"")
    assert "ETag" not in response.headers and response.headers["Cache-Control"] == "public, max-age=60"


@pytest.mark.parametrize("query", ["delta", "delta?from=", "delta?from=1&to=", "snapshot?version=",
                                   "delta?from=+1", "delta?from=1000000000000000000"])
def test_empty_missing_or_malformed_versions_are_400(store, signer, client, query):
    publish_twice(store, signer, client)
    response = client.get(f"/v1/lists/spam/{query}")
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "invalid_version"


def test_version_with_leading_zeros_is_read_as_decimal(store, signer, client):
    first, latest = publish_twice(store, signer, client)
    response = client.get(f"/v1/lists/spam/delta?from=00{first['version']}")
    assert response.status_code == 200 and response.headers["ETag"] == f'"{first["version"]}-{latest["version"]}"'


def test_list_index_defines_bytes_per_number(store, signer, client):
    _, latest = publish_twice(store, signer, client)
    entries = {e["name"]: e for e in client.get("/v1/lists").get_json()["lists"]}
    assert list(entries) == ["spam", "fraud", "ring_once", "allow", "ranges"]
    spam, fraud = entries["spam"], entries["fraud"]
    assert spam["count"] == latest["count"] == 1
    assert spam["bytes_per_number"] == round(latest["snapshot_bytes"] / 1, 2)
    assert spam["bytes_per_number_when_full"] == round(latest["snapshot_bytes"] / latest["capacity"], 2)
    assert (fraud["count"], fraud["bytes_per_number"]) == (0, None)


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        for vector, value in compute_vectors(Path(folder)).items():
            print(f"{vector} = {value}")
