"""The native configuration schema: every option key and its kind of value, and per-certificate entries.

``OPTIONS`` maps each key (the command-line option, ``-`` and ``_`` interchangeable:
``norm``) to the kind of value it takes; ``checked`` checks a value of a kind and returns it
converted (paths resolved against the file's directory), or raises the document's one-line
error naming the key and its line.  ``certificate`` reads one entry of ``certificates``.
"""

from __future__ import annotations

import math
import os
import re
from datetime import timedelta
from typing import Any, Dict

from ..discovery import LAYOUTS, Candidate
from ..durations import MAX_SECONDS, parse_duration
from ..errors import UsageError
from ..openssl import HASHES
from ..transport import METHODS, check_url
from .yamlfile import Document, KeyPath

# native option -> kind
OPTIONS: Dict[str, str] = {
    "dirs": "paths", "layout": "layout", "recursive": "bool", "null": "bool",
    "url": "urls", "timeout": "positive", "method": "method", "hash": "hash", "proxy": "str",
    "out_dir": "path", "renew_at": "percent", "min_validity": "duration",
    "jobs": "count", "per_responder": "count", "keep_going": "bool", "stop_on_error": "bool",
    "always_renew": "bool", "verbose": "bool", "on_change": "str", "backup": "bool",
    "backup_keep": "count0", "prune": "bool", "lock_timeout": "nonneg", "state": "path",
    "openssl": "str", "no_aia": "bool", "dry_run": "bool", "question": "bool",
    "haproxy_socket": "strs", "watch": "bool", "sweep_interval": "duration",
    "log_format": "logformat", "syslog": "bool", "prometheus_textfile": "path",
}
CERT_KEYS = ("cert", "issuer", "staple", "url", "renew_at", "min_validity", "name")


def norm(key: str) -> str:
    """A native key in its one spelling (``renew-at`` -> ``renew_at``)."""
    return key.replace("-", "_")


def checked(doc: Document, path: KeyPath, kind: str, value: Any) -> Any:
    """VALUE (at PATH of DOC) checked as a KIND and converted; DOC's error if it is not one."""
    err = lambda msg: doc.error(path, msg)  # noqa: E731
    if kind == "bool":
        if not isinstance(value, bool):
            raise err(f"expected true or false, got {value!r}")
        return value
    if kind in ("str", "path"):
        if not isinstance(value, str) or not value:
            raise err(f"expected a non-empty string, got {value!r}")
        return doc.rel(value) if kind == "path" else value
    if kind == "paths":
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
            raise err("expected a path or a list of paths")
        return [v if v == "-" else doc.rel(v) for v in values]
    if kind == "urls":
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
            raise err("expected a URL or a list of URLs")
        for v in values:
            if not re.match(r"^https?://[^/\s]+", v):
                raise err(f"{v}: not an http:// or https:// URL")
            try:
                check_url(v)
            except UsageError as exc:
                raise err(str(exc)) from None
        return list(values)
    if kind == "strs":
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
            raise err("expected a string or a list of strings")
        return list(values)
    if kind == "logformat":
        if value not in ("text", "json"):
            raise err(f"expected text or json, got {value!r}")
        return value
    if kind == "layout":
        if value not in LAYOUTS:
            raise err(f"expected one of {', '.join(LAYOUTS)}, got {value!r}")
        return value
    if kind == "method":
        if value not in METHODS:
            raise err(f"expected one of {', '.join(METHODS)}, got {value!r}")
        return value
    if kind == "hash":
        if value not in HASHES[:2]:
            raise err(f"expected sha1 or sha256, got {value!r}")
        return value
    if kind in ("positive", "nonneg"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise err(f"expected a number of seconds, got {value!r}")
        if value < 0 or (kind == "positive" and value == 0):
            raise err(f"must be {'positive' if kind == 'positive' else 'zero or more'}, got {value!r}")
        return float(value)
    if kind in ("count", "count0"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise err(f"expected a whole number, got {value!r}")
        if value < (1 if kind == "count" else 0):
            raise err(f"must be at least {1 if kind == 'count' else 0}, got {value}")
        return value
    if kind == "percent":
        return percent(doc, path, value)
    if kind == "duration":
        return duration(doc, path, value)
    raise AssertionError(kind)


def percent(doc: Document, path: KeyPath, value: Any) -> float:
    text = str(value).strip()
    try:
        pct = float(text[:-1] if text.endswith("%") else text)
    except ValueError:
        raise doc.error(path, f"expected a percentage such as 50 or 50%, got {value!r}") from None
    if isinstance(value, bool) or not 0 <= pct <= 100:
        raise doc.error(path, f"expected a percentage between 0 and 100, got {value!r}")
    return pct


def duration(doc: Document, path: KeyPath, value: Any) -> timedelta:
    if isinstance(value, bool):
        raise doc.error(path, f"expected a duration such as 3d or '2 hours 5 minutes', got {value!r}")
    if isinstance(value, (int, float)):
        if not (math.isfinite(value) and 0 <= value <= MAX_SECONDS):
            raise doc.error(path, f"expected a duration between 0 and ten years, got {value!r}")
        return timedelta(seconds=value)
    try:
        return parse_duration(str(value))
    except ValueError as exc:
        raise doc.error(path, str(exc)) from None


def certificate(doc: Document, path: KeyPath, entry: Any) -> Candidate:
    """One entry of ``certificates`` (a path, or a mapping of ``CERT_KEYS``)."""
    if isinstance(entry, str):
        entry = {"cert": entry}
    if not isinstance(entry, dict):
        raise doc.error(path, "expected a mapping with at least 'cert'")
    for k in entry:
        if norm(k) not in CERT_KEYS:
            raise doc.error(path + (k,), f"unknown key in a certificate entry (known: "
                                         f"{', '.join(CERT_KEYS)})")
    e = {norm(k): (v, path + (k,)) for k, v in entry.items()}
    if "cert" not in e:
        raise doc.error(path, "a certificate entry needs 'cert'")
    cert = checked(doc, e["cert"][1], "path", e["cert"][0])
    issuer = checked(doc, e["issuer"][1], "path", e["issuer"][0]) if "issuer" in e else None
    staple = checked(doc, e["staple"][1], "path", e["staple"][0]) if "staple" in e else ""
    urls = tuple(checked(doc, e["url"][1], "urls", e["url"][0])) if "url" in e else ()
    renew_at = percent(doc, e["renew_at"][1], e["renew_at"][0]) if "renew_at" in e else None
    minv = duration(doc, e["min_validity"][1], e["min_validity"][0]) if "min_validity" in e else None
    stem = os.path.splitext(os.path.basename(cert))[0]
    name = checked(doc, e["name"][1], "str", e["name"][0]) if "name" in e else stem
    return Candidate(cert=cert, staple=staple, name=name,
                     issuer_files=() if issuer else (cert + ".issuer",
                                                     os.path.join(os.path.dirname(cert), "chain.pem")),
                     issuer=issuer, explicit=True, layout="config", urls=urls,
                     renew_at=renew_at, min_validity=minv)
