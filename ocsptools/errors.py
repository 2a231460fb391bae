"""The one exception tree of ocsptools.

Every failure a user can meet is one of these classes.  Each carries a
message that is already one clear line, naming the file (or URL) involved
and, where there is one, what to do about it.  Commands never print
tracebacks: ``ocsptools.cli._common.run`` catches these and maps them to the
command's documented exit status through one table per command (see
``ocsptools.cli``); nothing else decides exit codes.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple


class OcspToolsError(Exception):
    """Base class of every error ocsptools raises on purpose."""

    def __init__(self, message: str, *, path: Optional[str] = None) -> None:
        self.path = path
        super().__init__(message)

    @property
    def message(self) -> str:
        return str(self)


# --- usage and input (the caller's side) ----------------------------------

class UsageError(OcspToolsError):
    """Bad command-line arguments or option values."""


class InputError(OcspToolsError):
    """An input file is missing, unreadable or not what it should be."""


class CertificateError(InputError):
    """A file that should hold a certificate does not (or not a usable one)."""


class DamagedPem(CertificateError):
    """A CERTIFICATE block of a PEM file is damaged: its base64 is invalid, or what it decodes to
    is not a certificate.  BLOCK (1-based, of BLOCKS) and LINE (its BEGIN line) say where."""

    def __init__(self, message: str, *, path: Optional[str] = None, block: int = 0,
                 blocks: int = 0, line: int = 0) -> None:
        super().__init__(message, path=path)
        self.block, self.blocks, self.line = block, blocks, line


class IssuerNotFound(InputError):
    """No certificate that really issued the leaf could be found."""


class ConfigError(InputError):
    """A configuration file is unreadable or invalid (names file, key, line)."""


class LockBusy(OcspToolsError):
    """Another run holds the lock."""


class NotApplicable(OcspToolsError):
    """The certificate has no OCSP responder URL: stapling does not apply."""


# --- the environment ------------------------------------------------------

class OpensslError(OcspToolsError):
    """openssl is missing, crashed, timed out or printed something unparsable."""


class StoreError(OcspToolsError):
    """Writing a staple (or its backup) failed; an old file is untouched."""


# --- the responder's side -------------------------------------------------

class FetchError(OcspToolsError):
    """No usable answer could be obtained from the responder(s).

    One raised after trying several responders sums their failures up: CAUSES holds them (one
    per URL, in order), RETRY_AFTER and TRY_LATER what they said about trying again (unless
    given: the last Retry-After any of them sent; whether any answered tryLater)."""

    def __init__(self, message: str, *, path: Optional[str] = None,
                 retry_after: Optional[float] = None, try_later: bool = False,
                 causes: Sequence["FetchError"] = ()) -> None:
        super().__init__(message, path=path)
        self.causes: Tuple[FetchError, ...] = tuple(causes)
        if retry_after is None:
            retry_after = next((c.retry_after for c in reversed(self.causes)
                                if c.retry_after is not None), None)
        self.retry_after: Optional[float] = retry_after
        # a responder answered responseStatus tryLater
        self.try_later: bool = try_later or any(c.try_later for c in self.causes)


class TransportError(FetchError):
    """The HTTP exchange itself failed (``ocsptools.transport``); the subclasses say how."""


class ConnectFailed(TransportError):
    """The connection was refused or reset, or the host name did not resolve."""


class TransportTimeout(TransportError):
    """No (complete) answer within the time limit."""


class HttpStatusError(TransportError):
    """The server answered with an HTTP status other than 200 OK."""

    def __init__(self, message: str, status: int, *, retry_after: Optional[float] = None) -> None:
        super().__init__(message, retry_after=retry_after)
        self.status = status


class ResponseTooLarge(TransportError):
    """The answer exceeds the size limit."""


class ResponseError(FetchError):
    """An answer arrived but must not be used (bad status, signature, CertID, times)."""


class WrongCertificate(ResponseError):
    """A valid response, but for another certificate: it holds no SingleResponse for ours.
    SERIALS are the serial numbers it does cover."""

    def __init__(self, message: str, serials: Sequence[int] = (), *,
                 path: Optional[str] = None) -> None:
        super().__init__(message, path=path)
        self.serials = tuple(serials)


class ResponderStatusError(ResponseError):
    """The OCSP responseStatus was not successful (tryLater, unauthorized, ...)."""

    def __init__(self, message: str, status: str, *, path: Optional[str] = None) -> None:
        super().__init__(message, path=path, try_later=status == "tryLater")
        self.status = status


class StaleResponse(ResponseError):
    """The response is older than the staple already installed."""


class CertStatusError(ResponseError):
    """The response verified but does not say ``good``."""

    def __init__(self, message: str, cert_status: str, *, path: Optional[str] = None,
                 staple: object = None) -> None:
        super().__init__(message, path=path)
        self.cert_status = cert_status
        self.staple = staple


class Revoked(CertStatusError):
    """The certificate is revoked."""

    def __init__(self, message: str, *, path: Optional[str] = None,
                 staple: object = None) -> None:
        super().__init__(message, "revoked", path=path, staple=staple)


def without_label(message: str, label: str) -> str:
    """MESSAGE without its leading ``LABEL: `` (errors name the file they are about; where the
    output already names it, e.g. a report's column or a check's label, that would say it twice)."""
    prefix = label + ": "
    return message[len(prefix):] if message.startswith(prefix) else message
