"""The public Python API of ocsptools (re-exported by ``ocsptools``).

Everything a program needs without going through the commands: read a
staple and its fields, fetch and verify one, decide whether it is due, write
it atomically, and renew a whole tree.  Every function raises only classes
of the ``ocsptools.OcspToolsError`` hierarchy for problems with inputs,
responders or files.  Everything else in the package is internal and may
change.

Functions that need the time take ``now``: an aware datetime, a function
returning one (read when the time is needed), or None for the current time
(UTC); nothing here keeps state between calls.

>>> import ocsptools
>>> staple = ocsptools.fetch_staple("site.pem")           # doctest: +SKIP
>>> ocsptools.write_staple("site.pem.ocsp", staple)       # doctest: +SKIP
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable, List, Optional, Sequence, Union

from dateutil import tz

from . import life, policy, store, transport, verify
from .errors import InputError, UsageError
from .fetch import FetchOptions, Target
from .fetch import fetch_staple as _fetch_staple
from .install import install as _install
from .fetch import load_target as _load_target
from .fetch import require_good as _require_good
from .openssl import OpenSSL
from .staple import FORMATS, Certificate, Staple, decode_staple, encode_staple

PathLike = Union[str, "os.PathLike[str]"]
#: what every ``now`` parameter takes: an aware datetime, a function returning one, or None
Now = Union[None, datetime, Callable[[], datetime]]

__all__ = [
    "load_target", "load_staple", "fetch_staple", "freshness", "time_problems", "write_staple",
    "install_staple", "renew", "RenewResult", "RenewReport",
]


def _now() -> datetime:
    return datetime.now(tz.UTC).replace(microsecond=0)


def _aware(value: object) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise UsageError(f"now must be a timezone-aware datetime (e.g. datetime.now(timezone.utc)), "
                         f"not {value!r}")
    return value


def _clock(now: Now) -> Callable[[], datetime]:
    """NOW as a function returning an aware datetime (checked each time it is read)."""
    if now is None:
        return _now
    if isinstance(now, datetime):
        fixed = _aware(now)
        return lambda: fixed
    if callable(now):
        return lambda: _aware(now())
    raise UsageError(f"now must be a datetime, a function returning one, or None, not {now!r}")


def _instant(now: Now) -> datetime:
    return _clock(now)()


def load_target(cert: PathLike, *, issuer: Optional[PathLike] = None,
                ca_dirs: Sequence[PathLike] = (), use_aia: bool = True,
                openssl: str = "openssl", timeout: float = 10.0) -> Target:
    """Load a certificate (PEM file or bundle, leaf first) and find its issuer.

    The issuer must verify the leaf's signature; it is searched in ISSUER,
    the bundle, ``CERT.issuer``, ``chain.pem`` beside it, CA_DIRS and (if
    USE_AIA) the AIA caIssuers URL.  Raises ``InputError`` subclasses."""
    ossl = OpenSSL(openssl, timeout=timeout)
    return _load_target(os.fspath(cert), ossl, issuer_file=None if issuer is None else os.fspath(issuer),
                        ca_dirs=[os.fspath(d) for d in ca_dirs],
                        http=transport.HttpOptions(timeout=timeout), use_aia=use_aia)


def load_staple(source: Union[bytes, PathLike], *, cert: Union[None, PathLike, Target] = None,
                issuer: Optional[PathLike] = None, openssl: str = "openssl",
                timeout: float = 10.0) -> Staple:
    """Read a staple (DER, PEM or base64; bytes or a file path).

    With CERT (a path or a ``Target``) the response is fully verified for
    that certificate (signature by the issuer or an OCSPSigning delegate,
    CertID) and ``Staple.verified`` is true; without, only its status and
    times are read.  Times are *not* judged here: see ``time_problems``.
    Raises ``ResponseError`` for anything that is not a usable response."""
    ossl = OpenSSL(openssl, timeout=timeout)
    if isinstance(source, (bytes, bytearray)):
        data, label = bytes(source), "staple"
    else:
        path = os.fspath(source)
        read = store.read_file(path)
        if read is None:
            raise InputError(f"{path}: no such file", path=path)
        data, label = read, path
    der = decode_staple(data)
    if cert is None:
        return verify.inspect(der, ossl, label=label)
    target = cert if isinstance(cert, Target) else load_target(cert, issuer=issuer, openssl=openssl,
                                                               timeout=timeout)
    return verify.verify(der, target.leaf, target.issuer, ossl, label=label)


def fetch_staple(cert: Union[PathLike, Target], *, issuer: Optional[PathLike] = None,
                 urls: Sequence[str] = (), method: str = "auto", hash_alg: str = "sha1",
                 timeout: float = 10.0, proxy: Optional[str] = None, openssl: str = "openssl",
                 require_good: bool = True, now: Now = None) -> Staple:
    """Fetch the OCSP response for CERT from its responder(s) and verify it fully.

    The same gate as ``ocsp-fetch``: each responder URL in turn (URLS
    overrides the certificate's), GET for short requests else POST, then
    signature, delegation, CertID and times.  With REQUIRE_GOOD (default) a
    revoked certificate raises ``Revoked`` and an unknown one
    ``CertStatusError``; otherwise the verified staple is returned whatever
    its status.  Raises ``NotApplicable`` when there is no responder URL,
    ``FetchError`` when no responder gave a usable answer."""
    for url in urls:
        transport.check_url(url)
    if method not in transport.METHODS:
        raise UsageError(f"method must be one of {', '.join(transport.METHODS)}")
    ossl = OpenSSL(openssl, timeout=timeout)
    http = transport.HttpOptions(timeout=timeout, proxy=proxy)
    target = cert if isinstance(cert, Target) else _load_target(
        os.fspath(cert), ossl, issuer_file=None if issuer is None else os.fspath(issuer), http=http,
        urls=tuple(urls))               # not applicable is decided before the issuer search
    result = _fetch_staple(target, FetchOptions(urls=tuple(urls), method=method, hash_alg=hash_alg,
                                                http=http), ossl, _clock(now))
    if require_good:
        _require_good(result, target)
    return result.staple


def time_problems(staple: Staple, now: Now = None) -> List[life.Problem]:
    """What is wrong with STAPLE's times at NOW (future thisUpdate, expired, no nextUpdate,
    responder or certificate expired, responder certificate expiring first), with the
    5-minute clock skew allowance (``ocsptools.life.problems`` of its effective life)."""
    return life.problems(staple.life, _instant(now))


def freshness(staple: Optional[Staple], certificate: Certificate, now: Now = None, *,
              renew_at: float = 50.0, min_validity: Optional[timedelta] = None) -> policy.Decision:
    """Is STAPLE (None: none installed) due for renewal for CERTIFICATE at NOW?

    The rule ``ocsp-renew-dir`` uses: renew when there is no usable staple for
    this certificate, when it is not good, when RENEW_AT percent of its
    lifetime has elapsed or less than MIN_VALIDITY is left (never later than
    the responder's or the certificate's notAfter).  Returns a ``Decision``
    whose ``action`` is ``fresh``, ``renew``, ``cert-expired`` or
    ``not-applicable`` and whose ``renew_at`` says when a fresh one falls due."""
    facts = None if staple is None else policy.StapleFacts.of(staple)
    return policy.renewal_decision(policy.CertFacts.of(certificate), facts, _instant(now),
                                   policy.RenewOptions(renew_at=renew_at, min_validity=min_validity),
                                   applicable=bool(certificate.ocsp_urls))


def write_staple(path: PathLike, staple: Union[Staple, bytes], *, format: str = "der") -> None:
    """Write a staple atomically and durably (temp file in the same directory, fsync,
    rename, fsync of the directory; mode and owner of a replaced file kept).

    This writes unconditionally; ``install_staple`` refuses an older response."""
    if format not in FORMATS:
        raise UsageError(f"format must be one of {', '.join(FORMATS)}")
    der = staple.der if isinstance(staple, Staple) else bytes(staple)
    store.atomic_write(os.fspath(path), encode_staple(der, format))


def install_staple(path: PathLike, staple: Staple, target: Target, *, now: Now = None,
                   force: bool = False, format: str = "der", openssl: str = "openssl") -> bool:
    """Install STAPLE at PATH unless the staple there is a valid one for TARGET that is as
    recent or newer.  Returns whether the file changed; raises ``StaleResponse`` when
    STAPLE is older than the installed one (unless FORCE)."""
    outcome = _install(os.fspath(path), staple, target, OpenSSL(openssl), _instant(now),
                       fmt=format, force=force)
    return outcome.changed


@dataclass(frozen=True)
class RenewReport:
    """One line of ``ocsp-renew-dir``'s output: ACTION, CERT, STAPLE, DETAIL."""

    action: str             # renewed | failed | revoked | skipped | stale-staple | would-renew | fresh
    cert: str
    staple: str
    detail: str


@dataclass
class RenewResult:
    """What ``renew`` did: its report lines, the staples it wrote, counts, and warnings
    that are not failures of the run (e.g. an unreadable state cache)."""

    reports: List[RenewReport] = field(default_factory=list)
    changed: List[str] = field(default_factory=list)     # staple paths written
    failed: int = 0
    revoked: int = 0
    pending: int = 0        # with dry_run: how many would be renewed or pruned
    warnings: List[str] = field(default_factory=list)   # e.g. the state cache was unreadable

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.revoked == 0


def renew(paths: Sequence[PathLike], *, layout: str = "auto", recursive: bool = False,
          out_dir: Optional[PathLike] = None, state: Optional[PathLike] = None,
          renew_at: float = 50.0, min_validity: Optional[timedelta] = None, always: bool = False,
          dry_run: bool = False, jobs: int = 4, per_responder: int = 4, urls: Sequence[str] = (),
          timeout: float = 10.0, openssl: str = "openssl", verbose: bool = False,
          lock_timeout: float = 0.0) -> RenewResult:
    """Renew every staple under PATHS, as ``ocsp-renew-dir`` does (same discovery, same
    freshness rule, same state cache and lock, same atomic writes).

    Returns the reports instead of printing them.  Raises ``UsageError`` for
    bad arguments and ``LockBusy`` when another run holds the lock."""
    from .discovery import discover
    from .renewal import Driver, RunOptions
    from .renewal.held import Held
    from .statecache import default_path

    for url in urls:
        transport.check_url(url)
    out = None if out_dir is None else os.fspath(out_dir)
    cands = []
    for p in paths:
        cands.extend(discover(os.fspath(p), layout, recursive=recursive, out_dir=out))
    inputs = sorted(os.path.abspath(os.fspath(p)) for p in paths)
    state_path = os.fspath(state) if state is not None else default_path(inputs)
    http = transport.HttpOptions(timeout=timeout)
    opts = RunOptions(fetch=FetchOptions(urls=tuple(urls), http=http),
                      renew=policy.RenewOptions(renew_at=renew_at, min_validity=min_validity,
                                                always=always),
                      jobs=jobs, per_responder=per_responder, dry_run=dry_run, verbose=verbose)
    # A dry run takes no lock, so it must not write the shared state either.
    with Held.take([os.fspath(p) for p in paths], (c.cert for c in cands), out, state_path,
                   writes=not dry_run, lock_timeout=lock_timeout, what="another run") as held:
        driver = Driver(opts, OpenSSL(openssl, timeout=timeout), held.cache, _now)
        result = driver.run(cands)
        warnings = held.finish(driver.items, _now)
    if held.cache.warning:
        warnings.append(held.cache.warning)
    return RenewResult(reports=[RenewReport(r.action, r.cert, r.staple, r.detail) for r in result.reports],
                       changed=list(result.changed), failed=result.failed, revoked=result.revoked,
                       pending=result.pending, warnings=warnings)
