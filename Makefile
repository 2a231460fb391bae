# ocsptools: `make demo` and `make test` work on a fresh Debian machine with
# python3 and openssl; each installs what it needs (virtualenv, pip, and
# Debian packages through apt-get when run as root).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=
# The suite mostly waits (servers, responders, timeouts): four workers on two cores.
PYTEST_WORKERS ?= 4

.PHONY: all venv sysdeps typecheck test test-fast demo bench man clean

all: test

$(STAMP): setup.cfg pyproject.toml
	scripts/bootstrap-venv "$(PYTHON)" "$(VENV)"
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

venv: $(STAMP)

# Debian packages the tests use (openssl, groff, faketime, servers...).
# Installs them when run as root with apt-get; otherwise says what is
# missing and the tests that need them skip with a reason.
sysdeps:
	scripts/install-sysdeps

# Type hints of the whole package (the public API strictly), as the Python API promises.
typecheck: venv
	$(PY) -m mypy ocsptools

test: venv sysdeps typecheck
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

# The suite without the slow and server parts.
test-fast: venv
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) -m "not slow and not servers" $(PYTEST_ARGS)

demo: venv
	$(PY) scripts/demo.py

bench: venv
	$(PY) bench/run.py

man:
	@command -v groff >/dev/null || scripts/install-sysdeps
	groff -man -ww -z man/*.1 man/*.5 2>&1 | tee /dev/stderr | (! grep -q .)
	@echo "man pages render without warnings"

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis demo-run bench-run
