"""The YAML configuration of ocsp-renew-dir (``man 5 ocsptools.yaml``), ocspbot's keys included.

Read with ``yaml.safe_load``'s constructors over a composed node tree, so
every error names the file, the key and the line.  Two vocabularies are
understood in one file:

* ocsptools' own keys (every command-line option has one; ``-`` and ``_``
  are interchangeable), ``dirs``, ``certificates`` (per-certificate
  entries) and ``includes``.  Relative paths are relative to the directory
  of the file that holds them.
* ocspbot 0.9's keys (``ocsp_folder``, ``minimum_validity``,
  ``minimum_validity_percentage``, ``parallel_threads``, ``stop_on_error``,
  ``make_backups``, ``openssl_executable``, ``domains``, ``scan_keys``,
  ``includes``, ``output_log``, ``error_log``), with ocspbot's meaning:
  relative paths (a relative include directory too) are relative to the
  current directory, as ocspbot had them, and staples land exactly where
  ocspbot wrote them; ocspbot's option keys in an included file are ignored
  with a warning, as ocspbot ignored them.  Its bugs are not
  kept: includes are read from the include directory (not the current
  one), masks must match whole file names, log names use UTC.
"""

from __future__ import annotations

import math
import os
import re
import stat
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Dict, List, Optional, Tuple

import yaml

from .discovery import LAYOUTS, Candidate
from .durations import MAX_SECONDS, parse_duration
from .errors import ConfigError, UsageError
from .openssl import HASHES
from .transport import METHODS, check_url

Path = Tuple[Any, ...]

#: A configuration is a few kB: anything larger (or endless, like /dev/zero) is refused.
MAX_CONFIG_SIZE = 1024 * 1024
#: Values in one file, counting every use of a YAML alias (an alias bomb expands exponentially).
MAX_NODES = 100_000

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
OCSPBOT_KEYS = ("ocsp_folder", "minimum_validity", "minimum_validity_percentage",
                "parallel_threads", "make_backups", "openssl_executable", "domains", "scan_keys",
                "output_log", "error_log")
TARGET_KEYS = ("certificates", "domains", "scan_keys", "dirs")
#: ocspbot's option keys, which ocspbot silently ignores in an included file: a warning here
INCLUDE_IGNORED = tuple(k for k in OCSPBOT_KEYS if k not in TARGET_KEYS) + ("stop_on_error", "includes")
CERT_KEYS = ("cert", "issuer", "staple", "url", "renew_at", "min_validity", "name")


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


class _Doc:
    """One YAML file: plain values plus the line of every key path."""

    def __init__(self, path: str, label: Optional[str] = None) -> None:
        self.path = path
        self.label = label or path
        self.lines: Dict[Path, int] = {}
        self._nodes = 0
        try:
            with open(path, "rb") as fh:
                text = fh.read(MAX_CONFIG_SIZE + 1)
        except FileNotFoundError:
            raise ConfigError(f"{self.label}: no such configuration file", path=path) from None
        except OSError as exc:
            raise ConfigError(f"{self.label}: cannot read: {exc.strerror}", path=path) from None
        if len(text) > MAX_CONFIG_SIZE:
            raise ConfigError(f"{self.label}: larger than {MAX_CONFIG_SIZE} bytes; not a "
                              f"configuration file", path=path)
        try:
            loader = yaml.SafeLoader(text)
            try:
                node = loader.get_single_node()
                self.data = self._build(node, loader, ()) if node is not None else {}
            finally:
                loader.dispose()
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
            where = f":{mark.line + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ConfigError(f"{self.label}{where}: not valid YAML ({problem})", path=path) from None
        except RecursionError:
            raise ConfigError(f"{self.label}: nested too deeply to be a configuration file",
                              path=path) from None
        if self.data is None:
            self.data = {}
        if not isinstance(self.data, dict):
            raise ConfigError(f"{self.label}:{self.lines.get((), 1)}: the top level must be a "
                              f"mapping of keys to values", path=path)

    def _build(self, node: Any, loader: yaml.SafeLoader, path: Path) -> Any:
        self.lines.setdefault(path, node.start_mark.line + 1)
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise ConfigError(f"{self.label}:{node.start_mark.line + 1}: more than {MAX_NODES} "
                              f"values (YAML aliases expanding?); not a configuration file",
                              path=self.path)
        if isinstance(node, yaml.MappingNode):
            out: Dict[Any, Any] = {}
            for knode, vnode in node.value:
                key = loader.construct_object(knode, deep=True)
                if not isinstance(key, (str, int, float, bool)) or key is None:
                    raise ConfigError(f"{self.label}:{knode.start_mark.line + 1}: a key must be "
                                      f"a plain word", path=self.path)
                key = str(key)
                if key in out:
                    raise ConfigError(f"{self.label}:{knode.start_mark.line + 1}: key "
                                      f"{self.dotted(path + (key,))!r} appears twice", path=self.path)
                self.lines[path + (key,)] = knode.start_mark.line + 1
                out[key] = self._build(vnode, loader, path + (key,))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self._build(v, loader, path + (i,)) for i, v in enumerate(node.value)]
        value = loader.construct_object(node, deep=True)
        if isinstance(value, str) and "\0" in value:
            raise self.error(path, "contains a NUL character")
        return value

    @staticmethod
    def dotted(path: Path) -> str:
        out = ""
        for part in path:
            out += f"[{part}]" if isinstance(part, int) else (("." if out else "") + str(part))
        return out

    def line(self, path: Path) -> int:
        """The line of PATH's value, or of the nearest enclosing key (``includes: dir`` written
        as one string is the line of ``includes``)."""
        line = self.lines.get(path)
        while line is None and path:
            path = path[:-1]
            line = self.lines.get(path)
        return line or 1

    def error(self, path: Path, problem: str) -> ConfigError:
        line = self.lines.get(path)
        while line is None and path:
            path = path[:-1]
            line = self.lines.get(path)
        where = f":{line}" if line else ""
        key = f"key {self.dotted(path)!r}: " if path else ""
        return ConfigError(f"{self.label}{where}: {key}{problem}", path=self.path)

    def rel(self, value: str, *, cwd: bool = False) -> str:
        """Resolve a relative path against the file's directory (or, ocspbot-style, the cwd)."""
        value = os.path.expanduser(value)
        if os.path.isabs(value) or cwd:
            return value
        return os.path.join(os.path.dirname(os.path.abspath(self.path)), value)


# ---------------------------------------------------------------------------

def _norm(key: str) -> str:
    return key.replace("-", "_")


def _value(doc: _Doc, path: Path, kind: str, value: Any) -> Any:
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
        return _percent(doc, path, value)
    if kind == "duration":
        return _duration(doc, path, value)
    raise AssertionError(kind)


def _percent(doc: _Doc, path: Path, value: Any) -> float:
    text = str(value).strip()
    try:
        pct = float(text[:-1] if text.endswith("%") else text)
    except ValueError:
        raise doc.error(path, f"expected a percentage such as 50 or 50%, got {value!r}") from None
    if isinstance(value, bool) or not 0 <= pct <= 100:
        raise doc.error(path, f"expected a percentage between 0 and 100, got {value!r}")
    return pct


def _duration(doc: _Doc, path: Path, value: Any) -> timedelta:
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


def _suggest(key: str) -> str:
    import difflib
    known = list(OPTIONS) + list(OCSPBOT_KEYS) + ["certificates", "includes"]
    close = difflib.get_close_matches(_norm(key), known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# ---------------------------------------------------------------------------

def load(path: str) -> Config:
    """Read and check a configuration file and the directories it includes."""
    doc = _Doc(path)
    cfg = Config(path=path)
    ocsp_folder = ""
    for key, value in doc.data.items():
        nkey = _norm(key)
        if nkey in OPTIONS and nkey != "dirs":
            cfg.options[nkey] = _value(doc, (key,), OPTIONS[nkey], value)
        elif nkey in ("dirs", "certificates", "domains", "scan_keys", "includes"):
            continue            # below, after ocsp_folder is known
        elif key == "ocsp_folder":
            if not isinstance(value, str):
                raise doc.error((key,), f"expected a directory path, got {value!r}")
            ocsp_folder = os.path.expanduser(value)
            cfg.ocspbot = True
        elif key == "minimum_validity":
            if value not in (None, ""):
                cfg.options["min_validity"] = _duration(doc, (key,), value)
            cfg.ocspbot = True
        elif key == "minimum_validity_percentage":
            if value is not None:
                cfg.options["renew_at"] = 100.0 - _percent(doc, (key,), value)
            cfg.ocspbot = True
        elif key == "parallel_threads":
            cfg.options["jobs"] = _value(doc, (key,), "count", value)
            cfg.ocspbot = True
        elif key == "make_backups":
            cfg.options["backup"] = _value(doc, (key,), "bool", value)
            cfg.ocspbot = True
        elif key == "openssl_executable":
            cfg.options["openssl"] = _value(doc, (key,), "str", value)
            cfg.ocspbot = True
        elif key in ("output_log", "error_log"):
            setattr(cfg, key, _value(doc, (key,), "str", value))
            try:
                log_name(getattr(cfg, key), datetime(2000, 1, 1))
            except ConfigError as exc:
                raise doc.error((key,), str(exc)) from None
            cfg.ocspbot = True
        else:
            raise doc.error((key,), f"unknown key{_suggest(key)}")
    _check_trusted(doc, cfg)
    _targets(doc, doc.data, cfg, ocsp_folder)
    includes = doc.data.get("includes")
    if includes is not None:
        if isinstance(includes, str):
            includes = [includes]
        if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
            raise doc.error(("includes",), "expected a list of directories")
        for i, inc in enumerate(includes):
            # ocspbot listed a relative include directory from the current directory, like all
            # its paths; ocsptools' own files resolve it against the file's directory
            directory = doc.rel(inc, cwd=cfg.ocspbot)
            try:
                names = sorted(os.listdir(directory))
            except FileNotFoundError:
                cfg.warnings.append(f"{doc.label}:{doc.line(('includes', i))}: include "
                                    f"directory {directory} does not exist; nothing included from it")
                continue
            except OSError as exc:
                raise doc.error(("includes", i), f"{directory}: cannot list: {exc.strerror}") from None
            for name in names:
                full = os.path.join(directory, name)
                if name.endswith((".yml", ".yaml")) and not name.startswith(".") and os.path.isfile(full):
                    sub = _Doc(full)
                    for key in list(sub.data):
                        if key in INCLUDE_IGNORED:
                            # ocspbot reads only domains and scan_keys from an included file
                            cfg.warnings.append(f"{sub.label}:{sub.lines.get((key,), '?')}: key "
                                                f"{key!r} is ignored in an included file (as "
                                                f"ocspbot does); set it in {doc.label}")
                            del sub.data[key]
                        elif _norm(key) not in TARGET_KEYS and key not in ("domains", "scan_keys"):
                            raise sub.error((key,), "only certificates, dirs, domains and scan_keys "
                                                    "may appear in an included file")
                    _targets(sub, sub.data, cfg, ocsp_folder)
    return cfg


def _check_trusted(doc: _Doc, cfg: Config) -> None:
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
        raise doc.error((next(k for k in doc.data if _norm(k) in runs or
                              (k == "openssl_executable" and "openssl" in runs)),),
                        f"names a command to run, but the file is {who}: anyone who can change "
                        f"it could run commands as this user; chmod o-w (and chown) it")


def _targets(doc: _Doc, data: dict, cfg: Config, ocsp_folder: str) -> None:
    names = {c.name for c in cfg.candidates if c.layout == "ocspbot"}
    for key, value in data.items():
        nkey = _norm(key)
        if nkey == "dirs":
            cfg.dirs.extend(_value(doc, (key,), "paths", value))
        elif nkey == "certificates":
            if not isinstance(value, list):
                raise doc.error((key,), "expected a list of entries, each with at least 'cert'")
            for i, entry in enumerate(value):
                cfg.candidates.append(_certificate(doc, (key, i), entry))
        elif key == "domains":
            cfg.ocspbot = True
            if not isinstance(value, dict):
                raise doc.error((key,), "expected a mapping of domain names to cert/chain/rootchain/ocsp")
            for name, entry in value.items():
                if name in names:
                    raise doc.error((key, name), "domain identifier appears more than once")
                names.add(name)
                cfg.candidates.append(_domain(doc, (key, name), name, entry, ocsp_folder))
        elif key == "scan_keys":
            cfg.ocspbot = True
            if not isinstance(value, list):
                raise doc.error((key,), "expected a list of folder/mask entries")
            for i, entry in enumerate(value):
                for cand in _scan(doc, (key, i), entry, ocsp_folder):
                    if cand.name in names:
                        raise doc.error((key, i), f"domain identifier {cand.name!r} appears more "
                                                  f"than once")
                    names.add(cand.name)
                    cfg.candidates.append(cand)


def _certificate(doc: _Doc, path: Path, entry: Any) -> Candidate:
    if isinstance(entry, str):
        entry = {"cert": entry}
    if not isinstance(entry, dict):
        raise doc.error(path, "expected a mapping with at least 'cert'")
    for k in entry:
        if _norm(k) not in CERT_KEYS:
            raise doc.error(path + (k,), f"unknown key in a certificate entry (known: "
                                         f"{', '.join(CERT_KEYS)})")
    e = {_norm(k): (v, path + (k,)) for k, v in entry.items()}
    if "cert" not in e:
        raise doc.error(path, "a certificate entry needs 'cert'")
    cert = _value(doc, e["cert"][1], "path", e["cert"][0])
    issuer = _value(doc, e["issuer"][1], "path", e["issuer"][0]) if "issuer" in e else None
    staple = _value(doc, e["staple"][1], "path", e["staple"][0]) if "staple" in e else ""
    urls = tuple(_value(doc, e["url"][1], "urls", e["url"][0])) if "url" in e else ()
    renew_at = _percent(doc, e["renew_at"][1], e["renew_at"][0]) if "renew_at" in e else None
    minv = _duration(doc, e["min_validity"][1], e["min_validity"][0]) if "min_validity" in e else None
    stem = os.path.splitext(os.path.basename(cert))[0]
    name = _value(doc, e["name"][1], "str", e["name"][0]) if "name" in e else stem
    return Candidate(cert=cert, staple=staple, name=name,
                     issuer_files=() if issuer else (cert + ".issuer",
                                                     os.path.join(os.path.dirname(cert), "chain.pem")),
                     issuer=issuer, explicit=True, layout="config", urls=urls,
                     renew_at=renew_at, min_validity=minv)


def _domain(doc: _Doc, path: Path, name: Any, entry: Any, ocsp_folder: str) -> Candidate:
    if not isinstance(entry, dict):
        raise doc.error(path, "expected a mapping with cert, chain, rootchain and ocsp")
    for need in ("cert", "chain", "rootchain", "ocsp"):
        if need not in entry:
            raise doc.error(path, f"domain {name!r} has no {need!r} record")
    for k in entry:
        if k not in ("cert", "chain", "rootchain", "ocsp", "ocsp_responder_uri"):
            raise doc.error(path + (k,), "unknown key in an ocspbot domain (known: cert, chain, "
                                         "rootchain, ocsp, ocsp_responder_uri)")
    vals = {k: _value(doc, path + (k,), "str", entry[k]) for k in ("cert", "chain", "rootchain", "ocsp")}
    urls: Tuple[str, ...] = ()
    uri = entry.get("ocsp_responder_uri")
    if uri not in (None, "certificate"):
        urls = tuple(_value(doc, path + ("ocsp_responder_uri",), "urls", uri))
    return Candidate(cert=doc.rel(vals["cert"], cwd=True),
                     staple=os.path.join(ocsp_folder, os.path.expanduser(vals["ocsp"])),
                     name=str(name), issuer=doc.rel(vals["chain"], cwd=True), explicit=True,
                     layout="ocspbot", urls=urls)


def _scan(doc: _Doc, path: Path, entry: Any, ocsp_folder: str) -> List[Candidate]:
    if not isinstance(entry, dict):
        raise doc.error(path, "expected a mapping (folder, recursive, *_mask)")
    known = ("folder", "recursive", "cert_mask", "chain_mask", "rootchain_mask", "ocsp_mask")
    for k in entry:
        if k not in known:
            raise doc.error(path + (k,), f"unknown key in scan_keys (known: {', '.join(known)})")
    folder = os.path.expanduser(str(entry.get("folder", "") or ""))
    recursive = _value(doc, path + ("recursive",), "bool", entry.get("recursive", True))
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
            domain = m.group("domain")
            chain = os.path.join(dirpath, masks["chain_mask"].format(domain=domain))
            rootchain = os.path.join(dirpath, masks["rootchain_mask"].format(domain=domain))
            if not (os.path.exists(chain) and os.path.exists(rootchain)):
                continue
            rel = os.path.relpath(os.path.join(dirpath, masks["ocsp_mask"].format(domain=domain)), top)
            out.append(Candidate(cert=os.path.join(dirpath, filename),
                                 staple=os.path.join(ocsp_folder, rel), name=domain,
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
