# summitd: `make run` serves, `make test` tests. Both set up everything on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
CONFIG ?= etc/summitd.toml
# Debian packages the tests use: prosody is the federation peer; node and npm (for the
# xmpp.js client) are installed from Debian only when the machine has no node of its own.
APT_PACKAGES := prosody $(if $(shell command -v npm),,nodejs npm)

.PHONY: run test install test-deps apt bench bench-mam bench-fanout clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	# compat mode keeps the repo root (and its twisted/plugins/) on sys.path for twistd's plugin scan
	$(PY) -m pip install --quiet -e . --config-settings editable_mode=compat
	touch $@

install: $(VENV)/.installed

$(VENV)/.test-installed: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[test]' --config-settings editable_mode=compat
	touch $@

summitd/test/xmppjs/node_modules/.installed: summitd/test/xmppjs/package-lock.json | apt
	npm ci --no-audit --no-fund --prefix summitd/test/xmppjs
	touch $@

test-deps: $(VENV)/.test-installed apt summitd/test/xmppjs/node_modules/.installed

apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  own_policy=; if [ ! -e /usr/sbin/policy-rc.d ]; then \
	    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; own_policy=1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	  status=$$?; [ -n "$$own_policy" ] && rm -f /usr/sbin/policy-rc.d; exit $$status; \
	fi

run: install
	$(PY) -m summitd.ctl --config $(CONFIG) prepare
	@echo "Add a user in another terminal:  $(VENV)/bin/summitctl --config $(CONFIG) adduser alice@localhost"
	$(VENV)/bin/twistd -n --pidfile= summitd --config $(CONFIG)

test: test-deps
	$(PY) -m twisted.trial --jobs=2 summitd

# `make bench`: summitd side by side with Debian's Prosody and ejabberd (installed when missing,
# their services left stopped); the table goes to the terminal and bench/results/compare-*.json.
# BENCH_ARGS passes options to bench/compare.py (e.g. BENCH_ARGS=--quick).
BENCH_APT_PACKAGES := prosody ejabberd
bench: install
	@bash bench/peers/install.sh $$(for p in $(BENCH_APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done)
	$(PY) bench/compare.py $(BENCH_ARGS)

# Longer single-feature benchmarks (each a few minutes): the archive at 1,000,000 messages,
# archiving's cost on routing, and a 1,000-member channel's fan-out.
bench-mam: install
	$(PY) bench/mam_bench.py
	$(PY) bench/archive_cost.py hooks
	$(PY) bench/archive_cost.py writes
	bash bench/messages.sh
	RATE=2000 bash bench/messages.sh

bench-fanout: install
	$(PY) bench/channel_fanout.py

clean:
	rm -rf $(VENV) _trial_temp* build *.egg-info twisted/plugins/dropin.cache
