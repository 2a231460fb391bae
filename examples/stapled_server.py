#!/usr/bin/env python3
"""A small HTTPS server built on pyOpenSSL that staples OCSP with ocsptools.stapler.

    python examples/stapled_server.py --cert fullchain.pem --key privkey.pem \\
        --staples /var/cache/stapled-server --port 8443

    openssl s_client -connect 127.0.0.1:8443 -status </dev/null | grep -A3 'OCSP Response Status'

Several ``--cert``/``--key`` pairs serve several certificates, chosen by SNI
from their DNS names (the first pair is the default): one pyOpenSSL context
per certificate, the Stapler attached to each.

Start-up waits until every Must-Staple certificate has a valid staple (from
the staple directory or the responder) and exits with status 1 and one line
on stderr if it cannot get one: a Must-Staple certificate is never served
unstapled.  SIGHUP asks the responders again at once; SIGTERM or Ctrl-C stop
cleanly (exit 0).  ``--metrics-port`` serves Prometheus metrics (prometheus_client is
installed with ocsptools).
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import struct
import sys
import threading
from types import FrameType
from typing import Dict, List, Optional

from OpenSSL import SSL

from ocsptools.errors import OcspToolsError
from ocsptools.stapler import Stapler

log = logging.getLogger("stapled_server")


def dns_names(cert_file: str) -> List[str]:
    """The DNS names of the first certificate in CERT_FILE (for SNI)."""
    from cryptography import x509
    with open(cert_file, "rb") as fh:
        cert = x509.load_pem_x509_certificate(fh.read())
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return [n.lower() for n in san.value.get_values_for_type(x509.DNSName)]


def make_context(cert_file: str, key_file: str, stapler: Stapler) -> SSL.Context:
    ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
    ctx.use_certificate_chain_file(cert_file)
    ctx.use_privatekey_file(key_file)
    ctx.check_privatekey()
    stapler.attach(ctx)                 # before the context makes any connection
    return ctx


def handle(conn: SSL.Connection, raw: socket.socket) -> None:
    try:
        conn.set_accept_state()
        conn.do_handshake()
        request = b""
        while b"\r\n\r\n" not in request and len(request) < 8192:
            chunk = conn.recv(4096)
            if not chunk:
                break
            request += chunk
        if request:
            body = b"stapled\n"
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        conn.shutdown()
    except (SSL.Error, OSError) as exc:
        log.debug("connection ended: %r", exc)
    finally:
        raw.close()


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description="HTTPS server with in-process OCSP stapling")
    p.add_argument("--cert", action="append", required=True,
                   help="certificate file: leaf first, then its chain (repeatable)")
    p.add_argument("--key", action="append", required=True, help="its private key (repeatable)")
    p.add_argument("--staples", metavar="DIR", help="directory that keeps staples across restarts")
    p.add_argument("--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8443, help="port (default 8443)")
    p.add_argument("--openssl", default="openssl", help="openssl binary (default: openssl)")
    p.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    p.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    args = p.parse_args(argv)
    if len(args.cert) != len(args.key):
        p.error("give one --key per --cert")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)

    stapler = Stapler(args.staples, openssl=args.openssl)
    try:
        contexts: Dict[str, SSL.Context] = {}
        default: Optional[SSL.Context] = None
        for cert_file, key_file in zip(args.cert, args.key):
            stapler.add(cert_file)
            ctx = make_context(cert_file, key_file, stapler)
            default = default or ctx
            for name in dns_names(cert_file):
                contexts.setdefault(name, ctx)
        assert default is not None

        def on_sni(conn: SSL.Connection) -> None:
            name = (conn.get_servername() or b"").decode("ascii", "replace").lower()
            ctx = contexts.get(name)
            if ctx is not None and ctx is not default:
                conn.set_context(ctx)

        default.set_tlsext_servername_callback(on_sni)
        stapler.start(wait=True, timeout=30)     # Must-Staple certificates get a staple first
        if args.metrics_port:
            import prometheus_client
            stapler.register_metrics()
            prometheus_client.start_http_server(args.metrics_port, addr=args.bind)
    except OcspToolsError as exc:
        print(f"stapled_server: {exc}", file=sys.stderr)
        stapler.close()
        return 1
    except SSL.Error as exc:
        print(f"stapled_server: cannot load the certificate or key: {exc}", file=sys.stderr)
        stapler.close()
        return 1

    stopping = threading.Event()

    def on_signal(signum: int, frame: Optional[FrameType]) -> None:
        if signum == signal.SIGHUP:
            stapler.refresh_now()
        else:
            stopping.set()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)

    listener = socket.socket(socket.AF_INET6 if ":" in args.bind else socket.AF_INET)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((args.bind, args.port))
    except OSError as exc:
        print(f"stapled_server: cannot listen on {args.bind}:{args.port}: {exc.strerror}",
              file=sys.stderr)
        stapler.close()
        return 1
    listener.listen(64)
    listener.settimeout(0.5)
    print(f"listening on https://{args.bind}:{args.port}/", flush=True)
    try:
        while not stopping.is_set():
            try:
                raw, _ = listener.accept()
            except (socket.timeout, InterruptedError):
                continue
            raw.setblocking(True)       # pyOpenSSL wants blocking sockets; an idle client is
            idle = struct.pack("ll", 30, 0)   # dropped after 30 s by the kernel's timeouts
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, idle)
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, idle)
            conn = SSL.Connection(default, raw)
            threading.Thread(target=handle, args=(conn, raw), daemon=True).start()
    finally:
        listener.close()
        stapler.close()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
