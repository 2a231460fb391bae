"""Finding the certificates under a directory tree, per layout, and where their staples go.

Discovery only looks at names and directory structure (no file is read
here): it yields ``Candidate``s, each a certificate file, the places its
issuer may be, and its staple path.  Whether a candidate really holds a
leaf (and not a private key or a CA certificate) is decided when it is
loaded (``ocsptools.renewal``), where the answer is cached by file identity.

Layouts:

* ``certbot``: ``live/<name>/cert.pem``, issuer in ``chain.pem``;
* ``lego``: ``certificates/<name>.crt`` (``<name>.issuer.crt`` is the issuer,
  never a leaf);
* ``acme.sh``: ``<name>/<name>.cer`` (or ``<name>_ecc/<name>.cer``), issuer in ``ca.cer``;
* ``bundle``: any ``*.pem``, ``*.crt``, ``*.cer`` whose first certificate is a
  leaf; issuer from the rest of the bundle, ``<file>.issuer`` or ``chain.pem``;
  ``-r`` descends into subdirectories;
* ``auto``: the first of the above whose structure is present.

Staples go next to the certificate as ``<cert>.ocsp`` (HAProxy, lighttpd),
or to ``OUT_DIR/<name>.ocsp``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import BinaryIO, Iterable, List, Optional, Tuple

from .errors import UsageError

LAYOUTS = ("auto", "certbot", "lego", "acme.sh", "bundle")
BUNDLE_SUFFIXES = (".pem", ".crt", ".cer")
STAPLE_SUFFIX = ".ocsp"


@dataclass(frozen=True)
class Candidate:
    cert: str                               # the certificate file (leaf first, chain may follow)
    staple: str                             # where its staple lives
    name: str                               # certbot/lego/acme.sh name, or the file's stem
    issuer_files: Tuple[str, ...] = ()      # where else to look for the issuer, in order
    issuer: Optional[str] = None            # an explicit issuer file: it must be right
    explicit: bool = False                  # named one by one: not holding a leaf is an error
    layout: str = "bundle"
    urls: Tuple[str, ...] = ()              # per-certificate responder override
    renew_at: Optional[float] = None        # per-certificate thresholds (config)
    min_validity: Optional[timedelta] = None


def staple_path(cert: str, name: str, out_dir: Optional[str]) -> str:
    if out_dir:
        return os.path.join(out_dir, name + STAPLE_SUFFIX)
    return cert + STAPLE_SUFFIX


def _isdir(path: str) -> bool:
    return os.path.isdir(path)


def _listdir(path: str) -> List[str]:
    try:
        return sorted(os.listdir(path))
    except FileNotFoundError:
        raise UsageError(f"{path}: no such directory") from None
    except NotADirectoryError:
        raise UsageError(f"{path}: not a directory") from None
    except PermissionError:
        raise UsageError(f"{path}: permission denied") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot list: {exc.strerror}") from None


# -- layout detection --------------------------------------------------------

def _certbot_root(d: str) -> Optional[str]:
    """The directory holding the ``<name>/cert.pem`` entries, or d itself for one live/<name>."""
    if _isdir(os.path.join(d, "live")):
        return os.path.join(d, "live")
    if os.path.isfile(os.path.join(d, "cert.pem")) and os.path.isfile(os.path.join(d, "chain.pem")):
        return d
    for n in _listdir(d):
        sub = os.path.join(d, n)
        if os.path.isfile(os.path.join(sub, "cert.pem")) and os.path.isfile(os.path.join(sub, "chain.pem")):
            return d
    return None


def _lego_root(d: str) -> Optional[str]:
    if _isdir(os.path.join(d, "certificates")):
        return os.path.join(d, "certificates")
    if any(n.endswith(".issuer.crt") for n in _listdir(d)):
        return d
    return None


def _acme_dirs(d: str) -> List[str]:
    """acme.sh per-name directories under (or at) d."""
    def is_acme(sub: str) -> bool:
        base = os.path.basename(os.path.normpath(sub))
        stem = base[:-4] if base.endswith("_ecc") else base
        return os.path.isfile(os.path.join(sub, stem + ".cer")) and \
            os.path.isfile(os.path.join(sub, "ca.cer"))
    if is_acme(d):
        return [d]
    return [os.path.join(d, n) for n in _listdir(d) if _isdir(os.path.join(d, n))
            and is_acme(os.path.join(d, n))]


def detect_layout(d: str) -> str:
    if not os.path.isdir(d):
        return "bundle"
    if _certbot_root(d):
        return "certbot"
    if _lego_root(d):
        return "lego"
    if _acme_dirs(d):
        return "acme.sh"
    return "bundle"


# -- per layout --------------------------------------------------------------

def _certbot(d: str, out_dir: Optional[str]) -> List[Candidate]:
    root = _certbot_root(d)
    if root is None:
        raise UsageError(f"{d}: not a certbot tree (no live/<name>/cert.pem with chain.pem); "
                         f"try --layout auto")
    if os.path.isfile(os.path.join(root, "cert.pem")):
        names = [""]
    else:
        names = [n for n in _listdir(root) if os.path.isfile(os.path.join(root, n, "cert.pem"))]
    out = []
    for n in names:
        sub = os.path.join(root, n) if n else root
        name = n or os.path.basename(os.path.normpath(root))
        cert = os.path.join(sub, "cert.pem")
        out.append(Candidate(cert=cert, staple=staple_path(cert, name, out_dir), name=name,
                             issuer_files=(os.path.join(sub, "chain.pem"),
                                           os.path.join(sub, "fullchain.pem")),
                             layout="certbot"))
    return out


def _lego(d: str, out_dir: Optional[str]) -> List[Candidate]:
    root = _lego_root(d)
    if root is None:
        if os.path.isdir(d) and any(n.endswith(".crt") for n in _listdir(d)):
            root = d
        else:
            raise UsageError(f"{d}: not a lego tree (no certificates/<name>.crt); try --layout auto")
    out = []
    for n in _listdir(root):
        if not n.endswith(".crt") or n.endswith(".issuer.crt") or n.startswith("."):
            continue
        name = n[:-len(".crt")]
        cert = os.path.join(root, n)
        if not os.path.isfile(cert):
            continue
        out.append(Candidate(cert=cert, staple=staple_path(cert, name, out_dir), name=name,
                             issuer_files=(os.path.join(root, name + ".issuer.crt"),), layout="lego"))
    return out


def _acme(d: str, out_dir: Optional[str]) -> List[Candidate]:
    dirs = _acme_dirs(d)
    if not dirs:
        raise UsageError(f"{d}: not an acme.sh tree (no <name>/<name>.cer with ca.cer); "
                         f"try --layout auto")
    out = []
    for sub in dirs:
        base = os.path.basename(os.path.normpath(sub))
        stem = base[:-4] if base.endswith("_ecc") else base
        cert = os.path.join(sub, stem + ".cer")
        out.append(Candidate(cert=cert, staple=staple_path(cert, base, out_dir), name=base,
                             issuer_files=(os.path.join(sub, "ca.cer"),
                                           os.path.join(sub, "fullchain.cer")),
                             layout="acme.sh"))
    return out


def _bundle_candidate(path: str, out_dir: Optional[str], *, explicit: bool = False) -> Candidate:
    base = os.path.basename(path)
    stem, ext = os.path.splitext(base)
    name = stem if ext.lower() in BUNDLE_SUFFIXES else base
    return Candidate(cert=path, staple=staple_path(path, name, out_dir), name=name,
                     issuer_files=(path + ".issuer",
                                   os.path.join(os.path.dirname(path), "chain.pem")),
                     explicit=explicit, layout="bundle")


def _bundle(d: str, out_dir: Optional[str], recursive: bool) -> List[Candidate]:
    if os.path.isfile(d):
        return [_bundle_candidate(d, out_dir)]
    out = []
    if recursive:
        for dirpath, dirnames, filenames in os.walk(d):
            dirnames[:] = sorted(n for n in dirnames if not n.startswith("."))
            for n in sorted(filenames):
                if n.lower().endswith(BUNDLE_SUFFIXES) and not n.startswith("."):
                    out.append(_bundle_candidate(os.path.join(dirpath, n), out_dir))
        return out
    for n in _listdir(d):
        path = os.path.join(d, n)
        if n.lower().endswith(BUNDLE_SUFFIXES) and not n.startswith(".") and os.path.isfile(path):
            out.append(_bundle_candidate(path, out_dir))
    return out


def discover(d: str, layout: str = "auto", *, recursive: bool = False,
             out_dir: Optional[str] = None) -> List[Candidate]:
    """The candidates under directory (or file) D in LAYOUT."""
    if layout not in LAYOUTS:
        raise UsageError(f"--layout must be one of {', '.join(LAYOUTS)}")
    if not os.path.exists(d):
        raise UsageError(f"{d}: no such file or directory")
    if layout == "auto":
        layout = detect_layout(d)
    if layout == "certbot":
        return _certbot(d, out_dir)
    if layout == "lego":
        return _lego(d, out_dir)
    if layout == "acme.sh":
        return _acme(d, out_dir)
    return _bundle(d, out_dir, recursive)


def read_paths(stream: BinaryIO, *, nul: bool = False) -> List[str]:
    """Certificate paths from a pipe: one per line, or NUL-separated with ``-0``.

    Empty entries are skipped; with lines, a trailing CR is removed (files
    written on Windows) but other whitespace is kept (it may be part of a name)."""
    data = stream.read()
    if nul:
        parts = data.split(b"\0")
    else:
        parts = [p[:-1] if p.endswith(b"\r") else p for p in data.split(b"\n")]
        if any(b"\0" in p for p in parts):
            raise UsageError("standard input: a path contains a NUL byte; for NUL-separated "
                             "paths (find -print0) use -0")
    return [os.fsdecode(p) for p in parts if p]


def from_paths(paths: Iterable[str], out_dir: Optional[str] = None) -> List[Candidate]:
    """Candidates for paths named in a list (stdin): keys and CA files are ignored when loaded."""
    return [_bundle_candidate(p, out_dir) for p in paths if not p.endswith(STAPLE_SUFFIX)]


def with_overrides(c: Candidate, **changes) -> Candidate:
    return replace(c, **changes)
