"""Reading one YAML file so that every error names the file, the key and the line (as yamllint does).

``Document`` reads a file with ``yaml.safe_load``'s constructors over a composed node tree,
remembering the line of every key path, and refuses what is not a configuration file at all:
unreadable, larger than ``MAX_CONFIG_SIZE``, not valid YAML, nested too deeply, an alias bomb
(more than ``MAX_NODES`` values), a key that is not a plain word or appears twice, a NUL
character, a top level that is not a mapping.  ``Document.error`` makes the one-line
``ConfigError`` of a problem at a key path (``FILE:LINE: key 'a.b[0]': problem``); what the
keys mean is the schema's business (``schema``, ``ocspbot``).
"""

from __future__ import annotations

import os
from typing import Any, Dict, Optional, Tuple

import yaml

from ..errors import ConfigError

#: Where a value sits in a document: its keys (and list indexes) from the top.
KeyPath = Tuple[Any, ...]

#: A configuration is a few kB: anything larger (or endless, like /dev/zero) is refused.
MAX_CONFIG_SIZE = 1024 * 1024
#: Values in one file, counting every use of a YAML alias (an alias bomb expands exponentially).
MAX_NODES = 100_000


class Document:
    """One YAML file: plain values (``data``) plus the line of every key path (``lines``)."""

    def __init__(self, path: str, label: Optional[str] = None) -> None:
        self.path = path
        self.label = label or path
        self.lines: Dict[KeyPath, int] = {}
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

    def _build(self, node: Any, loader: yaml.SafeLoader, path: KeyPath) -> Any:
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
    def dotted(path: KeyPath) -> str:
        out = ""
        for part in path:
            out += f"[{part}]" if isinstance(part, int) else (("." if out else "") + str(part))
        return out

    def line(self, path: KeyPath) -> int:
        """The line of PATH's value, or of the nearest enclosing key (``includes: dir`` written
        as one string is the line of ``includes``)."""
        line = self.lines.get(path)
        while line is None and path:
            path = path[:-1]
            line = self.lines.get(path)
        return line or 1

    def error(self, path: KeyPath, problem: str) -> ConfigError:
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
