"""proxy/serve.py: `ocsp-proxy serve` wired together: what it says at start about its allow-list
(pure), a busy address, a restart keeping the cache, SIGHUP re-reading --allow-from."""

from __future__ import annotations

import asyncio
import logging
import shutil
import signal
import socket

import pytest

from ocsptools.errors import OcspToolsError
from ocsptools.proxy import serve, server
from ocsptools.proxy.issuers import Known, split_url
from test_proxy_support import (allow_dir, check_response, in_process, request_der,  # noqa: F401
                                start_proxy, wait_for)

NONE_ALLOWED = ("no responder is allowed (give --allow URL or --allow-from DIR): only cached answers "
                "can be served, every other request gets 403")
NONE_APPLICABLE = ("no certificate under --allow-from has an OCSP URL (not applicable): only cached "
                   "answers can be served, every other request gets 403")
PREFIX = split_url("http://127.0.0.1:9/")

#: (case, what was learned, --allow, what the proxy says)
NOTES = [
    ("a responder allowed", Known(prefixes=[PREFIX]), [], []),
    ("nothing allowed", Known(), [], [(logging.WARNING, NONE_ALLOWED)]),
    ("warnings first", Known(prefixes=[PREFIX], warnings=["a.pem: cannot read"]), [],
     [(logging.WARNING, "a.pem: cannot read")]),
    ("some not applicable", Known(prefixes=[PREFIX], not_applicable=2), [],
     [(logging.DEBUG, "2 certificate(s) under --allow-from without an OCSP URL: not applicable")]),
    ("none applicable", Known(not_applicable=1), [],
     [(logging.DEBUG, "1 certificate(s) under --allow-from without an OCSP URL: not applicable"),
      (logging.INFO, NONE_APPLICABLE)]),
    ("none applicable, --allow given", Known(not_applicable=1), ["http://127.0.0.1:9/"],
     [(logging.DEBUG, "1 certificate(s) under --allow-from without an OCSP URL: not applicable"),
      (logging.WARNING, NONE_ALLOWED)]),
]


@pytest.mark.parametrize("case, known, allow, said", NOTES, ids=[n[0] for n in NOTES])
def test_notes(case, known, allow, said):
    assert serve.notes(known, allow) == said


def test_a_busy_address_is_named(tmp_path):
    with socket.socket() as busy, in_process(tmp_path) as proxy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(OcspToolsError) as caught:
            asyncio.run(serve.listen_on(proxy, [("127.0.0.1", port)], server.Limits(), logging.getLogger("t")))
    assert str(caught.value) == (f"cannot listen on 127.0.0.1:{port}: address already in use (another "
                                 f"ocsp-proxy? choose another --listen)")


def test_restart_keeps_the_cache(pki, responder, allow_dir, start_proxy, tmp_path):
    leaf = pki.leaves["good1"]
    req = request_der(pki, leaf, tmp=tmp_path)
    first = start_proxy("--allow-from", str(allow_dir))
    status, _, body = first.post(req)
    assert status == 200
    assert first.stop() == 0
    responder.stop()                     # the CA is down while the proxy restarts
    try:
        second = start_proxy("--allow-from", str(allow_dir))
        status, _, again = second.post(req)
        assert status == 200 and again == body
        assert "Response verify OK" in check_response(pki, leaf, again, tmp_path)
        assert second.metrics()["ocsp_proxy_cache_hits_total"] == 1
    finally:
        responder.ensure_running()


def test_sighup_rereads_allow_from(pki, responder, tmp_path, start_proxy):
    tree = tmp_path / "later"
    tree.mkdir()
    proxy = start_proxy("--allow-from", str(tree))
    req = request_der(pki, pki.leaves["good1"], tmp=tmp_path)
    assert proxy.post(req)[0] == 403
    shutil.copy(pki.leaves["good1"].fullchain, tree / "good1.pem")
    proxy.proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: "reloaded" in proxy.log)
    assert proxy.post(req)[0] == 200
