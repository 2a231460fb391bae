"""Reading ``openssl s_client -status -showcerts -msg`` (ocsptools.openssl.s_client), on runs
recorded against real TLS servers (tests/fixtures/check/s_client_*.json)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from ocsptools.openssl import argv
from ocsptools.openssl.s_client import interpret_s_client, parse_msg_dump, parse_s_client

FIX = Path(__file__).resolve().parent / "fixtures" / "check"


def recorded(name: str) -> dict:
    return json.loads((FIX / f"s_client_{name}.json").read_text())


@pytest.mark.parametrize("name, protocol, said", [
    ("tls13_staple", "TLSv1.3", "sent"), ("tls12_staple", "TLSv1.2", "sent"),
    ("tls13_no_staple", "TLSv1.3", "none"), ("tls12_no_staple", "TLSv1.2", "none"),
    ("tls13_leaf_only", "TLSv1.3", "sent"), ("smtp_staple", "TLSv1.3", "sent"),
])
def test_recorded_handshakes_give_back_the_served_bytes(name, protocol, said):
    rec = recorded(name)
    hs = interpret_s_client(rec["stdout"], rec["stderr"], rec["msg"])
    assert hs.disagreements == ()
    assert hs.report.connected and hs.report.handshake_ok
    assert hs.report.protocol == protocol and hs.report.staple_said == said
    want_staple = base64.b64decode(rec["staple"]) if rec["staple"] else None
    assert hs.staple == want_staple
    assert [base64.b64encode(c).decode() for c in hs.chain] == rec["chain"]
    assert hs.presented.chain == hs.report.chain          # both views of the chain agree
    assert hs.presented.version == protocol.replace("TLSv", "TLS ")


def test_recorded_failures():
    refused = parse_s_client(**{k: recorded("refused")[k] for k in ("stdout", "stderr")})
    assert not refused.connected and refused.connect_errno == 111
    assert refused.errors[0] == "Connection refused"
    plain = recorded("not_tls")
    hs = interpret_s_client(plain["stdout"], plain["stderr"], plain["msg"])
    assert hs.report.connected and not hs.report.handshake_ok and hs.staple is None
    assert hs.report.errors == ("wrong version number",) and hs.disagreements == ()
    smtp = parse_s_client(recorded("smtp_no_starttls")["stdout"], recorded("smtp_no_starttls")["stderr"])
    assert smtp.starttls_error == "Didn't find STARTTLS in server response, trying anyway..."
    assert not smtp.handshake_ok


def test_error_detail_prefers_the_system_message():
    lookup = ("40C7E1F1B57F0000:error:10080002:BIO routines:BIO_lookup_ex:system lib:"
              "../crypto/bio/bio_addr.c:738:Name or service not known\nconnect:errno=0\n")
    assert parse_s_client("", lookup).error_detail == "Name or service not known"
    refused = recorded("refused")
    assert parse_s_client(refused["stdout"], refused["stderr"]).error_detail == "Connection refused"
    assert parse_s_client("", "").error_detail is None


def test_an_s_client_that_refuses_our_options():
    rep = parse_s_client("", "s_client: Unknown option: -msgfile\ns_client: Use -help for summary.\n")
    assert rep.usage_error == "s_client: Unknown option: -msgfile" and not rep.connected


def test_msg_dump_lengths_are_checked():
    rec = recorded("tls12_staple")
    lines = rec["msg"].splitlines()
    idx = next(i for i, l in enumerate(lines) if l.endswith("CertificateStatus"))
    truncated = "\n".join(lines[:idx + 2] + lines[idx + 3:])        # drop one hex line
    with pytest.raises(ValueError, match="header says"):
        parse_msg_dump(truncated)
    hs = interpret_s_client(rec["stdout"], rec["stderr"], truncated)
    assert hs.staple is None
    assert any("unreadable handshake dump" in d for d in hs.disagreements)
    assert any("missing from the handshake dump" in d for d in hs.disagreements)
    with pytest.raises(ValueError, match="unexpected token"):
        parse_msg_dump("<<< TLS 1.2, Handshake [length 0002], Finished\n    14 zz\n")


def test_views_that_contradict_each_other_are_reported():
    staple_rec, none_rec = recorded("tls13_staple"), recorded("tls13_no_staple")
    hs = interpret_s_client(none_rec["stdout"], none_rec["stderr"], staple_rec["msg"])
    assert any("no staple was sent, but the handshake carries one" in d for d in hs.disagreements)
    leaf_only = recorded("tls13_leaf_only")
    hs = interpret_s_client(leaf_only["stdout"], leaf_only["stderr"], staple_rec["msg"])
    assert hs.disagreements == ("the -showcerts chain differs from the Certificate message",)


@pytest.mark.parametrize("host, kw, expected", [
    ("example.org", {}, ["-connect example.org:443", "-noservername"]),
    ("example.org", {"servername": "www.example.org"}, ["-servername www.example.org"]),
    ("::1", {}, ["-connect [::1]:443"]),
    ("[::1]", {}, ["-connect [::1]:443"]),
    ("mail.example.org", {"servername": "mail.example.org", "starttls": "xmpp"},
     ["-starttls xmpp -xmpphost mail.example.org"]),
])
def test_s_client_command_line(host, kw, expected):
    args = argv.s_client(host, 443, "/x/msg", **kw)
    joined = " ".join(args)
    assert all(fragment in joined for fragment in expected), joined
    assert args[:1] == ["s_client"] and "-status" in args and "-msgfile" in args
    assert "-no-CAfile" in args and "-no-CApath" in args and "-no-CAstore" in args


def test_s_client_refuses_an_unknown_starttls():
    with pytest.raises(ValueError, match="unsupported STARTTLS"):
        argv.s_client("example.org", 25, "/x/msg", starttls="gopher")
