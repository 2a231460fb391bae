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

.PHONY: all venv venv-runtime sysdeps typecheck test test-fast demo bench man deb clean

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

# The Debian package (debian/): dpkg-buildpackage -us -uc -b on a copy of the checkout's files
# (tracked and untracked, less what .gitignore names) in a temporary directory, so no build
# droppings stay here, with Debian's python3 and a clean environment (no virtualenv, no
# pyenv).  The .deb, .buildinfo, .changes and lintian's report (lintian.txt; an error fails
# the build, the warnings left are explained in debian/README.source) go to $(DEB_OUT).
DEB_OUT ?= dist

deb:
	@for p in dpkg-buildpackage dh dh_python3 lintian; do \
	    command -v $$p >/dev/null || { scripts/install-sysdeps --required; break; }; done
	@set -e; out=$$(realpath -m "$(DEB_OUT)"); mkdir -p "$$out"; \
	tmp=$$(mktemp -d "$${TMPDIR:-/tmp}/ocsptools-deb.XXXXXX"); trap 'rm -rf "$$tmp"' EXIT; \
	mkdir "$$tmp/src"; \
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
	    git ls-files -z --cached --others --exclude-standard \
	        | tar --null -T - --ignore-failed-read -cf - 2>/dev/null | tar -xf - -C "$$tmp/src"; \
	else \
	    tar --exclude-vcs --exclude=./.venv --exclude=./dist --exclude=./build --exclude=./.pybuild \
	        --exclude=__pycache__ --exclude='*.egg-info' --exclude=.pytest_cache --exclude=.hypothesis \
	        --exclude=./demo-run --exclude=./bench-run -cf - . \
	        | tar -xf - -C "$$tmp/src"; \
	fi; \
	cd "$$tmp/src"; \
	echo "make deb: dpkg-buildpackage -us -uc -b in $$tmp/src"; \
	env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$$tmp" LC_ALL=C.UTF-8 \
	    DEB_BUILD_OPTIONS="$${DEB_BUILD_OPTIONS:-}" dpkg-buildpackage -us -uc -b > "$$tmp/build.log" 2>&1 \
	    || { tail -n 60 "$$tmp/build.log"; echo "make deb: dpkg-buildpackage failed" >&2; exit 1; }; \
	rm -f "$$out"/ocsptools_*.deb "$$out"/ocsptools_*.buildinfo "$$out"/ocsptools_*.changes; \
	cp "$$tmp"/ocsptools_*.deb "$$tmp"/ocsptools_*.buildinfo "$$tmp"/ocsptools_*.changes "$$out"/; \
	cp "$$tmp/build.log" "$$out/build.log"; \
	rc=0; lintian --fail-on error "$$out"/ocsptools_*.changes > "$$out/lintian.txt" 2>&1 || rc=$$?; \
	cat "$$out/lintian.txt"; \
	[ "$$rc" = 0 ] || { echo "make deb: lintian reports errors" >&2; exit 1; }; \
	echo "make deb: $$(ls "$$out"/ocsptools_*.deb)"

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis demo-run bench-run
	rm -rf .pybuild debian/.debhelper debian/ocsptools debian/files debian/*.substvars \
	    debian/*.debhelper.log debian/debhelper-build-stamp
