# civictwin: `make demo` builds and shows the demo twin; `make test` runs the whole suite.
# Both set up everything they need on a fresh machine (virtual environment, pinned packages,
# Debian packages when run as root and missing, the web viewer bundle).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Debian packages the test suite starts for real (browser tests; the MQTT broker of the live tests and the
# demo; openssl makes the TLS test's certificate; PostgreSQL 15 + PostGIS 3 for the PostGIS store's tests;
# MapServer's CGI program is the WFS 2.0 server of the platform-source tests).
SYSTEM_PACKAGES := chromium mosquitto openssl postgresql-15-postgis-3 cgi-mapserver

VIEWER := src/civictwin/api/static/.built

.PHONY: demo test lint bench sysdeps web clean help messages catalogues

help:
	@echo "make demo   - set up, build the Helsinki demo twin and show where to look"
	@echo "make test   - set up and run the whole test suite"
	@echo "make lint   - ruff and mypy"
	@echo "make bench  - run the benchmarks (see BENCHMARKS.md)"

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

sysdeps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "missing Debian packages:$$missing (tests needing them will skip)"; fi; \
	fi

# The web viewer: npm installs exactly what package-lock.json pins, esbuild bundles it.
$(VIEWER): web/package.json web/package-lock.json web/build.mjs $(wildcard web/src/*)
	cd web && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build
	touch $@

web: $(VIEWER)

# Build the Helsinki demo twin, calibrate its traffic demand to Helsinki's counts inside the area,
# compare two traffic plans with the baseline (5 seeds each, demand reacting through mode choice; a plan
# whose simulation fails the engine's quality check, as closing Mannerheimintie does on the calibrated
# demand, is reported as that finding, without numbers),
# then serve the twin, the evidence and the viewer, with the counts replayed live over a local
# Mosquitto (stopped again with the server).
DEMO_DIR ?= demo-twin
demo: $(STAMP) sysdeps $(VIEWER)
	$(VENV)/bin/civictwin demo --dir $(DEMO_DIR)
	$(VENV)/bin/civictwin demo-calibrate $(DEMO_DIR)
	$(VENV)/bin/civictwin compare baseline close_main_street zone_30 --twin $(DEMO_DIR) --seeds 5 --workers 2
	$(VENV)/bin/civictwin demo-live $(DEMO_DIR)

test: $(STAMP) sysdeps $(VIEWER)
	$(PY) -m pytest -q -n 2 --dist loadfile

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/mypy

# Each benchmark runs its peer side by side in the same run; results are recorded in BENCHMARKS.md.
BENCH_DIR ?= bench-twin
bench: $(STAMP) $(VIEWER)
	$(VENV)/bin/civictwin demo --dir $(BENCH_DIR)
	$(PY) benchmarks/bench_build.py --sizes 1 2 4 8 --repeat 3
	$(PY) benchmarks/bench_viewer.py --runs 5 --twin $(BENCH_DIR)
	$(PY) benchmarks/bench_consultation.py --runs 5 --twin $(BENCH_DIR)
	$(PY) benchmarks/bench_api.py --setup-peer
	$(PY) benchmarks/bench_api.py $(BENCH_DIR) --layer buildings_3d --concurrency 4 --duration 20
	$(PY) benchmarks/bench_traffic.py
	$(PY) benchmarks/bench_sensors.py --setup-peer
	$(PY) benchmarks/bench_sensors.py --sensors 100 --hours 8760 --concurrency 4 --duration 60
	$(PY) benchmarks/bench_live.py --rates 500 1000 2000 5000 --duration 60

clean:
	rm -rf $(VENV) build demo-twin bench-twin .pytest_cache web/node_modules src/civictwin/api/static

# Languages (docs/consultation.md#languages): `make messages` extracts every translatable message of the
# Python package and the page templates into the template catalogue and merges it into each language's
# .po (translators then fill the new entries); the .po files are committed and read at run time
# (civictwin/i18n.py compiles them in memory), `make catalogues` also writes .mo files for packagers.
LOCALES := sk it
LOCALE_DIR := src/civictwin/locale
BABEL := $(PY) -m babel.messages.frontend
messages: $(STAMP)
	$(BABEL) extract -F babel.cfg -k N_ -k KpiMeaning:1 --no-location --sort-output \
	  --project civictwin --copyright-holder "civictwin contributors" -o $(LOCALE_DIR)/civictwin.pot .
	for l in $(LOCALES); do \
	  if [ -f $(LOCALE_DIR)/$$l/LC_MESSAGES/civictwin.po ]; then \
	    $(BABEL) update -i $(LOCALE_DIR)/civictwin.pot -d $(LOCALE_DIR) -D civictwin -l $$l --no-fuzzy-matching --ignore-obsolete; \
	  else $(BABEL) init -i $(LOCALE_DIR)/civictwin.pot -d $(LOCALE_DIR) -D civictwin -l $$l; fi; \
	done

catalogues: $(STAMP)
	$(BABEL) compile -d $(LOCALE_DIR) -D civictwin --statistics
