"""ocsp-renew-dir's settings (ocsptools/config/settings.py), pure: the defaults < the configuration file <
the command line, the options given beating per-certificate entries, and the combinations refused."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ocsptools.cli.renew_dir import build_parser
from ocsptools.config import Config, settings
from ocsptools.errors import UsageError


def merge(argv=(), **options) -> dict:
    cfg = Config(path="c.yaml", options=options) if options else None
    return settings.merge(build_parser().parse_args(list(argv)), cfg)


def test_defaults_when_nothing_is_given():
    s = merge()
    assert {k: v for k, v in s.items() if k != settings.GIVEN} == settings.DEFAULTS
    assert s[settings.GIVEN] == frozenset()


def test_every_default_is_an_option_of_the_command():
    namespace = vars(build_parser().parse_args([]))
    assert set(settings.DEFAULTS) <= set(namespace)
    assert all(namespace[k] is None for k in settings.DEFAULTS)   # "not given" stays visible


@pytest.mark.parametrize("argv, options, key, value", [
    ((), dict(jobs=8), "jobs", 8),
    (("-j", "2"), dict(jobs=8), "jobs", 2),
    ((), dict(hash="sha256"), "hash_alg", "sha256"),                 # CONFIG_NAMES
    (("--hash", "sha1"), dict(hash="sha256"), "hash_alg", "sha1"),
    ((), dict(renew_at=70.0), "renew_at", 70.0),
    (("--renew-at", "20"), dict(renew_at=70.0), "renew_at", 20.0),
    (("-u", "http://127.0.0.1:9/"), dict(url=["http://127.0.0.1:8/"]), "url", ["http://127.0.0.1:9/"]),
    ((), dict(sweep_interval=timedelta(minutes=5)), "sweep_interval", timedelta(minutes=5)),
    # -k/-S: the command line's word wins, then the file's keep_going over its stop_on_error
    ((), dict(stop_on_error=True), "stop_on_error", True),
    (("-k",), dict(stop_on_error=True), "stop_on_error", False),
    ((), dict(keep_going=True, stop_on_error=True), "stop_on_error", False),
    (("-S",), dict(keep_going=True), "stop_on_error", True),
    # --backup-keep implies --backup
    (("--backup-keep", "3"), {}, "backup", True),
    ((), dict(backup_keep=0), "backup", True),
])
def test_precedence(argv, options, key, value):
    assert merge(argv, **options)[key] == value


def test_the_options_given_are_recorded():
    s = merge(["-j", "2", "--renew-at", "20", "-u", "http://127.0.0.1:9/"], jobs=8, prune=True)
    assert s[settings.GIVEN] == frozenset({"jobs", "renew_at", "url"})


@pytest.mark.parametrize("argv, options, message", [
    (("-k", "-S"), {}, "-k/--keep-going and -S/--stop-on-error contradict each other"),
    (("-n", "-q"), {}, "-n/--dry-run and -q/--question cannot be combined"),
    (("-n",), dict(question=True), "-n/--dry-run and -q/--question cannot be combined"),
    (("--watch", "-n"), {}, "--watch cannot be combined with -n/--dry-run or -q/--question"),
    (("-q",), dict(watch=True), "--watch cannot be combined with -n/--dry-run or -q/--question"),
    (("--watch", "--sweep-interval", "0.5s"), {}, "--sweep-interval must be at least 1s"),
    (("--sweep-interval", "1h"), {}, "--sweep-interval needs --watch"),
    (("--syslog",), {}, "--syslog needs --watch"),
    (("--haproxy-socket", "nowhere"), {}, "--haproxy-socket nowhere: not a socket path or HOST:PORT"),
    ((), dict(haproxy_socket=["host:port"]), "--haproxy-socket host:port: not a socket path or HOST:PORT"),
])
def test_contradictions_are_usage_errors(argv, options, message):
    with pytest.raises(UsageError) as info:
        merge(argv, **options)
    assert str(info.value) == message


def test_watch_only_options_from_the_file_need_no_watch():
    """Only the command line's watch options are refused without --watch: a file shared by a
    one-shot cron run and the --watch service may set them."""
    assert merge((), syslog=True, log_format="json")["syslog"] is True


@pytest.mark.parametrize("argv, overrides", [
    ((), {}),
    (("-j", "2", "--backup"), {}),
    (("-u", "http://127.0.0.1:9/"), {"urls": ()}),
    (("--renew-at", "20", "--min-validity", "1d"), {"renew_at": None, "min_validity": None}),
])
def test_entry_overrides(argv, overrides):
    assert settings.entry_overrides(merge(argv)) == overrides
    assert settings.entry_overrides({}) == {}
