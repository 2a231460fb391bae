"""Request paths: the GET form's base64 split off in linear time, and RFC 3986 normalisation.

``split_get_path`` finds where ``/<responder path>/<url-encoded base64>``
(RFC 6960 A.1) splits.  The base64 may carry ``/`` unencoded, so every ``/``
is a possible split and the leftmost whose suffix decodes to a well-formed
OCSPRequest wins.  Trying each one by decoding its whole suffix cost
quadratic time in the event loop (``GET /`` and 16,000 slashes: 0.3-0.7 s).
Instead:

* only the last ``MAX_GET_TAIL`` characters are looked at (RFC 5019 sends
  GET only for requests under 255 bytes; larger ones come by POST);
* the path is percent-decoded once, piece by piece between the slashes;
* a suffix can only be base64 if it lies in the trailing run of base64
  characters, and whether its length fits the padding (b64decode accepts
  ``XXXX``, ``XXXX=``, ``XX==``, ``XXX=``...) depends only on its length
  modulo 4: the candidates fall in at most three classes aligned among
  themselves, each class is decoded once, and each candidate's bytes are a
  slice of its class's;
* a candidate is parsed only when its first bytes are a SEQUENCE header whose
  length ends exactly at the end, and at most ``MAX_SPLIT_PARSES`` are.

``normalise`` and ``unsafe`` keep ``--allow`` prefixes from being escaped: a
responder path is compared (and forwarded) only in its normal form (RFC 3986
6.2.2: unreserved characters decoded, other escapes in upper case, dot
segments removed as 5.2.4 says), and a request path with a dot segment
(``..``, ``%2e%2e``, ``./..``, ``..;x``) or an encoded slash or backslash
(``%2f``, ``%5c``) is refused outright: upstream servers disagree on them.
"""

from __future__ import annotations

import base64
import re
import string
import urllib.parse
from typing import Dict, List, Optional, Tuple

from ..codec import der

#: How many characters at the end of a GET path may hold the base64 request.
MAX_GET_TAIL = 4096
#: How many candidate splits, at most, are parsed as OCSPRequests.
MAX_SPLIT_PARSES = 4
_B64 = string.ascii_letters + string.digits + "+/"
UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
#: A Host header naming a host and a port, nothing that could change a URL's path.
HOST = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::[0-9]{1,5})?")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")


def _fits(pads: int) -> Tuple[int, ...]:
    """The lengths modulo 4 of base64 text that b64decode(validate=True) accepts before PADS '='."""
    out = []
    for r in range(4):
        try:
            base64.b64decode("AAAA" + "A" * r + "=" * pads, validate=True)
            out.append(r)
        except ValueError:
            pass
    return tuple(out)


#: By number of trailing '=' (at most 2): ``XXXX``, ``XXX=``, ``XX==``, and this Python's ``XXXX=``.
_FITS = {pads: _fits(pads) for pads in range(3)}


def split_get_path(path: str) -> Optional[Tuple[str, bytes, der.ParsedRequest]]:
    """(responder path, request DER, parsed) from ``/<prefix>/<url-encoded base64>``, or None."""
    start = max(0, len(path) - MAX_GET_TAIL)
    pieces = path[start:].split("/")
    # raw index of each '/' in PATH, and where the decoded text after it starts in TEXT
    slashes: List[int] = []
    offsets: List[int] = []
    raw, pos = start + len(pieces[0]), 0
    decoded = []
    for piece in pieces[1:]:
        slashes.append(raw)
        offsets.append(pos)
        decoded.append(urllib.parse.unquote(piece))
        raw += 1 + len(piece)
        pos += len(decoded[-1]) + 1
    text = "/".join(decoded)
    total = len(text)
    body = text.rstrip("=")
    pads = total - len(body)
    if pads > 2:
        return None
    run = len(body.rstrip(_B64))            # where the trailing run of base64 characters starts
    fits = _FITS[pads]                      # lengths (modulo 4, without the pads) that decode
    candidates = [k for k, off in enumerate(offsets)
                  if off >= run and (len(body) - off) % 4 in fits and total - off >= 8]
    decodes: Dict[int, Tuple[int, bytes]] = {}     # class -> (first offset, its bytes)
    parses = 0
    for k in candidates:
        off = offsets[k]
        if off % 4 not in decodes:
            decodes[off % 4] = (off, _decode(text[off:]))
        first, data = decodes[off % 4]
        at = (off - first) // 4 * 3
        try:
            if at >= len(data) or data[at] != 0x30 or der.sequence_end(data, at) != len(data):
                continue
        except der.DerError:
            continue
        if parses == MAX_SPLIT_PARSES:
            return None
        parses += 1
        try:
            parsed = der.parse_request(data[at:])
        except der.DerError:
            continue
        return path[:slashes[k] + 1], data[at:], parsed
    return None


def _decode(text: str) -> bytes:
    """TEXT decoded as base64 (it fits by construction; empty if b64decode disagrees)."""
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        return b""


def _unescape(m: "re.Match[str]") -> str:
    ch = chr(int(m.group(1), 16))
    return ch if ch in UNRESERVED else "%" + m.group(1).upper()


def normalise(path: str) -> str:
    """PATH in RFC 3986 6.2.2 normal form: unreserved decoded, escapes upper-cased, no dot segments."""
    return remove_dot_segments(_ESCAPE.sub(_unescape, path))


def remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4, in linear time (an index into the input, a list for the output)."""
    out: List[str] = []
    i, n = 0, len(path)
    while i < n:
        if path.startswith("../", i):                                   # A
            i += 3
        elif path.startswith("./", i):
            i += 2
        elif path.startswith("/./", i):                                 # B
            i += 2
        elif i + 2 == n and path.startswith("/.", i):
            out.append("/")
            i = n
        elif path.startswith("/../", i):                                # C
            i += 3
            if out:
                out.pop()
        elif i + 3 == n and path.startswith("/..", i):
            if out:
                out.pop()
            out.append("/")
            i = n
        elif path.startswith(".", i) and (i + 1 == n or (i + 2 == n and path[i + 1] == ".")):
            i = n                                                       # D
        else:                                                           # E
            j = path.find("/", i + 1 if path[i] == "/" else i)
            j = n if j < 0 else j
            out.append(path[i:j])
            i = j
    return "".join(out)


def unsafe(path: str) -> Optional[str]:
    """Why a request PATH may not be forwarded (a dot segment, an encoded slash or backslash), or None."""
    low = path.lower()
    if "%2f" in low or "%5c" in low or "\\" in path:
        return "an encoded slash or a backslash"
    for segment in _ESCAPE.sub(_unescape, path).split("/"):
        if segment.split(";", 1)[0] in (".", ".."):
            return "a dot segment"
    return None
