# ocsptools: `make demo` and `make test` work on a fresh Debian machine with
# python3 and openssl; each installs what it needs (virtualenv, pip, and
# Debian packages through apt-get when run as root): the demo the runtime
# only, the tests the test extra on top of it.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install --quiet --disable-pip-version-check
# `make demo` needs the runtime only (pip install -e .: setup.cfg's install_requires);
# `make venv` (and so `make test`) adds the test extra on top of it.
RUNTIME_STAMP := $(VENV)/.installed-runtime
STAMP  := $(VENV)/.installed-test
# An editable install ships no data_files, so the man pages are linked into the venv:
# with $(VENV)/bin on PATH (after `. .venv/bin/activate`) and MANPATH unset, man-db also
# looks in $(VENV)/share/man, and `man ocsp-fetch` shows the checkout's man/ocsp-fetch.1.
MANPAGES := $(wildcard man/*.1 man/*.5)
MAN_STAMP := $(VENV)/.man-linked
PYTEST_ARGS ?=
# The suite mostly waits (servers, responders, timeouts): four workers on two cores.
PYTEST_WORKERS ?= 4

.PHONY: all venv venv-runtime sysdeps typecheck test test-fast demo bench man clean

all: test

$(RUNTIME_STAMP): setup.cfg pyproject.toml
	scripts/bootstrap-venv "$(PYTHON)" "$(VENV)"
	$(PIP) -e .
	touch $@

$(MAN_STAMP): $(RUNTIME_STAMP) $(MANPAGES)
	mkdir -p $(VENV)/share/man/man1 $(VENV)/share/man/man5
	find $(VENV)/share/man -type l -lname '$(CURDIR)/man/*' -delete
	for page in $(MANPAGES); do \
	    ln -sf "$(CURDIR)/$$page" "$(VENV)/share/man/man$${page##*.}/" || exit 1; \
	done
	touch $@

$(STAMP): $(RUNTIME_STAMP)
	$(PIP) -e '.[test]'
	touch $@

# The runtime and the man pages: what `make demo` and a user of the tools need.
venv-runtime: $(RUNTIME_STAMP) $(MAN_STAMP)

# Everything a developer needs: the runtime, the man pages and the test extra.
venv: venv-runtime $(STAMP)

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

demo: venv-runtime
	$(PY) scripts/demo.py

bench: venv
	$(PY) bench/run.py

man:
	@command -v groff >/dev/null || scripts/install-sysdeps
	groff -man -ww -z man/*.1 man/*.5 2>&1 | tee /dev/stderr | (! grep -q .)
	@echo "man pages render without warnings"

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis demo-run bench-run
