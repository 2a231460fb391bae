"""ocsp-fetch: fetch the OCSP response for one certificate, verify it, write it."""

from __future__ import annotations

import os
import sys
from typing import List, Optional, Sequence

from .. import life, transport
from ..errors import (FetchError, InputError, NotApplicable, OpensslError, Revoked, StoreError,
                      UsageError)
from ..fetch import FetchOptions, fetch_staple, load_target, require_good
from ..install import install
from ..openssl import HASHES, OpenSSL
from ..staple import FORMATS, encode_staple, iso
from ._common import ArgumentParser, positive_float, run, utcnow, version_string
from .status import ExitStatus, ExitTable

PROG = "ocsp-fetch"

EXITS = ExitTable(codes=(
    (UsageError, ExitStatus.USAGE),
    (InputError, ExitStatus.USAGE),
    (NotApplicable, ExitStatus.NOT_APPLICABLE),
    (Revoked, ExitStatus.REVOKED),
    (FetchError, ExitStatus.FAILED),
    (StoreError, ExitStatus.FAILED),
    (OpensslError, ExitStatus.FAILED),
    (OSError, ExitStatus.FAILED),
), internal=ExitStatus.FAILED)

EPILOG = """\
exit status:
  0  the response is good and was written
  1  fetch or verification failed (network, HTTP, responder error such as
     tryLater or unauthorized, bad signature, wrong certificate, expired,
     older than the installed staple, status unknown), or openssl is missing,
     fails or is not OpenSSL (--openssl); nothing was written
  2  usage or input error (unreadable or non-certificate CERT, a damaged PEM
     block in it, issuer not found, bad option)
  3  not applicable: the certificate names no OCSP responder
  4  the certificate is revoked (nothing written unless --allow-revoked)
"""


def build_parser() -> ArgumentParser:
    p = ArgumentParser(
        prog=PROG, formatter_class=__import__("argparse").RawDescriptionHelpFormatter,
        description="Fetch the OCSP response for CERT, verify it fully, and write it "
                    "(to -o FILE atomically, or DER to a pipe).", epilog=EPILOG)
    p.add_argument("cert", metavar="CERT",
                   help="PEM certificate (may be a bundle: leaf first, then chain); - reads stdin")
    p.add_argument("-i", "--issuer", metavar="FILE", help="the issuer certificate (PEM)")
    p.add_argument("--ca-dir", metavar="DIR", action="append", default=[],
                   help="search this directory for the issuer (repeatable)")
    p.add_argument("--no-aia", action="store_true",
                   help="do not download the issuer from the AIA caIssuers URL")
    p.add_argument("-u", "--url", metavar="URL", action="append", default=[],
                   help="responder URL, instead of the certificate's (repeatable, tried in order)")
    p.add_argument("--method", choices=transport.METHODS, default="auto",
                   help="HTTP method: auto uses GET for requests up to 255 bytes, else POST (default auto)")
    p.add_argument("--hash", choices=HASHES[:2], default="sha1", dest="hash_alg",
                   help="CertID hash (default sha1; RFC 9919 recommends sha256)")
    p.add_argument("--nonce", action="store_true", help="add a nonce to the request (off by default)")
    p.add_argument("--timeout", metavar="SECONDS", type=positive_float, default=10.0,
                   help="limit for each HTTP exchange and each openssl run (default 10)")
    p.add_argument("--proxy", metavar="URL",
                   help="HTTP proxy (default: http_proxy/https_proxy/no_proxy from the environment)")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write the staple here, atomically, keeping mode and owner")
    p.add_argument("--format", choices=FORMATS, default="der",
                   help="output encoding: der, pem or base64 (HAProxy's set ssl ocsp-response)")
    p.add_argument("--force", action="store_true",
                   help="replace the installed staple even if the new response is older")
    p.add_argument("--allow-revoked", action="store_true",
                   help="write a verified revoked response too (exit status stays 4)")
    p.add_argument("--openssl", metavar="PATH", default="openssl", help="openssl binary (default: openssl)")
    p.add_argument("-q", "--quiet", action="store_true", help="no summary line on stderr (warnings and errors are still printed)")
    p.add_argument("-v", "--verbose", action="store_true", help="also say where the issuer and answer came from")
    p.add_argument("-V", "--version", action="version", version=version_string(PROG))
    return p


def _summary(label: str, staple, extra: str = "") -> str:
    line = f"{label}: {staple.cert_status}, this update {iso(staple.this_update)}, next update {iso(staple.next_update)}"
    if staple.cert_status == "revoked":
        line += f", revoked at {iso(staple.single.revocation_time)}"
    elif staple.valid_until is not None:
        lf = staple.life
        line += f", valid until {iso(lf.end)}"
        if lf.ended_by != life.NEXT_UPDATE:
            line += f" ({lf.ended_by})"
        line += f", renewal due at {iso(life.renewal_due(lf)[0])}"
    return line + extra


def main(argv: List[str]) -> int:
    args = build_parser().parse_args(argv)
    now = utcnow()                      # the one clock reading of this run
    for url in args.url:
        transport.check_url(url)
    if args.output is None and args.format == "der" and _stdout_is_tty():
        raise UsageError("refusing to write binary DER to a terminal: use -o FILE, a pipe, "
                         "or --format base64")
    http = transport.HttpOptions(timeout=args.timeout, proxy=args.proxy)
    ossl = OpenSSL(args.openssl, timeout=args.timeout)
    target = load_target(args.cert, ossl, issuer_file=args.issuer, ca_dirs=args.ca_dir,
                         http=http, use_aia=not args.no_aia, urls=args.url)
    opts = FetchOptions(urls=tuple(args.url), method=args.method, hash_alg=args.hash_alg,
                        nonce=args.nonce, http=http)
    result = fetch_staple(target, opts, ossl, lambda: now)
    say = (lambda line: None) if args.quiet else (lambda line: print(line, file=sys.stderr))
    for warning in result.warnings:         # news a cron user must see: printed even with -q
        print(f"{PROG}: warning: {target.label}: {warning}", file=sys.stderr)
    if args.verbose:
        say(f"{PROG}: {target.label}: issuer {target.issuer.subject} from {target.issuer_source}; "
            f"answer from {result.url} by {result.method}")
    revoked: Optional[Revoked] = None
    try:
        require_good(result, target)
    except Revoked as exc:
        if not args.allow_revoked:
            raise
        revoked = exc
    extra = ""
    if args.output is not None:
        outcome = install(args.output, result.staple, target, ossl, now,
                          fmt=args.format, force=args.force)
        if not outcome.changed:
            extra = f" ({outcome.message})"
    else:
        _write_stdout(encode_staple(result.staple.der, args.format))
    say(_summary(target.label, result.staple, extra))
    if revoked is not None:
        raise revoked
    return ExitStatus.OK


def _stdout_is_tty() -> bool:
    try:
        return os.isatty(sys.stdout.fileno())
    except (AttributeError, ValueError, OSError):
        return False


def _write_stdout(data: bytes) -> None:
    out = sys.stdout.buffer
    out.write(data)
    out.flush()


def entry(argv: Optional[Sequence[str]] = None) -> int:
    return run(PROG, main, EXITS, argv)


def console() -> None:
    sys.exit(entry())
