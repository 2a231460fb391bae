"""ocsp-check's values: its options (``CheckOptions``, default thresholds), the verdict on a staple (``Result``).

Values only: nothing here does I/O or reads the clock (a Result carries the ``now`` it was
judged at).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Iterable, List, Optional, Tuple

from .. import life, nagios, renewstatus, transport
from ..durations import Threshold, parse_threshold
from ..errors import OcspToolsError
from ..staple import CLOCK_SKEW, Certificate, Staple

#: Defaults for staples that live 1 to 10 days: a share of the lifetime, so that a 1-day staple
#: is not WARNING all its life (as a fixed 3d would make it) and a 10-day one still warns days
#: ahead.  A renewer that refreshes at half-life keeps every staple above 50%.
DEFAULT_WARNING = "25%"
DEFAULT_CRITICAL = "10%"

#: One finding about a staple: a Nagios state and one message.
Finding = Tuple[int, str]


class CheckTimeout(OcspToolsError):
    """The whole run overstayed -t/--timeout (a hung stdin, a wedged child)."""


@dataclass(frozen=True)
class CheckOptions:
    warning: Threshold = parse_threshold(DEFAULT_WARNING)
    critical: Threshold = parse_threshold(DEFAULT_CRITICAL)
    require_staple: bool = False
    issuer_file: Optional[str] = None
    ca_dirs: Tuple[str, ...] = ()
    use_aia: bool = False
    http: transport.HttpOptions = transport.HttpOptions()
    skew: timedelta = CLOCK_SKEW
    renew_state: Optional[str] = None        # ocsp-renew-dir's status file (--renew-state)
    renew_failing: timedelta = timedelta(hours=6)


@dataclass
class Result:
    """The verdict on one staple (a file, stdin, or what a live server sent)."""

    label: str                               # the path as given, "standard input", or host:port
    source: str                              # file | stdin | live
    now: datetime
    findings: List[Finding] = field(default_factory=list)   # most severe first
    staple: Optional[Staple] = None
    verified: bool = False
    unverified_reason: Optional[str] = None  # why signature and CertID were not checked
    certificate: Optional[Certificate] = None
    certificate_source: Optional[str] = None  # the file, or "the server"
    issuer_source: Optional[str] = None
    warning_seconds: Optional[float] = None
    critical_seconds: Optional[float] = None
    not_applicable: bool = False
    response_status: Optional[str] = None
    host: Optional[str] = None
    port: Optional[int] = None
    protocol: Optional[str] = None
    renewal: Optional[renewstatus.StapleStatus] = None   # what ocsp-renew-dir recorded of it

    @property
    def state(self) -> int:
        return nagios.worst(s for s, _ in self.findings)

    @property
    def messages(self) -> List[str]:
        return [m for _, m in self.findings]

    @property
    def valid_until(self) -> Optional[datetime]:
        """When the staple stops verifying (``life.Life.end``)."""
        return self.staple.valid_until if self.staple is not None else None

    @property
    def renewal_due(self) -> Optional[datetime]:
        """When ``ocsp-renew-dir`` (default settings) renews a good staple."""
        s = self.staple
        if s is None or s.cert_status != "good" or s.valid_until is None:
            return None
        return life.renewal_due(s.life)[0]

    @property
    def remaining_seconds(self) -> Optional[int]:
        """Seconds before the staple stops verifying (negative once it has)."""
        end = self.valid_until
        return None if end is None else int((end - self.now).total_seconds() // 1)

    @property
    def lifetime_seconds(self) -> Optional[int]:
        """The length of its effective window [thisUpdate, valid_until]."""
        span = self.staple.life.span if self.staple is not None else None
        return None if span is None else int(span.total_seconds())

    def add(self, state: int, message: str) -> None:
        self.findings.append((state, message))
        self.findings[:] = nagios.by_severity(self.findings)

    def add_all(self, findings: Iterable[Finding]) -> None:
        for state, message in findings:
            self.add(state, message)


