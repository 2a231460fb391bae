"""Output formats of ocsp-check: Nagios plugin output, JSON Lines, Prometheus text, --print.

Pure: every function takes Results (``ocsptools.check``) and returns text.
Deciding happened before; nothing here changes a state.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from typing import Dict, Iterable, List, Optional, Sequence

from . import metrics, nagios
from .check.model import Result
from .life import parse_iso
from .staple import iso

PREFIX = "OCSP"
#: --print fields, in the order the help lists them.
FIELDS = ("state", "status", "this-update", "next-update", "produced-at", "remaining", "path")
MAX_NAMES = 3


# --------------------------------------------------------------------------
# Nagios / Icinga
# --------------------------------------------------------------------------

def status_line(state: int, summary: str, perf: Sequence[str] = ()) -> str:
    line = f"{PREFIX} {nagios.name(state)} - {nagios.text(summary)}"
    return line + (" | " + " ".join(perf) if perf else "")


def error_line(message: str) -> str:
    """What a failure of the whole run prints first on stdout: ``OCSP UNKNOWN - ...``."""
    return status_line(nagios.UNKNOWN, message)


def perfdata(results: Sequence[Result]) -> List[str]:
    """Seconds left before each staple stops verifying, thresholds in range syntax (``259200:``)."""
    items = []
    for label, r in zip(nagios.unique_labels(r.label for r in results), results):
        if r.not_applicable:
            continue
        items.append(nagios.perfdata(label, r.remaining_seconds, "s" if r.remaining_seconds is not None else "",
                                     warn=nagios.min_range(r.warning_seconds),
                                     crit=nagios.min_range(r.critical_seconds),
                                     minimum=0 if r.remaining_seconds is not None else None,
                                     maximum=r.lifetime_seconds))
    return items


def _unverified_note(r: Result) -> Optional[str]:
    if r.staple is None or r.verified:
        return None
    return "signature and CertID NOT verified: " + (r.unverified_reason or "no certificate")


def _headline(r: Result) -> str:
    head = r.messages[0] if r.messages else nagios.name(r.state)
    if r.staple is not None and not r.verified:
        head += " (signature and CertID not verified)"
    return f"{r.label}: {head}"


def details(r: Result) -> List[str]:
    """-v: responder, serial, signer validity, where the certificate and issuer came from."""
    out = []
    s = r.staple
    if r.protocol:
        out.append(f"protocol {r.protocol}")
    if r.certificate is not None:
        c = r.certificate
        out.append(f"certificate {c.subject}, serial {c.serial_hex}"
                   + (f", from {r.certificate_source}" if r.certificate_source else "")
                   + (", Must-Staple" if c.must_staple else "")
                   + ("" if c.ocsp_urls else ", no OCSP URL"))
    if r.issuer_source:
        out.append(f"issuer from {r.issuer_source}")
    if s is not None:
        out.append(f"responder id {s.info.responder_id or 'none'}, serial {format(s.serial, 'X')}, "
                   f"produced at {iso(s.produced_at)}, this update {iso(s.this_update)}, "
                   f"next update {iso(s.next_update)}")
        signer = s.info.signer()
        if signer is not None:
            out.append(f"signer {signer.subject}, valid {iso(signer.not_before)} to "
                       f"{iso(signer.not_after)}")
        elif s.signer_not_after is not None:
            out.append(f"signed by the issuer, valid until {iso(s.signer_not_after)}")
        else:
            out.append("signer certificate not embedded")
    if r.warning_seconds is not None or r.critical_seconds is not None:
        out.append(f"thresholds: warning below {_secs(r.warning_seconds)}, "
                   f"critical below {_secs(r.critical_seconds)}")
    return out


def _secs(value: Optional[float]) -> str:
    return "none" if value is None else f"{nagios.whole_seconds(value)} s"


def _summary(results: Sequence[Result]) -> str:
    counts: Dict[int, List[str]] = {}
    for r in results:
        counts.setdefault(r.state, []).append(r.label)
    parts = []
    for state in (nagios.CRITICAL, nagios.WARNING, nagios.UNKNOWN, nagios.OK):
        labels = counts.get(state)
        if not labels:
            continue
        part = f"{len(labels)} {nagios.name(state)}"
        if state != nagios.OK:
            shown = labels[:MAX_NAMES]
            more = f", +{len(labels) - MAX_NAMES} more" if len(labels) > MAX_NAMES else ""
            part += " (" + ", ".join(shown) + more + ")"
        parts.append(part)
    return f"{len(results)} staples: " + ", ".join(parts)


def nagios_output(results: Sequence[Result], *, verbose: int = 0) -> str:
    """First line ``OCSP <STATE> - <summary> | <perfdata>``, then the long output."""
    state = nagios.worst(r.state for r in results)
    perf = perfdata(results)
    lines: List[str]
    if len(results) == 1:
        r = results[0]
        lines = [status_line(state, _headline(r), perf)]
        lines += [nagios.text(m) for m in r.messages[1:]]
        note = _unverified_note(r)
        if note:
            lines.append(nagios.text(note))
        if verbose:
            lines += [nagios.text(d) for d in details(r)]
    else:
        lines = [status_line(state, _summary(results), perf)]
        for r in results:
            text = f"{nagios.name(r.state)}: {r.label}: " + "; ".join(r.messages)
            note = _unverified_note(r)
            if note:
                text += f"; {note}"
            lines.append(nagios.text(text))
            if verbose:
                lines += ["    " + nagios.text(d) for d in details(r)]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------
# JSON Lines
# --------------------------------------------------------------------------

def as_dict(r: Result) -> dict:
    s = r.staple
    single = s.single if s is not None else None
    obj = {
        "path": r.label,
        "source": r.source,
        "state": nagios.name(r.state),
        "state_code": r.state,
        "response_status": r.response_status,
        "cert_status": s.cert_status if s is not None else None,
        "this_update": iso(s.this_update) if s is not None else None,
        "next_update": iso(s.next_update) if s is not None else None,
        "produced_at": iso(s.produced_at) if s is not None else None,
        "valid_until": iso(r.valid_until),
        "renewal_due": iso(r.renewal_due),
        "remaining_seconds": r.remaining_seconds,
        "lifetime_seconds": r.lifetime_seconds,
        "warning_seconds": nagios.whole_seconds(r.warning_seconds),
        "critical_seconds": nagios.whole_seconds(r.critical_seconds),
        "serial": format(s.serial, "X") if s is not None else None,
        "verified": bool(r.verified),
        "signer_not_after": iso(s.signer_not_after) if s is not None else None,
        "responder_id": s.info.responder_id if s is not None else None,
        "revocation_time": iso(single.revocation_time) if single is not None else None,
        "revocation_reason": single.revocation_reason if single is not None else None,
        "certificate": r.certificate_source,
        "certificate_subject": r.certificate.subject if r.certificate is not None else None,
        "must_staple": r.certificate.must_staple if r.certificate is not None else None,
        "issuer": r.issuer_source,
        "not_applicable": r.not_applicable,
        "renewal": asdict(r.renewal) if r.renewal is not None else None,
        "messages": r.messages + ([_unverified_note(r)] if _unverified_note(r) else []),
    }
    if r.source == "live":
        obj.update(host=r.host, port=r.port, protocol=r.protocol)
    return obj


def json_lines(results: Sequence[Result]) -> str:
    return "".join(json.dumps(as_dict(r), sort_keys=False) + "\n" for r in results)


# --------------------------------------------------------------------------
# Prometheus text exposition (node_exporter textfile collector), through ocsptools.metrics
# --------------------------------------------------------------------------

def _ts(dt: Optional[datetime]) -> Optional[int]:
    return None if dt is None else int(dt.timestamp())


METRICS = (
    ("ocsp_staple_state", "State of the staple check: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
     lambda r: r.state),
    ("ocsp_staple_verified", "1 if the signature and CertID were verified against the certificate.",
     lambda r: int(bool(r.verified))),
    ("ocsp_staple_this_update_timestamp_seconds", "thisUpdate of the staple, Unix time.",
     lambda r: _ts(r.staple.this_update) if r.staple else None),
    ("ocsp_staple_next_update_timestamp_seconds", "nextUpdate of the staple, Unix time.",
     lambda r: _ts(r.staple.next_update) if r.staple else None),
    ("ocsp_staple_produced_at_timestamp_seconds", "producedAt of the staple, Unix time.",
     lambda r: _ts(r.staple.produced_at) if r.staple else None),
    ("ocsp_staple_valid_until_timestamp_seconds",
     "When the staple stops verifying (the earliest of nextUpdate, the signer's and the "
     "certificate's notAfter), Unix time.",
     lambda r: _ts(r.valid_until)),
    ("ocsp_staple_remaining_seconds",
     "Seconds left before the staple stops verifying (negative once it has).",
     lambda r: r.remaining_seconds),
    ("ocsp_staple_lifetime_seconds", "Length of the staple's effective window (from thisUpdate), "
     "seconds.", lambda r: r.lifetime_seconds),
    ("ocsp_staple_renewal_failing_seconds",
     "With --renew-state: how long ocsp-renew-dir has failed to renew the staple (0: it has not).",
     lambda r: _failing(r)),
    ("ocsp_staple_responder_revoked",
     "With --renew-state: 1 when the responder's last answer to ocsp-renew-dir said revoked.",
     lambda r: None if r.renewal is None else int(r.renewal.status == "revoked")),
    ("ocsp_staple_signer_not_after_timestamp_seconds",
     "Expiry of the certificate that signed the staple, Unix time.",
     lambda r: _ts(r.staple.signer_not_after) if r.staple else None),
)
CERT_STATUSES = ("good", "revoked", "unknown")


def _failing(r: Result) -> Optional[int]:
    if r.renewal is None:
        return None
    since = parse_iso(r.renewal.failing_since)
    return 0 if since is None else max(0, int((r.now - since).total_seconds()))


def prometheus(results: Sequence[Result], now: datetime) -> str:
    """Text exposition format with HELP/TYPE lines (``metrics.exposition``); a value that does
    not exist is left out, and so is a family without any."""
    # one series per staple: a path given twice must not make duplicate series (node_exporter
    # rejects the whole file), so repeated paths get #2, #3 ... as in the perfdata
    paths = nagios.unique_labels((r.label for r in results), str)
    families = []
    for name, help_text, get in METRICS:
        family = metrics.gauge(name, help_text, ("path",))
        for path, r in zip(paths, results):
            family.add(get(r), path)
        if family.samples:
            families.append(family)
    status = metrics.gauge("ocsp_staple_cert_status",
                           "Certificate status the staple gives (1 for the status it says).",
                           ("path", "status"))
    for path, r in zip(paths, results):
        said = r.staple.cert_status if r.staple is not None else None
        for cert_status in CERT_STATUSES:
            status.add(int(said == cert_status), path, cert_status)
    families.append(status)
    families.append(metrics.gauge("ocsp_check_timestamp_seconds", "When ocsp-check ran, Unix time.")
                    .add(int(now.timestamp())))
    return metrics.exposition(families).decode("utf-8")


# --------------------------------------------------------------------------
# --print FIELD[,FIELD...]
# --------------------------------------------------------------------------

def field_value(r: Result, name: str) -> str:
    s = r.staple
    if name == "state":
        return nagios.name(r.state)
    if name == "path":
        return r.label
    if name == "status":
        if s is not None:
            return s.cert_status
        return r.response_status or ""
    if name == "remaining":
        return "" if r.remaining_seconds is None else str(r.remaining_seconds)
    if s is None:
        return ""
    value = {"this-update": s.this_update, "next-update": s.next_update,
             "produced-at": s.produced_at}[name]
    return iso(value) or ""


def parse_fields(text: str) -> List[str]:
    """``state,remaining`` -> [state, remaining]; ValueError names an unknown field."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ValueError("--print needs a field name")
    for n in names:
        if n not in FIELDS:
            raise ValueError(f"unknown --print field {n!r} (choose from {', '.join(FIELDS)})")
    return names


def print_fields(results: Iterable[Result], names: Sequence[str]) -> str:
    """One line per staple; several fields are separated by tabs."""
    return "".join("\t".join(field_value(r, n).replace("\t", " ").replace("\n", " ")
                             for n in names) + "\n" for r in results)
