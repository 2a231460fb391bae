"""Filling the cache ahead of clients (``ocsp-proxy warm``): each certificate's answer fetched,
verified and stored under each CertID hash asked for (sha1 by default: what Apache and nginx send)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, List, Sequence

from .. import transport
from ..certs import CERT_SUFFIXES
from ..codec import der
from ..errors import FetchError, InputError, NotApplicable
from ..fetch import FetchOptions, fetch_staple, load_target
from ..openssl import OpenSSL
from ..staple import Staple
from .cache import Cache
from .upstream import make_entry


@dataclass
class Warmed:
    """What a warm run did."""

    cached: int = 0
    revoked: int = 0
    failed: int = 0
    skipped: int = 0                 # not applicable (no OCSP URL)


#: Told of each answer cached: (certificate path, hash, the staple, stored: False when the cache
#: already held one as new).
OnCached = Callable[[str, str, Staple, bool], None]


def expand(targets: Sequence[str]) -> List[str]:
    """Certificate files: TARGETS, directories searched recursively (chains and keys left out)."""
    files: List[str] = []
    for target in targets:
        if os.path.isdir(target):
            for root, dirs, names in os.walk(target):
                dirs.sort()
                for name in sorted(names):
                    low = name.lower()
                    if low.endswith(CERT_SUFFIXES) and low not in ("chain.pem", "fullchain.pem") \
                            and "key" not in low:
                        files.append(os.path.join(root, name))
        else:
            files.append(target)
    return files


def warm(targets: Sequence[str], hashes: Sequence[str], cache: Cache, ossl: OpenSSL,
         http: transport.HttpOptions, refresh_pct: float, clock: Callable[[], datetime],
         log: logging.Logger, on_cached: OnCached) -> Warmed:
    """Fetch, verify and cache the answers for the certificates TARGETS name, under each of HASHES.
    A file named explicitly that is no certificate is a failure; one found in a directory is skipped."""
    done = Warmed()
    explicit = set(t for t in targets if not os.path.isdir(t))
    seen = set()
    for path in expand(targets):
        try:
            target = load_target(path, ossl, http=http)
        except InputError as exc:
            if path in explicit:
                log.error(str(exc))
                done.failed += 1
            else:
                log.debug(f"skipped {path}: {exc}")
            continue
        if target.leaf.der in seen:
            continue
        seen.add(target.leaf.der)
        if not target.leaf.ocsp_urls:
            done.skipped += 1
            log.debug(f"{path}: not applicable (no OCSP URL)")
            continue
        for alg in hashes:
            try:
                result = fetch_staple(target, FetchOptions(hash_alg=alg, http=http), ossl, clock)
                name_hash, key_hash = der.issuer_hashes(target.issuer.der, alg)
                cid = der.CertID(alg, name_hash, key_hash, target.leaf.serial)
                entry = make_entry(result.staple, cid, result.url, clock(), refresh_pct)
                stored = cache.put(entry)
            except (FetchError, NotApplicable) as exc:
                log.error(str(exc))
                done.failed += 1
                continue
            done.revoked += result.staple.cert_status == "revoked"
            done.cached += 1
            on_cached(path, alg, result.staple, stored)
    return done
