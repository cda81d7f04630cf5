"""Every Redis key CallMark uses, built in one place under one prefix.

A number's keys, and the per-bucket structures its writes touch, share the bucket's hash
tag (`{b17}`), so one script can update them all atomically on a Redis Cluster too.
"""
from __future__ import annotations

import hashlib
import inspect
import zlib

PREFIX = "cm"
INDEX_PREFIX_HEX = 3  # hex digits of sha256(number) per prefix-index set: 4096 sets per bucket


class Keys:
    """Key names for a deployment with a fixed number of buckets."""

    def __init__(self, buckets: int):
        self.buckets = buckets

    def bucket_of(self, number: str) -> int:
        return zlib.crc32(number.encode()) % self.buckets

    @staticmethod
    def _digest(text: str, chars: int) -> str:
        """The first `chars` hex digits of SHA-256(text): names that reveal nothing of text."""
        return hashlib.sha256(text.encode()).hexdigest()[:chars]

    def number(self, number: str) -> str:
        """Hash: one number's reputation: counters, evidence, votes, published state (docs/STORAGE.md)."""
        return f"{PREFIX}:n:{{b{self.bucket_of(number)}}}:{number}"

    def number_pattern(self) -> str:
        """SCAN pattern of every number hash (export only: never in a per-request path)."""
        return f"{PREFIX}:n:*"

    @staticmethod
    def number_of(key: str) -> str:
        """The E.164 number a number hash key belongs to."""
        return key.split(":", 3)[3]

    def changes(self, bucket: int) -> str:
        """Stream: every change of a number's verdict or label in the bucket (the feed reads it)."""
        return f"{PREFIX}:changes:{{b{bucket}}}"

    def decay_schedule(self, bucket: int) -> str:
        """Sorted set: numbers whose verdict time alone may change, by when (unix seconds): a block's decay, or the next vote turning too old to count."""
        return f"{PREFIX}:due:{{b{bucket}}}"

    def details(self, bucket: int) -> str:
        """Stream: what reporters said (company, note, call) for regulators, kept for the retention."""
        return f"{PREFIX}:details:{{b{bucket}}}"

    def held(self, bucket: int) -> str:
        """Set: the bucket's numbers the burst guard holds at warn for review."""
        return f"{PREFIX}:held:{{b{bucket}}}"

    def talkers(self, number: str) -> str:
        """HyperLogLog: the devices (or networks) that had a conversation with the number; kept CALLMARK_TALKER_DAYS after the last."""
        return f"{PREFIX}:talk:{{b{self.bucket_of(number)}}}:{number}"

    def daily_stats(self, bucket: int, day: int) -> str:
        """Hash: the bucket's report counts on one day (days since 1970): `n`, `t<tag index>`, numbers newly marked `m`, ring-once numbers detected `r`."""
        return f"{PREFIX}:stats:{{b{bucket}}}:{day}"

    def most_reported(self, bucket: int) -> str:
        """Sorted set: the bucket's numbers with many reporters: number -> reporters."""
        return f"{PREFIX}:top:{{b{bucket}}}"

    def admin_session(self, session_id: str) -> str:
        """Hash: an /admin session (key name, scope, key hash, CSRF token, flash message)."""
        return f"{PREFIX}:admin:session:{session_id}"

    def publishes(self) -> str:
        """Stream: recent publishes, for operators."""
        return f"{PREFIX}:publishes"

    def ring_events(self, number: str, kind: str) -> str:
        """Sorted set: the ring-once detector's window for a number (kind `short` or `answered`): keyed device or network hash -> time; expires with the window."""
        return f"{PREFIX}:ring:{{b{self.bucket_of(number)}}}:{kind}:{number}"

    def report_id(self, number: str, voter: str, report_id: str) -> str:
        """String with a lifetime: a report_id already applied, in the number's bucket.

        Named by a hash of voter and report_id, so the records of one device cannot be told
        apart from anyone else's, before or after the device is erased.
        """
        return f"{PREFIX}:rid:{{b{self.bucket_of(number)}}}:{self._digest(f'{voter}:{report_id}', 32)}"

    def prefix_index(self, number: str) -> str:
        """Set: the bucket's numbers with a verdict (digits as integers: an intset) by hash prefix, for private lookups."""
        return f"{PREFIX}:px:{{b{self.bucket_of(number)}}}:{self._digest(number, INDEX_PREFIX_HEX)}"

    def prefix_index_of(self, bucket: int, prefix: str) -> str:
        """The prefix-index set of one bucket for the first INDEX_PREFIX_HEX hex digits."""
        return f"{PREFIX}:px:{{b{bucket}}}:{prefix[:INDEX_PREFIX_HEX]}"

    def prefix_index_pattern(self) -> str:
        """SCAN pattern of every prefix-index set (benchmarks and maintenance only)."""
        return f"{PREFIX}:px:*"

    def report_id_pattern(self) -> str:
        """SCAN pattern of every report_id record (benchmarks and maintenance only)."""
        return f"{PREFIX}:rid:*"

    def erased_voter(self, bucket: int, voter: str) -> str:
        """String with a lifetime: an erased device's tombstone in one bucket; the report
        script refuses its votes there (a vote in flight while the device is erased).

        Named by a hash of the voter field: after the erasure nothing stored names the field.
        """
        return f"{PREFIX}:gone:{{b{bucket}}}:{self._digest(f'gone:{voter}', 32)}"

    def device_votes(self, device_id: str) -> str:
        """Set: the numbers a device has voted on (digits), so erasing it finds its votes."""
        return f"{PREFIX}:dv:{{d{device_id}}}"

    def api_keys(self) -> str:
        """Hash: API key name -> JSON record (scope, created, keyed hash of the key)."""
        return f"{PREFIX}:apikeys"

    def api_key_lookup(self, key_hash: str) -> str:
        """String: the name of the API key with this keyed hash."""
        return f"{PREFIX}:apikey:{key_hash}"

    def api_keys_used(self) -> str:
        """Hash: API key name -> when it was last used (unix seconds)."""
        return f"{PREFIX}:apikeys:used"

    # Moderation: audit entries and disputes live on the bucket of their number, so each step
    # is one script with the number's state; listings merge the buckets (blocklist/moderation.py).
    def audit(self, bucket: int) -> str:
        """Stream: a bucket's overrides set or cleared, holds released and disputes resolved, with who and why."""
        return f"{PREFIX}:audit:{{b{bucket}}}"

    def dispute(self, bucket: int, dispute_id: str) -> str:
        """Hash: one dispute of a number in this bucket (its id starts with the bucket)."""
        return f"{PREFIX}:dispute:{{b{bucket}}}:{dispute_id}"

    def disputes_open(self, bucket: int) -> str:
        """Sorted set: a bucket's open dispute ids by opening time."""
        return f"{PREFIX}:disputes:open:{{b{bucket}}}"

    def dispute_of_number(self, number: str) -> str:
        """String: the open dispute of a number, if any."""
        return f"{PREFIX}:disputes:number:{{b{self.bucket_of(number)}}}:{number}"

    def device_daily_tags(self, device_id: str, day: int) -> str:
        """Set: the numbers a device tagged on one day (days since 1970), for its trust review; kept two days."""
        return f"{PREFIX}:dt:{{d{device_id}}}:{day}"

    def device_daily_actions(self, device_id: str, day: int) -> str:
        """Counter: the tags (new or changed) a device gave on one day, kept two days."""
        return f"{PREFIX}:da:{{d{device_id}}}:{day}"

    def trust_due(self) -> str:
        """Sorted set: device id -> when its weight is next reviewed (blocklist/trust.py)."""
        return f"{PREFIX}:trust:due"

    def network_registrations(self, network_hash: str) -> str:
        """Counter: registrations from one network (keyed hash) in the current hour."""
        return f"{PREFIX}:netreg:{network_hash}"

    def device(self, device_id: str) -> str:
        """Hash: a device: keyed hash of its token, registration time, weight, starting weight when not 100 %, standing."""
        return f"{PREFIX}:dev:{{d{device_id}}}"

    # Lists: every key of one list shares the list's hash tag, so a publish commits it in
    # one script on a cluster too.
    def list_state(self, name: str) -> str:
        """Hash: the published version of a list, its manifest and signature, its cursor."""
        return f"{PREFIX}:list:{{l:{name}}}:state"

    def list_snapshot(self, name: str) -> str:
        """String: the latest snapshot (pybloom-live file) of a list."""
        return f"{PREFIX}:list:{{l:{name}}}:snapshot"

    def list_members(self, name: str) -> str:
        """Set: the numbers in a list, for rebuilding its filter when numbers leave."""
        return f"{PREFIX}:list:{{l:{name}}}:members"

    def list_delta(self, name: str, from_version: int) -> str:
        """String: the encoded delta from `from_version` to the latest version."""
        return f"{PREFIX}:list:{{l:{name}}}:delta:{from_version}"

    def publish_lock(self) -> str:
        """String with a lifetime: held by the one process publishing now."""
        return f"{PREFIX}:publish:lock"

    def publish_fence(self) -> str:
        """Counter: fencing tokens; a commit with an older token than the list's is refused."""
        return f"{PREFIX}:publish:fence"

    def signing_endorsements(self) -> str:
        """Hash: key id -> the endorsement of that signing key by its predecessor, and `state`:
        the signing state every process follows (current, next, public keys, retirements,
        revocations; blocklist/keyring.py)."""
        return f"{PREFIX}:signing:endorsements"

    # Do-Not-Call (blocklist/dnc.py, docs/STORAGE.md "Do-Not-Call registry"): a registration is
    # named by a keyed hash of its number; the hashes of one group share the group's hash tag,
    # so a registration, its windows and its consents change in one script on a cluster too.
    def dnc_registrations(self, group: int, bucket: int) -> str:
        """Hash: the Do-Not-Call registrations whose keyed number hash starts with the bucket's 14 bits: the next 42 bits (6 characters) -> the packed record (docs/STORAGE.md)."""
        return f"{PREFIX}:dnc:r:{{r{group}}}:{bucket}"

    def dnc_windows(self, group: int) -> str:
        """Hash: the accept windows of the group's registrations that have any: `<bucket>.<field hex>` -> the windows."""
        return f"{PREFIX}:dnc:w:{{r{group}}}"

    def dnc_consents(self, group: int) -> str:
        """Hash: consents of the group's registrations to one organisation's calls: `<bucket>.<field hex>.<keyed organisation hash>` -> device, categories, date, consent id."""
        return f"{PREFIX}:dnc:c:{{r{group}}}"

    def dnc_zones(self) -> str:
        """Hash: the time zones of registered numbers: name -> index, `#<index>` -> name; an index never changes."""
        return f"{PREFIX}:dnc:zones"

    def dnc_verification(self, verification_id: str) -> str:
        """Hash: a pending Do-Not-Call verification (device, keyed hash of the code, attempts left, the number AES-GCM encrypted, its region and time zone); expires after 10 minutes."""
        return f"{PREFIX}:dnc:v:{verification_id}"

    def dnc_device(self, device_id: str) -> str:
        """Hash: a device's Do-Not-Call registrations and consents, each number AES-GCM encrypted, so that the device can list them; deleted with the device."""
        return f"{PREFIX}:dnc:dev:{{d{device_id}}}"

    def dnc_quota(self, organization: str, day: int) -> str:
        """Counter: the numbers a scrub key scrubbed on one day (days since 1970); kept two days."""
        return f"{PREFIX}:dnc:quota:{organization}:{day}"

    def dnc_receipts(self, organization: str) -> str:
        """Stream: a scrub key's receipts (time, category, count, callable, sha256 of the list), the latest 10,000."""
        return f"{PREFIX}:dnc:receipts:{organization}"

    # Do-Not-Call statistics (blocklist/dnc_stats.py): counts only, never a number; one hash
    # tag for all of them, so the daily settling of expiries is one transaction on a cluster.
    def dnc_stats_day(self, day: int) -> str:
        """Hash: the Do-Not-Call counts of one day (days since 1970): registrations `new`, `renewed`, `moved`, `updated`, `removed`, `expired` (also `new:<region>`, `removed:<region>`, `expired:<region>`), `scrubs`, `scrubbed`, `callable`, `v:<category>` violations; kept 400 days."""
        return f"{PREFIX}:dncstats:{{dncstats}}:day:{day}"

    def dnc_stats_live(self) -> str:
        """Hash: the live Do-Not-Call registrations counted: `n`, `windows`, `refuse:<category>`, `region:<region>` (expiries are subtracted once their day is over)."""
        return f"{PREFIX}:dncstats:{{dncstats}}:live"

    def dnc_stats_expiring(self, day: int) -> str:
        """Hash: the counts (as in the live hash) of the registrations whose expiry falls on one day (days since 1970); subtracted from the live counts and deleted once that day is over."""
        return f"{PREFIX}:dncstats:{{dncstats}}:exp:{day}"

    def dnc_stats_settled(self) -> str:
        """String: the last day (days since 1970) whose expiries the live Do-Not-Call counts have subtracted."""
        return f"{PREFIX}:dncstats:{{dncstats}}:settled"


    # Complaints and their cases (blocklist/complaints.py, blocklist/cases.py): a complaint, the
    # case of its number at its agency and their indexes share the number's bucket hash tag, so
    # filing a complaint and each step of a case are one script on a cluster too; listings merge
    # the buckets. A case's own keys are named by its agency and number, which every complaint
    # knows before it is filed; a transfer renames them.
    def complaint(self, bucket: int, complaint_id: str) -> str:
        """Hash: one complaint (its id starts with the bucket): number, tag, company, content, call time and type, duration, reporter region, received, agency, case, Do-Not-Call flags, the contact AES-GCM encrypted when consented; deleted after CALLMARK_COMPLAINT_RETENTION_DAYS."""
        return f"{PREFIX}:cp:{{b{bucket}}}:{complaint_id}"

    def complaints_received(self, bucket: int) -> str:
        """Sorted set: the bucket's complaint ids by when they were received (unix seconds): exports and retention read it."""
        return f"{PREFIX}:cps:{{b{bucket}}}"

    def case(self, agency: str, number: str) -> str:
        """Hash: the case of a number at an agency: id, status, complaints, first and last complaint, last activity, violations, `co:<company>` and `t:<tag>` counts, the verified company once upheld."""
        return f"{PREFIX}:case:{{b{self.bucket_of(number)}}}:{agency}:{number}"

    def case_complaints(self, agency: str, number: str) -> str:
        """Sorted set: a case's complaint ids by when they were received."""
        return f"{PREFIX}:case:cps:{{b{self.bucket_of(number)}}}:{agency}:{number}"

    def case_audit(self, agency: str, number: str) -> str:
        """List: a case's steps, oldest first, each JSON: when, who (key name), from and to which status, the note, the agencies of a transfer; the latest 1,000."""
        return f"{PREFIX}:case:audit:{{b{self.bucket_of(number)}}}:{agency}:{number}"

    def case_ids(self, bucket: int) -> str:
        """Hash: the bucket's case ids -> `<agency>|<number>`, where each case is now."""
        return f"{PREFIX}:case:ids:{{b{bucket}}}"

    def cases_by_status(self, bucket: int, agency: str, status: str) -> str:
        """Sorted set: an agency's cases in the bucket with one status, by their last activity (unix seconds, to the millisecond)."""
        return f"{PREFIX}:cases:{{b{bucket}}}:{agency}:{status}"

    def device_complaints(self, device_id: str) -> str:
        """Sorted set: a device's complaint ids by when they were received, so that it can list them; deleted with the device."""
        return f"{PREFIX}:dcp:{{d{device_id}}}"

    # Public complaint figures (blocklist/complaint_stats.py): counts only, in a hash tag of
    # their own; no TTL, so that a month's report outlives every retention period.
    def complaint_month(self, month: str) -> str:
        """Hash: a month's (`YYYY-MM`) public complaint counts: `n`, `d<DD>`, `t:<tag>`, `received:<agency>`, `upheld:<agency>`; a device counts once per number per day."""
        return f"{PREFIX}:cstats:{{cstats}}:m:{month}"

    def complaint_seen(self, day: int) -> str:
        """Set: keyed hashes of (device, number) that complained on one day (days since 1970), so a device counts once per number per day; kept two days."""
        return f"{PREFIX}:cstats:{{cstats}}:seen:{day}"

    def exposed(self) -> str:
        """Hash: every upheld case id -> what the exposure shows of it (JSON: the verified company, number, categories, agency, when upheld); an upheld case stays upheld."""
        return f"{PREFIX}:cstats:{{cstats}}:exposed"

    def complaint_report(self, month: str) -> str:
        """String: a past month's public report, frozen (JSON) the first time it is read after the month ended."""
        return f"{PREFIX}:cstats:{{cstats}}:report:{month}"

# Not key families: scan patterns, helpers, and another way to name a family listed above.
NOT_FAMILIES = {"bucket_of", "number_of", "number_pattern", "prefix_index_pattern", "report_id_pattern",
                "prefix_index_of"}
TYPES = ("Hash", "Stream", "Sorted set", "Set", "List", "String with a lifetime", "String", "Counter", "HyperLogLog")


class _Template(Keys):
    """Keys whose arguments print as `<name>`: the key families as docs/STORAGE.md shows them."""

    def bucket_of(self, number: str) -> str:  # type: ignore[override]
        return "<bucket>"

    @staticmethod
    def _digest(text: str, chars: int) -> str:
        return f"<{chars} hex of sha256 {text.replace('<', '').replace('>', '')}>"


def families() -> list[tuple[str, str, str]]:
    """(key, type, meaning) of every key family, in the order Keys defines them."""
    template, out = _Template(0), []
    for name, method in vars(Keys).items():
        if name.startswith("_") or name in NOT_FAMILIES or not callable(method):
            continue
        params = list(inspect.signature(method).parameters)[1:]
        key = getattr(template, name)(*(f"<{p}>" for p in params))
        first = inspect.getdoc(method).split("\n\n")[0].replace("\n", " ")
        kind = next(t for t in TYPES if first.startswith(t + ":"))
        out.append((key, kind.lower(), first[len(kind) + 1:].strip()))
    return out


def table() -> str:
    """docs/STORAGE.md's key table (`python -m blocklist.keys` prints it)."""
    rows = ["| key | type | what |", "|---|---|---|"]
    rows += [f"| `{key}` | {kind} | {what} |" for key, kind, what in families()]
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(table(), end="")
