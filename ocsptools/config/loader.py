"""Loading a configuration file of ocsp-renew-dir (``man 5 ocsptools.yaml``): both vocabularies, includes, trust.

``load`` reads the file (``yamlfile.Document``), sorts each top-level key into the native
schema (``schema``) or ocspbot's (``ocspbot``), refuses an unknown key with a suggestion,
refuses a file that names a command to run but may be changed by someone else
(``_check_trusted``), collects the targets (``dirs``, ``certificates``, ``domains``,
``scan_keys``) and reads the ``.yml``/``.yaml`` files of the ``includes`` directories (targets
only).  The result is a ``Config``: the options as given in the file (merging them with the
defaults and the command line is ``settings``), the directories and the candidates.
"""

from __future__ import annotations

import difflib
import os
import stat
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from ..discovery import Candidate
from . import ocspbot, schema
from .schema import OPTIONS, norm
from .yamlfile import Document

#: the top-level keys that name targets, read after every option (ocsp_folder first)
TARGETS = ("dirs", "certificates", "domains", "scan_keys", "includes")


@dataclass
class Config:
    path: str
    options: Dict[str, Any] = field(default_factory=dict)
    dirs: List[str] = field(default_factory=list)
    candidates: List[Candidate] = field(default_factory=list)   # staple "" = default place
    output_log: Optional[str] = None
    error_log: Optional[str] = None
    warnings: List[str] = field(default_factory=list)
    ocspbot: bool = False


def suggest(key: str) -> str:
    """`` (did you mean 'KNOWN'?)`` for an unknown KEY close to a known one, else ``""``."""
    known = list(OPTIONS) + list(ocspbot.OCSPBOT_KEYS) + ["certificates", "includes"]
    close = difflib.get_close_matches(norm(key), known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def load(path: str) -> Config:
    """Read and check a configuration file and the directories it includes."""
    doc = Document(path)
    cfg = Config(path=path)
    ocsp_folder = ""
    for key, value in doc.data.items():
        nkey = norm(key)
        if nkey in OPTIONS and nkey != "dirs":
            cfg.options[nkey] = schema.checked(doc, (key,), OPTIONS[nkey], value)
        elif nkey in TARGETS:
            continue            # below, after ocsp_folder is known
        elif key in ocspbot.OPTION_KEYS:
            for name, got in ocspbot.translate(doc, key, value).items():
                if name == ocspbot.OCSP_FOLDER:
                    ocsp_folder = got
                elif name in ocspbot.LOGS:
                    setattr(cfg, name, got)
                else:
                    cfg.options[name] = got
            cfg.ocspbot = True
        else:
            raise doc.error((key,), f"unknown key{suggest(key)}")
    _check_trusted(doc, cfg)
    _targets(doc, doc.data, cfg, ocsp_folder)
    includes = doc.data.get("includes")
    if includes is not None:
        if isinstance(includes, str):
            includes = [includes]
        if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
            raise doc.error(("includes",), "expected a list of directories")
        for i, inc in enumerate(includes):
            _include(doc, i, inc, cfg, ocsp_folder)
    return cfg


def _include(doc: Document, i: int, inc: str, cfg: Config, ocsp_folder: str) -> None:
    """The targets of the YAML files in include directory INC (entry I of DOC's includes)."""
    # ocspbot listed a relative include directory from the current directory, like all
    # its paths; ocsptools' own files resolve it against the file's directory
    directory = doc.rel(inc, cwd=cfg.ocspbot)
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        cfg.warnings.append(f"{doc.label}:{doc.line(('includes', i))}: include "
                            f"directory {directory} does not exist; nothing included from it")
        return
    except OSError as exc:
        raise doc.error(("includes", i), f"{directory}: cannot list: {exc.strerror}") from None
    for name in names:
        full = os.path.join(directory, name)
        if name.endswith((".yml", ".yaml")) and not name.startswith(".") and os.path.isfile(full):
            sub = Document(full)
            for key in list(sub.data):
                if key in ocspbot.INCLUDE_IGNORED:
                    # ocspbot reads only domains and scan_keys from an included file
                    cfg.warnings.append(f"{sub.label}:{sub.lines.get((key,), '?')}: key "
                                        f"{key!r} is ignored in an included file (as "
                                        f"ocspbot does); set it in {doc.label}")
                    del sub.data[key]
                elif norm(key) not in ocspbot.TARGET_KEYS and key not in ("domains", "scan_keys"):
                    raise sub.error((key,), "only certificates, dirs, domains and scan_keys "
                                            "may appear in an included file")
            _targets(sub, sub.data, cfg, ocsp_folder)


def _check_trusted(doc: Document, cfg: Config) -> None:
    """A file that names a command to run (on_change, openssl) must be owned by this user or
    root and not writable by everyone (in the spirit of sshd's StrictModes; group-writable is
    allowed for umask 002 with user-private groups): anyone else who may change it could run
    commands as this user (root, from cron or systemd)."""
    runs = [k for k in ("on_change", "openssl") if k in cfg.options]
    if not runs:
        return
    try:
        st = os.stat(doc.path)
    except OSError:
        return              # a pipe that is gone, say: nobody can change it any more
    if not stat.S_ISREG(st.st_mode):
        return              # --config <(...): written by the caller itself
    who = ""
    if st.st_uid not in (0, os.geteuid()):
        who = f"owned by uid {st.st_uid}"
    elif st.st_mode & 0o002:
        who = f"writable by everyone (mode {st.st_mode & 0o777:04o})"
    if who:
        raise doc.error((next(k for k in doc.data if norm(k) in runs or
                              (k == "openssl_executable" and "openssl" in runs)),),
                        f"names a command to run, but the file is {who}: anyone who can change "
                        f"it could run commands as this user; chmod o-w (and chown) it")


def _targets(doc: Document, data: dict, cfg: Config, ocsp_folder: str) -> None:
    names = {c.name for c in cfg.candidates if c.layout == "ocspbot"}
    for key, value in data.items():
        nkey = norm(key)
        if nkey == "dirs":
            cfg.dirs.extend(schema.checked(doc, (key,), "paths", value))
        elif nkey == "certificates":
            if not isinstance(value, list):
                raise doc.error((key,), "expected a list of entries, each with at least 'cert'")
            for i, entry in enumerate(value):
                cfg.candidates.append(schema.certificate(doc, (key, i), entry))
        elif key == "domains":
            cfg.ocspbot = True
            if not isinstance(value, dict):
                raise doc.error((key,), "expected a mapping of domain names to cert/chain/rootchain/ocsp")
            for name, entry in value.items():
                if name in names:
                    raise doc.error((key, name), "domain identifier appears more than once")
                names.add(name)
                cfg.candidates.append(ocspbot.domain(doc, (key, name), name, entry, ocsp_folder))
        elif key == "scan_keys":
            cfg.ocspbot = True
            if not isinstance(value, list):
                raise doc.error((key,), "expected a list of folder/mask entries")
            for i, entry in enumerate(value):
                for cand in ocspbot.scan(doc, (key, i), entry, ocsp_folder):
                    if cand.name in names:
                        raise doc.error((key, i), f"domain identifier {cand.name!r} appears more "
                                                  f"than once")
                    names.add(cand.name)
                    cfg.candidates.append(cand)
