#!/usr/bin/env python3
"""ocsptools.stapler: what the OCSP callback costs a pyOpenSSL handshake.

Side by side in one run, in one process (memory BIOs, no sockets, so only
the TLS work is measured): handshakes of a client that asks for a staple
against a server with no OCSP callback (baseline), with a callback that
returns fixed bytes (the floor for any stapler), and with the Stapler
(looks the certificate up by its DER, checks the staple's times, returns
it).  Also the callback alone, per call.  Target: the Stapler's callback
adds no more than a few percent to a handshake (it runs no openssl, reads
no file, opens no socket).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from common import write_section  # noqa: E402
import pki as pkimod  # noqa: E402

from OpenSSL import SSL  # noqa: E402

from ocsptools.stapler import Stapler  # noqa: E402

HANDSHAKES = 400
CALLS = 20000
ROUNDS = 5


def server_context(leaf, callback):
    ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
    ctx.use_certificate_chain_file(str(leaf.fullchain))
    ctx.use_privatekey_file(str(leaf.key))
    if callback is not None:
        ctx.set_ocsp_server_callback(callback)
    return ctx


def client_context(got):
    ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)

    def on_ocsp(conn, der, data):
        got.append(len(der))
        return True
    ctx.set_ocsp_client_callback(on_ocsp)
    return ctx


def handshake(sctx, cctx) -> None:
    server = SSL.Connection(sctx, None)
    server.set_accept_state()
    client = SSL.Connection(cctx, None)
    client.set_connect_state()
    client.request_ocsp()
    done_c = done_s = False
    for _ in range(20):
        for conn, other in ((client, server), (server, client)):
            try:
                conn.do_handshake()
                if conn is client:
                    done_c = True
                else:
                    done_s = True
            except SSL.WantReadError:
                pass
            try:
                data = conn.bio_read(65536)
            except SSL.WantReadError:
                data = b""
            if data:
                other.bio_write(data)
        if done_c and done_s:
            return
    raise RuntimeError("handshake did not complete")


def per_second(fn, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - start)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-stapler-") as tmp:
        p = pkimod.build_pki(Path(tmp) / "pki", leaves=("good1",))
        leaf = p.leaves["good1"]
        with pkimod.Responder(p):
            stapler = Stapler(Path(tmp) / "staples")
            stapler.add(str(leaf.fullchain))
            stapler.prestaple(require_all=True)
        staple = Path(stapler.status()[0].staple_file).read_bytes()

        variants = [
            ("no OCSP callback (baseline)", None),
            ("callback returning fixed bytes (floor)", lambda conn, data: staple),
            ("Stapler.ocsp_callback", stapler.ocsp_callback),
        ]
        setups = []
        for label, cb in variants:
            got: list = []
            sctx, cctx = server_context(leaf, cb), client_context(got)
            handshake(sctx, cctx)                           # warm up
            setups.append((label, cb, sctx, cctx, got, []))
        for _ in range(ROUNDS):                             # interleaved: load changes hit all alike
            for label, cb, sctx, cctx, got, rates in setups:
                rates.append(per_second(lambda: handshake(sctx, cctx), HANDSHAKES))
        rows = []
        base = None
        for label, cb, sctx, cctx, got, rates in setups:
            rate = statistics.median(rates)
            stapled = sum(1 for n in got if n) == len(got) if cb is not None else (sum(got) == 0)
            assert stapled, f"{label}: unexpected staple results"
            base = base or rate
            rows.append((label, rate, 1e6 / rate, rate / base))

        conn = SSL.Connection(server_context(leaf, stapler.ocsp_callback), None)
        assert stapler.ocsp_callback(conn, None) == staple
        call_rates = [per_second(lambda: stapler.ocsp_callback(conn, None), CALLS)
                      for _ in range(ROUNDS)]
        call_us = 1e6 / statistics.median(call_rates)
        stapler.close()

    overhead = (rows[0][1] / rows[2][1] - 1) * 100
    over_floor = (rows[1][1] / rows[2][1] - 1) * 100
    lines = [
        "## ocsptools.stapler: handshake cost of the OCSP callback",
        "",
        f"pyOpenSSL server and client in one process over memory BIOs (TLS 1.3, P-256), "
        f"{HANDSHAKES} handshakes per round, median of {ROUNDS} interleaved rounds; the client "
        f"asks for a staple every time.",
        "",
        "| server | handshakes/s | µs per handshake | vs baseline |",
        "|---|---:|---:|---:|",
    ]
    for label, rate, us, ratio in rows:
        lines.append(f"| {label} | {rate:,.0f} | {us:,.0f} | {ratio:.2f}x |")
    lines += [
        "",
        f"`Stapler.ocsp_callback` alone: {call_us:.1f} µs per call (median of {ROUNDS} x {CALLS:,} "
        f"calls: certificate DER, dictionary lookup, time window). Handshakes with the Stapler "
        f"are {over_floor:+.1f}% slower than with a callback returning fixed bytes, and "
        f"{overhead:+.1f}% slower than with no callback at all (stapling itself, ~{len(staple)} "
        f"bytes more per handshake, is most of that).",
    ]
    md = "\n".join(lines)
    print(md)
    write_section("stapler", md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
