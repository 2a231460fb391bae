"""The three defects issue 14 reproduced, each where a user met it (they fail on b547c76, the code before it).

1. A delegated signer without SKI, named byKey, was not recognised: ``ocsp-check -v`` said
   "signer certificate not embedded", ``ocsp-fetch`` gave no warning for a signer dying before
   nextUpdate, ``ocsp-renew-dir`` called the staple fresh after the signer was dead.
2. ``ocsp-proxy`` advertised (max-age, Expires) and served answers to nextUpdate, past the
   delegated signer's notAfter.
3. ``ocsp-check`` and ``ocsp-renew-dir -n`` measured "life left" on different spans.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import pytest

from .consumers import BIN, ENV, parse_iso

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures" / "check"))
import build  # noqa: E402  (tests/fixtures/check/build.py: run a command at a faked instant)

pytestmark = pytest.mark.conformance


def _tree(tmp_path, case):
    d = tmp_path / case.name
    d.mkdir()
    (d / "cert.pem").write_bytes(case.leaf.read_bytes())
    (d / "cert.pem.issuer").write_bytes(case.issuer.read_bytes())
    return d


def test_check_v_names_the_embedded_bykey_signer_without_ski(corpus, tmp_path):
    case = corpus.by_name["delegated-noski-bykey"]
    cp = build.run_at(None, [str(BIN / "ocsp-check"), "-v", "--cert", str(case.leaf), "-i",
                             str(case.issuer), str(case.response)])
    out = cp.stdout.decode()
    assert cp.returncode == 0, out
    assert "signer certificate not embedded" not in out
    assert "signer O=ocsptools conformance, CN=ocsp-signer-noski, valid" in out


def test_fetch_warns_of_a_bykey_signer_dying_before_next_update(corpus, tmp_path):
    case = corpus.by_name["signer-dies-in-20min-noski-bykey"]
    cp = build.run_at(None, [str(BIN / "ocsp-fetch"), "-q", "-o", str(tmp_path / "s.ocsp"),
                             str(case.fullchain)], env=ENV)
    err = cp.stderr.decode()
    assert cp.returncode == 0, err
    assert "warning:" in err and "the responder certificate expires at" in err, err


@pytest.mark.parametrize("minutes, action", [(4, "fresh"), (6, "would-renew"), (25, "would-renew")])
def test_renew_dir_stops_calling_a_staple_fresh_once_its_signer_lifes_half_is_gone(
        corpus, tmp_path, minutes, action):
    """The staple's life is [thisUpdate, signer notAfter] = 30 minutes (thisUpdate 10 minutes
    before the corpus was built): due 5 minutes after it was built, dead after 20."""
    case = corpus.by_name["signer-dies-in-20min-noski-bykey"]
    d = _tree(tmp_path, case)
    (d / "cert.pem.ocsp").write_bytes(case.der)
    at = corpus.now + timedelta(minutes=minutes)
    cp = build.run_at(at, [str(BIN / "ocsp-renew-dir"), "-n", "-v", "--state",
                           str(tmp_path / "state.json"), str(d / "cert.pem")])
    lines = cp.stdout.decode().splitlines()
    assert [line.split("\t")[0] for line in lines] == [action], (lines, cp.stderr)
    if minutes >= 20:
        assert "responder certificate" in lines[0]


def test_proxy_expires_an_answer_with_its_signer(corpus, tmp_path):
    """max-age and Expires stop at the signer's notAfter (20 minutes), not nextUpdate (7 days)."""
    import test_proxy_support as support
    from .consumers import _request
    case = corpus.by_name["signer-dies-in-20min"]
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "fullchain.pem").write_bytes(case.fullchain.read_bytes())
    with support.ProxyProc("--allow-from", str(tmp_path / "certs"),
                           cache=f"sqlite:///{tmp_path}/cache.sqlite") as p:
        status, headers, body = p.post(_request(case), target=corpus.url(case))
    assert status == 200 and body == case.der
    max_age = int(headers["cache-control"].split("max-age=")[1].split(",")[0])
    assert 0 < max_age <= 20 * 60
    from email.utils import parsedate_to_datetime
    assert parsedate_to_datetime(headers["expires"]) == case.valid_until


def test_check_and_renew_dir_agree_on_the_signer_dying_in_20_minutes(corpus, tmp_path):
    """At +13 minutes: 7 of 30 minutes left.  ocsp-check says WARNING (below 25 %), and
    ocsp-renew-dir has been renewing it since +5 minutes (half of the 30)."""
    case = corpus.by_name["signer-dies-in-20min"]
    d = _tree(tmp_path, case)
    (d / "cert.pem.ocsp").write_bytes(case.der)
    at = corpus.now + timedelta(minutes=13)
    check = build.run_at(at, [str(BIN / "ocsp-check"), "--json", str(d / "cert.pem.ocsp")])
    import json
    report = json.loads(check.stdout.decode())
    assert report["state"] == "WARNING", report
    assert parse_iso(report["valid_until"]) == case.valid_until
    assert parse_iso(report["renewal_due"]) == case.renewal_due
    renew = build.run_at(at, [str(BIN / "ocsp-renew-dir"), "-n", "--state",
                              str(tmp_path / "state.json"), str(d / "cert.pem")])
    assert renew.stdout.decode().startswith("would-renew\t"), renew.stdout
