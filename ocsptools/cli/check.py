"""ocsp-check: Nagios-style freshness check of OCSP staples (files, pipes, live servers)."""

from __future__ import annotations

import argparse
import re
import signal
import sys
import threading
import time
from contextlib import contextmanager
from typing import Iterator, List, Optional, Sequence

from .. import nagios, renewstatus, report, transport
from ..check.evaluate import thresholds_inverted
from ..check.live import default_port, default_servername
from ..check.model import DEFAULT_CRITICAL, DEFAULT_WARNING, CheckOptions, CheckTimeout
from ..check.run import run_checks
from ..durations import parse_duration, parse_threshold
from ..errors import OcspToolsError, UsageError
from ..openssl import STARTTLS, OpenSSL
from ._common import ArgumentParser, positive_float, run, utcnow, version_string
from .status import ExitStatus, ExitTable

PROG = "ocsp-check"

# Monitoring Plugins exit statuses (the worst state); every failure of the run itself is UNKNOWN.
EXITS = ExitTable(codes=((OcspToolsError, ExitStatus.UNKNOWN), (OSError, ExitStatus.UNKNOWN)),
                  internal=ExitStatus.UNKNOWN, help=ExitStatus.UNKNOWN,
                  interrupted=ExitStatus.UNKNOWN)

#: Grace after -t before the alarm fires: openssl children are killed at -t already.
ALARM_GRACE = 1.0

EPILOG = f"""\
states and exit status (worst wins: OK < UNKNOWN < WARNING < CRITICAL):
  0 OK        good, and more time left than the thresholds
  1 WARNING   below -w; no nextUpdate; with --renew-state: renewal failing for
              --renew-failing or longer, or the staple not renewed with that state
  2 CRITICAL  missing, empty or unreadable file; not an OCSP response (a certificate:
              give it with --cert); tryLater, unauthorized...; revoked or unknown;
              expired; thisUpdate in the future; left over from an earlier certificate;
              bad signature; not for this certificate; delegated responder not
              embedded; below -c; live: no staple sent, handshake failure;
              Must-Staple certificate without a verified staple (give -i ISSUER);
              with --renew-state: the responder said revoked to ocsp-renew-dir
  3 UNKNOWN   bad arguments, --help, --version, openssl missing, failing or not
              OpenSSL, --cert unusable

thresholds: a duration (3d, 12h, 1d12h, '2 hours 5 minutes', seconds) or a share of
the staple's life (25%): time left is counted to the instant the staple stops
verifying (the earliest of nextUpdate, the responder's and the certificate's
notAfter); defaults -w {DEFAULT_WARNING} -c {DEFAULT_CRITICAL}. -w must be at least -c when both
are durations or both percentages.
"""


def build_parser() -> ArgumentParser:
    p = ArgumentParser(
        prog=PROG, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False,
        description="Check OCSP staples (DER, PEM or base64 files, - for stdin) or the staple a "
                    "live TLS server sends, the Nagios way: one status line, perfdata, "
                    "exit 0/1/2/3.", epilog=EPILOG)
    p.add_argument("staples", metavar="STAPLE", nargs="*",
                   help="staple file(s); - reads stdin; several are checked together")
    cert = p.add_argument_group("certificate (signature and CertID verification)")
    cert.add_argument("--cert", metavar="FILE",
                      help="the certificate the staples are for (PEM, may be a bundle); default: "
                           "X for X.ocsp (also X.pem, X.crt), else status and times only")
    cert.add_argument("-i", "--issuer", metavar="FILE", help="the issuer certificate (PEM)")
    cert.add_argument("--ca-dir", metavar="DIR", action="append", default=[],
                      help="search this directory for the issuer (repeatable)")
    cert.add_argument("--aia", action="store_true",
                      help="allow downloading the issuer from the AIA caIssuers URL "
                           "(off by default: a check should not depend on the CA's web server)")
    live = p.add_argument_group("live mode")
    live.add_argument("-H", "--hostname", metavar="HOST",
                      help="connect to HOST and check the staple it sends")
    live.add_argument("-p", "--port", metavar="PORT", type=_port,
                      help="port (default 443, or the STARTTLS protocol's port)")
    live.add_argument("--servername", metavar="NAME",
                      help="SNI name (default: HOST unless it is an IP address)")
    live.add_argument("--starttls", metavar="PROTO", choices=STARTTLS,
                      help="speak PROTO before TLS: " + ", ".join(STARTTLS))
    live.add_argument("--require-staple", action="store_true",
                      help="no staple is CRITICAL even for a certificate without OCSP URL")
    thr = p.add_argument_group("thresholds")
    thr.add_argument("-w", "--warning", metavar="TIME", default=DEFAULT_WARNING,
                     help=f"WARNING when less time than this is left before the staple stops "
                          f"verifying (duration or %% of its life; default {_pct(DEFAULT_WARNING)})")
    thr.add_argument("-c", "--critical", metavar="TIME", default=DEFAULT_CRITICAL,
                     help=f"CRITICAL below this (default {_pct(DEFAULT_CRITICAL)})")
    thr.add_argument("-t", "--timeout", metavar="SECONDS", type=positive_float, default=10.0,
                     help="bound for the whole run, openssl children included (default 10)")
    ren = p.add_argument_group("renewal (pair with ocsp-renew-dir)")
    ren.add_argument("--renew-state", metavar="FILE",
                     help="ocsp-renew-dir's --state FILE (it records FILE.status): CRITICAL when "
                          "the responder told it revoked, WARNING when renewal has been failing")
    ren.add_argument("--renew-failing", metavar="DURATION", default=renewstatus.DEFAULT_FAILING,
                     help="with --renew-state: WARNING once renewal has failed this long "
                          f"(default {renewstatus.DEFAULT_FAILING})")
    out = p.add_argument_group("output").add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="JSON Lines: one object per staple")
    out.add_argument("--prometheus", action="store_true",
                     help="Prometheus text format (node_exporter textfile collector)")
    out.add_argument("--print", metavar="FIELD", dest="print_fields",
                     help="print FIELD per staple, one line each (" + ", ".join(report.FIELDS)
                          + "; comma-separated for several, tab-separated output)")
    out.add_argument("-q", "--quiet", action="store_true", help="print nothing; exit status only")
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="more detail: responder id, serial, signer validity, sources")
    p.add_argument("--openssl", metavar="PATH", default="openssl",
                   help="openssl binary (default: openssl)")
    p.add_argument("-V", "--version", action="version", version=version_string(PROG))
    return p


def _pct(text: str) -> str:
    return text.replace("%", "%%")     # argparse %-formats help strings


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range 1-65535: {text!r}")
    return value


def _options(args: argparse.Namespace) -> CheckOptions:
    try:
        warning, critical = parse_threshold(args.warning), parse_threshold(args.critical)
    except ValueError as exc:
        raise UsageError(f"{exc} (see --help)") from None
    if thresholds_inverted(warning, critical):
        raise UsageError(f"-w {warning.text} is below -c {critical.text}: the warning threshold "
                         f"must be at least the critical one (see --help)")
    try:
        failing = parse_duration(args.renew_failing)
    except ValueError as exc:
        raise UsageError(f"--renew-failing: {exc} (see --help)") from None
    return CheckOptions(warning=warning, critical=critical, require_staple=args.require_staple,
                        issuer_file=args.issuer, ca_dirs=tuple(args.ca_dir), use_aia=args.aia,
                        http=transport.HttpOptions(timeout=args.timeout),
                        renew_state=args.renew_state, renew_failing=failing)


def _live(args: argparse.Namespace) -> Optional[dict]:
    if args.hostname is None:
        for flag, value in (("-p/--port", args.port), ("--servername", args.servername),
                            ("--starttls", args.starttls)):
            if value is not None:
                raise UsageError(f"{flag} needs -H/--hostname (see --help)")
        return None
    host = args.hostname.strip()
    if not host or any(c.isspace() for c in host) or host.startswith("-"):
        raise UsageError(f"not a host name or address: {args.hostname!r}")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if args.cert is not None and not args.staples:
        raise UsageError("--cert applies to STAPLE files; live mode uses the certificate the "
                         "server presents")
    # s_client gets most of the time; the rest is for verifying what it brought back.
    budget = args.timeout - min(2.0, 0.25 * args.timeout)
    return {"host": host, "port": args.port or default_port(args.starttls),
            "servername": args.servername or default_servername(host),
            "starttls": args.starttls, "timeout": budget}


@contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    """Backstop for -t: anything not bounded by a child timeout (a hung stdin) ends the run.

    Signals exist only in the main thread; elsewhere the child timeouts are the bound."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expired(signum, frame):
        raise CheckTimeout(f"no result within the {seconds - ALARM_GRACE:g} s timeout (-t)")
    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def main(argv: List[str]) -> int:
    args = build_parser().parse_args(argv)
    live = _live(args)
    if not args.staples and live is None:
        raise UsageError("give STAPLE file(s) or -H HOST (see --help)")
    if args.staples.count("-") > 1:
        raise UsageError("standard input (-) can be read only once")
    if args.cert == "-" and "-" in args.staples:
        raise UsageError("--cert - and STAPLE - cannot both read standard input")
    fields = None
    if args.print_fields is not None:
        try:
            fields = report.parse_fields(args.print_fields)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    opts = _options(args)
    with _alarm(args.timeout + ALARM_GRACE):
        ossl = OpenSSL(args.openssl, timeout=args.timeout,
                       deadline=time.monotonic() + args.timeout)
        now = utcnow()
        results = run_checks(args.staples, opts, ossl, now, cert_path=args.cert, live=live)
    if args.json:
        text = report.json_lines(results)
    elif args.prometheus:
        text = report.prometheus(results, now)
    elif fields is not None:
        text = report.print_fields(results, fields)
    elif args.quiet:
        text = ""
    else:
        text = report.nagios_output(results, verbose=args.verbose)
    sys.stdout.write(text)
    sys.stdout.flush()
    return ExitStatus(nagios.worst(r.state for r in results))


_QUIET = re.compile(r"^-[vq]*q[vq]*$")
_MACHINE = ("--json", "--prometheus", "--print", "--quiet")


def nagios_output_wanted(argv: Sequence[str]) -> bool:
    """Is stdout the Nagios status line (not -q, --json, --prometheus or --print output)?

    Decided from the raw arguments because a usage error happens before they are parsed."""
    for arg in argv:
        if arg == "--":
            return True
        if _QUIET.match(arg) or arg.split("=", 1)[0] in _MACHINE:
            return False
    return True


def _format_error(nagios_line: bool):
    """Errors of the whole run: ``OCSP UNKNOWN - ...`` first on stdout (what Nagios reads),
    unless stdout carries machine output or nothing (-q), and always the usual one line on
    stderr (what cron and scripts show)."""
    def fmt(prog: str, exc: BaseException) -> str:
        if nagios_line:
            try:
                sys.stdout.write(report.error_line(str(exc)) + "\n")
                sys.stdout.flush()
            except (BrokenPipeError, OSError):
                pass
        return f"{prog}: {exc}"
    return fmt


def entry(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    return run(PROG, main, EXITS, args, format_error=_format_error(nagios_output_wanted(args)))


def console() -> None:
    sys.exit(entry())
