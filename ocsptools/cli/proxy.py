"""ocsp-proxy: a caching, verifying OCSP proxy (serve), and its cache tools (warm, purge, stats)."""

from __future__ import annotations

import argparse
import logging
import os
import stat
import sys
import time
from typing import List, Optional, Sequence, Tuple

from .. import transport
from ..errors import FetchError, InputError, OpensslError, StoreError, UsageError
from ..openssl import HASHES, OpenSSL
from ..staple import Staple, iso
from ..durations import parse_percent
from ._common import ArgumentParser, positive_float, run, utcnow, version_string
from .status import ExitStatus, ExitTable

PROG = "ocsp-proxy"
DEFAULT_CACHE = "sqlite:///var/cache/ocsp-proxy/cache.sqlite"
DEFAULT_LISTEN = "127.0.0.1:8008"


EXITS = ExitTable(codes=(
    (UsageError, ExitStatus.USAGE),
    (InputError, ExitStatus.USAGE),
    (FetchError, ExitStatus.FAILED),
    (StoreError, ExitStatus.FAILED),
    (OpensslError, ExitStatus.FAILED),
    (OSError, ExitStatus.FAILED),
), internal=ExitStatus.FAILED)

EPILOG = """\
subcommands:
  serve   run the proxy (until SIGTERM/SIGINT; SIGHUP re-reads --allow-from)
  warm    fetch, verify and cache the responses for certificates
  purge   drop the cached responses for certificates (or --serial)
  stats   summarise (or --list) the cache

exit status:
  0  success (serve: stopped by a signal; warm: every certificate cached or
     not applicable; purge/stats: done)
  1  failure: cannot listen, cache unreachable, a certificate could not be
     fetched or verified (warm), the running proxy refused the purge,
     openssl is missing, fails or is not OpenSSL
  2  usage or input error (bad option, unreadable certificate or directory)
  4  warm: a certificate is revoked (its verified response is cached)
"""


def _env_cache() -> str:
    return os.environ.get("OCSP_PROXY_CACHE") or DEFAULT_CACHE


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cache", metavar="URL", default=None,
                   help=f"sqlite:///PATH or redis://HOST:PORT/DB (default $OCSP_PROXY_CACHE or {DEFAULT_CACHE})")
    p.add_argument("--openssl", metavar="PATH", default="openssl", help="openssl binary (default: openssl)")
    p.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    p.add_argument("-v", "--verbose", action="store_true", help="more detail")


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog=PROG, formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="A caching, verifying OCSP proxy that keeps servers stapling "
                                   "through responder outages.", epilog=EPILOG)
    p.add_argument("-V", "--version", action="version", version=version_string(PROG))
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)

    s = sub.add_parser("serve", help="run the proxy", description="Run the proxy.")
    s.add_argument("--listen", metavar="ADDR:PORT", action="append", default=[],
                   help=f"address to listen on (repeatable; default {DEFAULT_LISTEN}; [::1]:PORT for IPv6; "
                        f"port 0 picks a free one)")
    s.add_argument("--allow", metavar="URL", action="append", default=[],
                   help="responder URL prefix the proxy may contact (repeatable)")
    s.add_argument("--allow-from", metavar="DIR", action="append", default=[],
                   help="allow the OCSP URLs of the certificates under DIR and trust their issuers "
                        "(repeatable, recursive)")
    s.add_argument("--refresh-at", metavar="PCT", default="50%",
                   help="refresh each answer at PCT of its lifetime (default 50%%)")
    s.add_argument("--admin-token-file", metavar="FILE",
                   help="enable POST /admin/purge for requests bearing the token in FILE")
    s.add_argument("--timeout", metavar="SECONDS", type=positive_float, default=10.0,
                   help="limit for each responder exchange and each openssl run (default 10)")
    s.add_argument("--request-timeout", metavar="SECONDS", type=positive_float, default=10.0,
                   help="a client must send a whole request within this (default 10)")
    s.add_argument("--idle-timeout", metavar="SECONDS", type=positive_float, default=30.0,
                   help="close keep-alive connections idle this long (default 30)")
    s.add_argument("--max-request-size", metavar="BYTES", type=int, default=65536,
                   help="larger request bodies get 413 (default 65536)")
    _common(s)

    w = sub.add_parser("warm", help="fetch, verify and cache responses for certificates",
                       description="Fetch, verify and cache the responses for certificates.")
    w.add_argument("targets", metavar="DIR|CERT", nargs="+",
                   help="certificate files, or directories searched recursively")
    w.add_argument("--hash", choices=HASHES[:2], action="append", dest="hashes", default=None,
                   help="CertID hash to cache (repeatable; default sha1, what Apache and nginx send)")
    w.add_argument("--refresh-at", metavar="PCT", default="50%",
                   help="when the proxy should refresh it (default 50%%; use serve's value)")
    w.add_argument("--timeout", metavar="SECONDS", type=positive_float, default=10.0,
                   help="limit for each responder exchange and each openssl run (default 10)")
    _common(w)

    g = sub.add_parser("purge", help="drop cached responses", description="Drop cached responses.")
    g.add_argument("certs", metavar="CERT", nargs="*", help="certificates whose responses to drop")
    g.add_argument("--serial", metavar="HEX", action="append", default=[],
                   help="drop the responses for this serial number (repeatable)")
    g.add_argument("--via", metavar="URL",
                   help="ask a running proxy (http://HOST:PORT/) instead of writing the cache directly")
    g.add_argument("--admin-token-file", metavar="FILE", help="the token for --via")
    _common(g)

    t = sub.add_parser("stats", help="summarise the cache", description="Summarise the cache.")
    t.add_argument("--list", action="store_true", help="one line per cached response")
    _common(t)
    # `ocsp-proxy --help` shows every subcommand's options too (each also has its own --help)
    p.epilog = EPILOG + "".join(f"\n{name}:\n" + sp.format_help()
                                for name, sp in (("serve", s), ("warm", w), ("purge", g), ("stats", t)))
    return p


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def _logger(args) -> logging.Logger:
    log = logging.getLogger(PROG)
    log.handlers.clear()
    handler = logging.StreamHandler(sys.stderr)

    class Fmt(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            level = "" if record.levelno == logging.INFO else record.levelname.lower() + ": "
            return f"{PROG}: {level}{record.getMessage()}".replace("\n", " ")

    handler.setFormatter(Fmt())
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.WARNING if args.quiet else logging.DEBUG if args.verbose else logging.INFO)
    return log


def parse_listen(text: str) -> Tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise UsageError(f"--listen {text}: use ADDR:PORT (e.g. {DEFAULT_LISTEN} or [::1]:8008)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host or "0.0.0.0", int(port)


def read_token(path: str, log: Optional[logging.Logger] = None) -> str:
    try:
        st = os.stat(path)
        with open(path, encoding="utf-8") as fh:
            token = fh.read().strip()
    except OSError as exc:
        raise InputError(f"{path}: cannot read the admin token: {exc.strerror}", path=path) from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: the admin token must be text", path=path) from None
    if len(token) < 16 or any(c.isspace() for c in token):
        raise InputError(f"{path}: the admin token must be one word of at least 16 characters "
                         f"(e.g. from 'openssl rand -hex 32')", path=path)
    if log is not None and st.st_mode & (stat.S_IROTH | stat.S_IWOTH):
        log.warning(f"{path}: the admin token file is readable by everyone; chmod 600 it")
    return token


def _refresh_pct(text: str) -> float:
    try:
        return parse_percent(text)
    except ValueError as exc:
        raise UsageError(f"--refresh-at: {exc}") from None


def _cache_url(args) -> str:
    return args.cache or _env_cache()


def _open_cache(args):
    from ..proxy.cache import open_cache
    return open_cache(_cache_url(args))


# --------------------------------------------------------------------------
# the subcommands
# --------------------------------------------------------------------------

def cmd_serve(args) -> int:
    from ..proxy import serve, server
    from ..proxy.service import Settings
    log = _logger(args)
    listen = [parse_listen(x) for x in (args.listen or [DEFAULT_LISTEN])]
    pct = _refresh_pct(args.refresh_at)
    if args.max_request_size < 256:
        raise UsageError("--max-request-size must be at least 256 bytes")
    token = read_token(args.admin_token_file, log) if args.admin_token_file else None
    ossl = OpenSSL(args.openssl, timeout=args.timeout)
    settings = Settings(refresh_pct=pct, http=transport.HttpOptions(timeout=args.timeout),
                        admin_token=token, own=listen)
    limits = server.Limits(max_body=args.max_request_size, request_timeout=args.request_timeout,
                           idle_timeout=args.idle_timeout)
    serve.run(args.allow, args.allow_from, _cache_url(args), ossl, settings, limits, listen, log)
    return ExitStatus.OK


def cmd_warm(args) -> int:
    from ..proxy.warm import warm
    log = _logger(args)
    pct = _refresh_pct(args.refresh_at)
    ossl = OpenSSL(args.openssl, timeout=args.timeout)
    cache = _open_cache(args)

    def said(path: str, alg: str, staple: Staple, stored: bool) -> None:
        if not args.quiet:
            print(f"{path}: {staple.cert_status}, next update {iso(staple.next_update)}, "
                  f"{'cached' if stored else 'already cached (as new)'} ({alg})")
    done = warm(args.targets, list(dict.fromkeys(args.hashes or ["sha1"])), cache, ossl,
                transport.HttpOptions(timeout=args.timeout), pct, utcnow, log, said)
    cache.close()
    log.debug(f"{done.cached} cached, {done.skipped} not applicable, {done.failed} failed")
    if done.failed:
        return ExitStatus.FAILED
    return ExitStatus.REVOKED if done.revoked else ExitStatus.OK


def _serials(args, ossl) -> List[str]:
    from ..certs import load_file
    from ..codec.serial import normal as normal_serial
    serials = []
    for text in args.serial:
        try:
            serials.append(normal_serial(text))
        except ValueError:
            raise UsageError(f"--serial {text}: not a hexadecimal serial number") from None
    for path in args.certs:
        serials.append(load_file(path, ossl)[0].serial_hex)
    if not serials:
        raise UsageError("name what to purge: CERT files or --serial HEX")
    return serials


def cmd_purge(args) -> int:
    from ..proxy import purge
    log = _logger(args)
    ossl = OpenSSL(args.openssl)
    serials = _serials(args, ossl)
    if args.via:
        if not args.admin_token_file:
            raise UsageError("--via needs --admin-token-file")
        text = purge.via(args.via, read_token(args.admin_token_file), serials)
        if not args.quiet:
            print(f"{', '.join(serials)}: {text}")
        return ExitStatus.OK
    cache = _open_cache(args)
    for serial, count in purge.in_cache(cache, serials):
        if not args.quiet:
            print(f"{serial}: purged {count}")
    cache.close()
    log.debug("a running proxy notices within a few seconds")
    return ExitStatus.OK


def cmd_stats(args) -> int:
    from ..proxy.stats import lines
    cache = _open_cache(args)
    now = time.time()
    for line in lines(cache.url, list(cache.entries()), now, listing=args.list):
        print(line)
    cache.close()
    return ExitStatus.OK


def main(argv: List[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.command is None:
        raise UsageError("name a subcommand: serve, warm, purge or stats")
    return {"serve": cmd_serve, "warm": cmd_warm, "purge": cmd_purge, "stats": cmd_stats}[args.command](args)


def entry(argv: Optional[Sequence[str]] = None) -> int:
    return run(PROG, main, EXITS, argv)


def console() -> None:
    sys.exit(entry())
