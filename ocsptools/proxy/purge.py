"""Purging cached answers by serial number (``ocsp-proxy purge``): in the cache itself, or through a
running proxy's ``/admin/purge`` (``--via``), which also drops its in-memory copies at once."""

from __future__ import annotations

from typing import Iterator, Sequence, Tuple

from .. import transport
from ..errors import FetchError
from .cache import Cache

#: How long ``--via`` waits for the running proxy.
VIA_TIMEOUT = 10


def in_cache(cache: Cache, serials: Sequence[str]) -> Iterator[Tuple[str, int]]:
    """Drop the entries of each serial in turn: (serial, how many were dropped)."""
    for serial in serials:
        yield serial, len(cache.purge_serial(serial))


def via(url: str, token: str, serials: Sequence[str]) -> str:
    """Ask the proxy at URL to purge SERIALS; its answer ("purged N"), or FetchError if refused."""
    base = url if url.endswith("/") else url + "/"
    query = "&".join(f"serial={s}" for s in serials)
    resp = transport.request("POST", f"{base}admin/purge?{query}", body=b"",
                             headers={"Authorization": f"Bearer {token}"},
                             opts=transport.HttpOptions(timeout=VIA_TIMEOUT, proxy=""))
    text = resp.body.decode("utf-8", "replace").strip()
    if resp.status != 200:
        raise FetchError(f"{url}: purge refused: HTTP {resp.status} {text}")
    return text
