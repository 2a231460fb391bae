"""proxy/entry.py: the cached Entry, its JSON (also as earlier versions wrote it), the migration of
old JSON and the counts ``stats`` shows; all pure."""

from __future__ import annotations

import base64
import json
from dataclasses import replace

import pytest

from ocsptools.proxy.entry import Entry, describe, migrated
from test_proxy_support import make_entry

NOW = 1_800_000_000.0


@pytest.mark.parametrize("produced_at", [NOW - 60, None])
def test_json_round_trip(produced_at):
    e = replace(make_entry(now=NOW), produced_at=produced_at, failures=3)
    text = e.to_json()
    assert Entry.from_json(text) == e
    data = json.loads(text)
    assert base64.b64decode(data["response"]) == e.response and base64.b64decode(data["request"]) == e.request
    assert e.version == (e.this_update, produced_at)


def old_json(entry: Entry, **extra) -> str:
    """ENTRY's JSON as the version before the effective life wrote it: issuer and leaf DER, no
    valid_until."""
    data = json.loads(entry.to_json())
    del data["valid_until"]
    data.update(issuer=base64.b64encode(b"issuer-der").decode(), leaf=None, **extra)
    return json.dumps(data)


def test_an_old_entry_reads_with_its_next_update_as_its_end():
    e = make_entry(now=NOW, valid_until=NOW + 60)
    read = Entry.from_json(old_json(e))
    assert read == replace(e, valid_until=e.next_update)


#: (written by, its due, NOW of the migration, due after it)
MIGRATIONS = [
    ("the previous version, refresh later", NOW + 5000, NOW, NOW),          # due at once
    ("the previous version, refresh overdue", NOW - 10, NOW, NOW - 10),
    ("this version", NOW + 5000, NOW, NOW + 5000),                            # left alone
]


@pytest.mark.parametrize("written_by, due, now, after", MIGRATIONS, ids=[m[0] for m in MIGRATIONS])
def test_migrated(written_by, due, now, after):
    e = make_entry(now=NOW, due=due)
    text = old_json(e) if written_by.startswith("the previous") else e.to_json()
    new = json.loads(migrated(text, now))
    assert "issuer" not in new and "leaf" not in new
    assert new["due"] == after
    assert new["valid_until"] == (e.next_update if written_by.startswith("the previous") else e.valid_until)


def test_describe_counts_by_end_and_status():
    entries = [make_entry("a", now=NOW),
               make_entry("b", now=NOW, next_update=NOW - 1),                     # past nextUpdate
               make_entry("c", now=NOW, next_update=NOW + 86400, valid_until=NOW - 1),   # signer dead
               replace(make_entry("d", now=NOW, this_update=NOW - 7200), cert_status="revoked")]
    d = describe(entries, NOW)
    assert d["entries"] == 4 and d["valid"] == 2 and d["expired"] == 2
    assert d["by_status"] == {"good": 3, "revoked": 1}
    assert d["oldest_age"] == 7200
    assert d["next_expiry"] == NOW + 3600


def test_describe_nothing():
    assert describe([], NOW) == {"entries": 0, "valid": 0, "expired": 0, "oldest_age": 0.0,
                                 "next_expiry": None, "by_status": {}}
