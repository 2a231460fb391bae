"""ocspbot 0.9's configuration keys, translated to ocsptools' meaning (its files work as they are).

ocspbot's keys (``ocsp_folder``, ``minimum_validity``, ``minimum_validity_percentage``,
``parallel_threads``, ``stop_on_error``, ``make_backups``, ``openssl_executable``,
``domains``, ``scan_keys``, ``includes``, ``output_log``, ``error_log``) keep ocspbot's
meaning: relative paths (a relative include directory too) are relative to the current
directory, as ocspbot had them, and staples land exactly where ocspbot wrote them; ocspbot's
option keys in an included file are ignored with a warning, as ocspbot ignored them
(``INCLUDE_IGNORED``).  Its bugs are not kept: includes are read from the include directory
(not the current one), masks must match whole file names, log names use UTC.

``translate`` turns an option key into native settings, ``domain`` and ``scan`` turn
``domains`` and ``scan_keys`` entries into candidates, ``log_name`` fills a log file name.
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from typing import Any, Dict, List, Tuple

from ..discovery import Candidate
from ..errors import ConfigError
from . import schema
from .yamlfile import Document, KeyPath

OCSPBOT_KEYS = ("ocsp_folder", "minimum_validity", "minimum_validity_percentage",
                "parallel_threads", "make_backups", "openssl_executable", "domains", "scan_keys",
                "output_log", "error_log")
TARGET_KEYS = ("certificates", "domains", "scan_keys", "dirs")
#: ocspbot's option keys, which ocspbot silently ignores in an included file: a warning here
INCLUDE_IGNORED = tuple(k for k in OCSPBOT_KEYS if k not in TARGET_KEYS) + ("stop_on_error", "includes")
#: ocspbot's keys that are options (not targets): ``translate`` reads them
OPTION_KEYS = tuple(k for k in OCSPBOT_KEYS if k not in TARGET_KEYS)
#: what ``translate`` returns besides native options: where ocspbot keeps staples, its logs
OCSP_FOLDER, LOGS = "ocsp_folder", ("output_log", "error_log")


def translate(doc: Document, key: str, value: Any) -> Dict[str, Any]:
    """ocspbot's option KEY (one of ``OPTION_KEYS``) as the native options it means, or as
    ``OCSP_FOLDER`` and ``LOGS`` entries (which have no native option)."""
    path: KeyPath = (key,)
    if key == "ocsp_folder":
        if not isinstance(value, str):
            raise doc.error(path, f"expected a directory path, got {value!r}")
        return {OCSP_FOLDER: os.path.expanduser(value)}
    if key == "minimum_validity":
        return {} if value in (None, "") else {"min_validity": schema.duration(doc, path, value)}
    if key == "minimum_validity_percentage":
        return {} if value is None else {"renew_at": 100.0 - schema.percent(doc, path, value)}
    if key == "parallel_threads":
        return {"jobs": schema.checked(doc, path, "count", value)}
    if key == "make_backups":
        return {"backup": schema.checked(doc, path, "bool", value)}
    if key == "openssl_executable":
        return {"openssl": schema.checked(doc, path, "str", value)}
    if key in LOGS:
        name = schema.checked(doc, path, "str", value)
        try:
            log_name(name, datetime(2000, 1, 1))
        except ConfigError as exc:
            raise doc.error(path, str(exc)) from None
        return {key: name}
    raise AssertionError(key)


def domain(doc: Document, path: KeyPath, name: Any, entry: Any, ocsp_folder: str) -> Candidate:
    """One entry of ``domains``: its cert, chain, rootchain and ocsp records."""
    if not isinstance(entry, dict):
        raise doc.error(path, "expected a mapping with cert, chain, rootchain and ocsp")
    for need in ("cert", "chain", "rootchain", "ocsp"):
        if need not in entry:
            raise doc.error(path, f"domain {name!r} has no {need!r} record")
    for k in entry:
        if k not in ("cert", "chain", "rootchain", "ocsp", "ocsp_responder_uri"):
            raise doc.error(path + (k,), "unknown key in an ocspbot domain (known: cert, chain, "
                                         "rootchain, ocsp, ocsp_responder_uri)")
    vals = {k: schema.checked(doc, path + (k,), "str", entry[k])
            for k in ("cert", "chain", "rootchain", "ocsp")}
    urls: Tuple[str, ...] = ()
    uri = entry.get("ocsp_responder_uri")
    if uri not in (None, "certificate"):
        urls = tuple(schema.checked(doc, path + ("ocsp_responder_uri",), "urls", uri))
    return Candidate(cert=doc.rel(vals["cert"], cwd=True),
                     staple=os.path.join(ocsp_folder, os.path.expanduser(vals["ocsp"])),
                     name=str(name), issuer=doc.rel(vals["chain"], cwd=True), explicit=True,
                     layout="ocspbot", urls=urls)


def scan(doc: Document, path: KeyPath, entry: Any, ocsp_folder: str) -> List[Candidate]:
    """One entry of ``scan_keys``: the certificates its masks find under its folder."""
    if not isinstance(entry, dict):
        raise doc.error(path, "expected a mapping (folder, recursive, *_mask)")
    known = ("folder", "recursive", "cert_mask", "chain_mask", "rootchain_mask", "ocsp_mask")
    for k in entry:
        if k not in known:
            raise doc.error(path + (k,), f"unknown key in scan_keys (known: {', '.join(known)})")
    folder = os.path.expanduser(str(entry.get("folder", "") or ""))
    recursive = schema.checked(doc, path + ("recursive",), "bool", entry.get("recursive", True))
    masks = {}
    for k, default in (("cert_mask", "{domain}.pem"), ("chain_mask", "{domain}-chain.pem"),
                       ("rootchain_mask", "{domain}-rootchain.pem"), ("ocsp_mask", "{domain}.ocsp-resp")):
        m = entry.get(k, default)
        if not isinstance(m, str) or "{domain}" not in m or "/" in m:
            raise doc.error(path + (k,), "a mask is a file name containing {domain}")
        masks[k] = m
    # the first {domain} captures the name, any further one must repeat it
    pattern = re.compile(re.escape(masks["cert_mask"]).replace(r"\{domain\}", "(?P<domain>.+?)", 1)
                         .replace(r"\{domain\}", "(?P=domain)"))
    top = folder or "."
    if not os.path.isdir(top):
        raise doc.error(path + ("folder",), f"{top}: no such directory")
    out: List[Candidate] = []
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        for filename in sorted(filenames):
            m = pattern.fullmatch(filename)
            if not m:
                continue
            name = m.group("domain")
            chain = os.path.join(dirpath, masks["chain_mask"].format(domain=name))
            rootchain = os.path.join(dirpath, masks["rootchain_mask"].format(domain=name))
            if not (os.path.exists(chain) and os.path.exists(rootchain)):
                continue
            rel = os.path.relpath(os.path.join(dirpath, masks["ocsp_mask"].format(domain=name)), top)
            out.append(Candidate(cert=os.path.join(dirpath, filename),
                                 staple=os.path.join(ocsp_folder, rel), name=name,
                                 issuer=chain, explicit=True, layout="ocspbot"))
        if not recursive:
            break
    return out


def log_name(template: str, now: datetime) -> str:
    """ocspbot's ``{year}{month}{day}{hour}{minute}{second}`` (UTC here, not local time)."""
    try:
        return template.format(year=f"{now.year:04}", month=f"{now.month:02}", day=f"{now.day:02}",
                               hour=f"{now.hour:02}", minute=f"{now.minute:02}",
                               second=f"{now.second:02}")
    except (KeyError, IndexError, ValueError, AttributeError, TypeError) as exc:
        raise ConfigError(f"log file name {template!r}: unknown placeholder {exc}") from None
