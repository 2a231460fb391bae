"""Acquiring staples from files and stdin for ocsp-check, with their certificate (``--cert``, or by convention).

* ``check_file`` reads a staple file (or stdin), finds its certificate (``--cert``, or by
  convention ``X.ocsp`` beside ``X``) and issuer, and hands the bytes to ``verdict.check_der``
  (which verifies, or without a certificate only inspects, and says so);
* not applicable first: a certificate that names no OCSP responder is decided before anything
  else, its issuer is never looked for (no files, no AIA download), and a staple found for it
  is only inspected (``load_certificate``, ``conventional_certificate``);
* a problem with one staple (missing file, garbage, a certificate given as STAPLE) is a
  finding in its Result, never an exception; only an explicit ``--cert`` that cannot be used
  escapes (the command says UNKNOWN).

``certificate_candidates`` and ``holds_certificate`` are the pure rules of the conventions.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO, List, Optional

from .. import transport
from ..codec import der as der_codec
from ..errors import InputError, without_label
from ..fetch import Target, find_issuer, load_leaf
from ..nagios import CRITICAL
from ..openssl import OpenSSL
from ..staple import Certificate, decode_staple
from . import evaluate
from .model import CheckOptions, Result
from .verdict import check_der

#: Staple file names whose certificate can be found by convention (X.ocsp beside X).
STAPLE_SUFFIXES = (".ocsp", ".ocsp-resp")
CERT_CANDIDATE_SUFFIXES = ("", ".pem", ".crt")
MAX_STAPLE_SIZE = transport.MAX_RESPONSE_SIZE
#: The PEM labels openssl reads as certificates.
PEM_CERTIFICATE = re.compile(rb"-----BEGIN (?:X509 |TRUSTED )?CERTIFICATE-----")
#: Why a staple of a certificate without OCSP URL is only inspected.
NO_URL_UNVERIFIED = "the certificate names no OCSP responder, so its issuer was not looked for"


class MissingStaple(InputError):
    """The staple file does not exist (or is empty): no staple at all."""


def certificate_candidates(staple_path: str) -> List[str]:
    """Where the certificate of STAPLE_PATH lives by convention: ``X.ocsp`` -> ``X``, ``X.pem``,
    ``X.crt`` (HAProxy's ``site.pem.ocsp`` beside ``site.pem``; ``.ocsp-resp`` too)."""
    for suffix in STAPLE_SUFFIXES:
        if staple_path.lower().endswith(suffix) and len(staple_path) > len(suffix):
            base = staple_path[:-len(suffix)]
            if base.endswith(os.sep):
                return []
            return [base + s for s in CERT_CANDIDATE_SUFFIXES]
    return []


def holds_certificate(data: bytes, der: bytes) -> bool:
    """Is a would-be staple a certificate (PEM, or DER/base64 of an X.509 structure)?  Pure: a
    certificate passed as STAPLE gets its own message instead of openssl's "wrong tag"."""
    return bool(PEM_CERTIFICATE.search(data)) or der_codec.is_certificate(der)


def read_staple(path: str, stdin: Optional[BinaryIO] = None) -> bytes:
    """The bytes of a staple file (``-``: stdin), size-capped; InputError naming the problem
    (MissingStaple when there is no staple at all)."""
    if path == "-":
        stream = stdin if stdin is not None else sys.stdin.buffer
        data = stream.read(MAX_STAPLE_SIZE + 1)
        label = "standard input"
    else:
        label = path
        try:
            with open(path, "rb") as fh:
                data = fh.read(MAX_STAPLE_SIZE + 1)
        except FileNotFoundError:
            raise MissingStaple("no such file", path=path) from None
        except IsADirectoryError:
            raise InputError("is a directory, not a staple file", path=path) from None
        except PermissionError:
            raise InputError("permission denied (run the check as a user that can read the "
                             "staple, e.g. the server's)", path=path) from None
        except OSError as exc:
            raise InputError(f"cannot read: {exc.strerror or exc}", path=path) from None
    if len(data) > MAX_STAPLE_SIZE:
        raise InputError(f"larger than {MAX_STAPLE_SIZE} bytes: not an OCSP response", path=label)
    if not data.strip():
        raise MissingStaple("empty: no staple in it" + (" (HAProxy's placeholder?)" if path != "-" else ""),
                            path=label)
    return data


@dataclass(frozen=True)
class CertificateFor:
    """The certificate staples are checked against, and its issuer when one was looked for and
    found (``target``); otherwise why the staples are only inspected."""

    leaf: Certificate
    label: str
    target: Optional[Target] = None
    unverified_reason: Optional[str] = None


def load_certificate(cert_path: str, opts: CheckOptions, ossl: OpenSSL) -> CertificateFor:
    """``--cert FILE`` (or X beside X.ocsp): the leaf and, only when it names an OCSP responder,
    its issuer.  InputError if the certificate or the issuer cannot be had."""
    certs, label = load_leaf(cert_path, ossl)
    if not certs[0].ocsp_urls:                  # not applicable: no issuer search at all
        return CertificateFor(certs[0], label, unverified_reason=NO_URL_UNVERIFIED)
    target = find_issuer(certs, cert_path, label, ossl, issuer_file=opts.issuer_file,
                         ca_dirs=opts.ca_dirs, http=opts.http, use_aia=opts.use_aia)
    return CertificateFor(certs[0], label, target)


def conventional_certificate(path: str, result: Result, opts: CheckOptions,
                             ossl: OpenSSL) -> Optional[CertificateFor]:
    """X beside X.ocsp; None (and the reason in RESULT) when there is none or it is unusable.
    The leaf is kept even when its issuer cannot be found (Must-Staple and no-URL rules)."""
    candidates = certificate_candidates(path)
    found = next((c for c in candidates if os.path.isfile(c)), None)
    if found is None:
        where = f" (looked for {', '.join(candidates)})" if candidates else ""
        result.unverified_reason = f"no certificate found beside the staple{where}; give --cert FILE"
        return None
    try:
        certs, label = load_leaf(found, ossl)
    except InputError as exc:                   # the certificate itself: damaged, a key, a CA
        result.unverified_reason = str(exc)
        return None
    if not certs[0].ocsp_urls:
        return CertificateFor(certs[0], label, unverified_reason=NO_URL_UNVERIFIED)
    try:
        target = find_issuer(certs, found, label, ossl, issuer_file=opts.issuer_file,
                             ca_dirs=opts.ca_dirs, http=opts.http, use_aia=opts.use_aia)
    except InputError as exc:
        return CertificateFor(certs[0], label, unverified_reason=(
            f"{without_label(str(exc), found)} (certificate {found}); give -i FILE"))
    return CertificateFor(certs[0], label, target)


def check_file(path: str, opts: CheckOptions, ossl: OpenSSL, now: datetime, *,
               cert: Optional[CertificateFor] = None, stdin: Optional[BinaryIO] = None) -> Result:
    """Check one staple file (``-``: stdin) against CERT, or its certificate by convention."""
    result = Result(label="standard input" if path == "-" else path,
                    source="stdin" if path == "-" else "file", now=now)
    if cert is None:
        if path == "-":
            result.unverified_reason = "no --cert given for standard input"
        else:
            cert = conventional_certificate(path, result, opts, ossl)
    target = cert.target if cert is not None else None
    if cert is not None:
        result.certificate = cert.leaf
        result.certificate_source = cert.label
        result.unverified_reason = cert.unverified_reason
        if target is not None:
            result.issuer_source = target.issuer_source
    try:
        data = read_staple(path, stdin)
    except MissingStaple as exc:
        absence = evaluate.absent(str(exc), result.certificate,
                                  require_staple=opts.require_staple, live=False)
        result.not_applicable = absence.not_applicable
        result.add(*absence.finding)
        return result
    except InputError as exc:
        result.add(CRITICAL, str(exc))
        return result
    der = decode_staple(data)
    if holds_certificate(data, der):
        arg = "FILE" if path == "-" else path
        result.add(CRITICAL, f"holds a certificate, not an OCSP response: pass it with --cert {arg} "
                             f"and give its staple file as STAPLE")
        return result
    return check_der(result, der, target, opts, ossl)
