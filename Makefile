# deckbuild: `make` sets itself up and builds every deck from cards/ into dist/; `make test` runs the tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SOURCES ?= cards
OUT    ?= dist

.PHONY: all build check preview test addon bench coverage mutation clean distclean setup vendor-temml vendor-font

all: build

# Runtime dependencies (pinned in pyproject.toml; torch==2.13.0 is the CPU wheel), with the
# `preview` extra (anki, starlette, uvicorn, watchfiles) for `deckbuild preview`.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[preview]"
	touch $@

# Test dependencies: pytest, hypothesis, and real Anki (anki + aqt) to import decks into.
$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[test]"
	touch $@

setup: $(VENV)/.installed

build: $(VENV)/.installed
	$(BIN)/deckbuild build $(SOURCES) --out $(OUT)

check: $(VENV)/.installed
	$(BIN)/deckbuild check --strict $(SOURCES)

# Every card as Anki shows it, live while writing (http://127.0.0.1:8000/; Ctrl-C stops).
preview: $(VENV)/.installed
	$(BIN)/deckbuild preview $(SOURCES)

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest

addon: $(VENV)/.installed
	$(BIN)/python addon/build.py --out $(OUT)/deckbuild.ankiaddon

bench: $(VENV)/.installed-test
	$(BIN)/python bench/bench.py

# Tools for coverage and mutation runs (outside CI).
$(VENV)/.installed-dev: $(VENV)/.installed-test
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[test,dev]"
	touch $@

# Line coverage of src/ and addon/, including subprocesses and the real Anki process (docs/testing.md).
coverage: $(VENV)/.installed-dev
	rm -rf .coverage-data && mkdir -p .coverage-data
	$(BIN)/python -m coverage run -m pytest -q -p no:cacheprovider
	$(BIN)/python -m coverage combine -q
	$(BIN)/python -m coverage report --sort=cover

# Mutation run over the modules whose invariants matter (slow: not part of CI; see docs/testing.md).
# MUTANTS picks some, e.g. MUTANTS="'addon.policy*' 'deckbuild.cache*'"; niced, one mutant at a time.
MUTANTS ?=
mutation: $(VENV)/.installed-dev
	nice -n 10 $(BIN)/mutmut run --max-children 1 $(MUTANTS) || true
	$(BIN)/mutmut results > docs/mutation-results.txt || true
	$(BIN)/python -c "import sys; print(open('docs/mutation-results.txt').read()[-2000:])"

# Refresh the vendored math files in src/deckbuild/vendor/ (committed; not run by a build).
# vendor-temml: Temml's temml.min.js, its CSS, Temml.woff2 and LICENSE from the npm registry (needs npm).
# vendor-font: Latin Modern Math as WOFF2 from Debian's fonts-lmodern (apt-get install fonts-lmodern).
vendor-temml: $(VENV)/.installed
	$(BIN)/python tools/vendor_math.py temml

vendor-font: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[vendor]"
	$(BIN)/python tools/vendor_math.py font

clean:
	rm -rf $(OUT) .deckbuild-cache .pytest_cache .hypothesis .coverage-data mutants
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
