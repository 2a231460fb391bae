"""The YAML configuration of ocsp-renew-dir (``man 5 ocsptools.yaml``), ocspbot's keys included, and its settings.

Read with ``yaml.safe_load``'s constructors over a composed node tree, so every error names
the file, the key and the line (``yamlfile``).  Two vocabularies are understood in one file:

* ocsptools' own keys (``schema``: every command-line option has one; ``-`` and ``_`` are
  interchangeable), ``dirs``, ``certificates`` (per-certificate entries) and ``includes``.
  Relative paths are relative to the directory of the file that holds them.
* ocspbot 0.9's keys (``ocspbot``), with ocspbot's meaning: relative paths are relative to
  the current directory and staples land exactly where ocspbot wrote them.

``loader.load`` reads a file into a ``Config``; ``settings.merge`` makes a run's settings
from the defaults, the file and the command line.  What the commands use is named here
(``from ocsptools import config; config.load(...)``); the rest lives in its module.
"""

from __future__ import annotations

from .loader import Config, load
from .ocspbot import OCSPBOT_KEYS, log_name
from .schema import CERT_KEYS, OPTIONS

__all__ = ["CERT_KEYS", "Config", "OCSPBOT_KEYS", "OPTIONS", "load", "log_name"]
