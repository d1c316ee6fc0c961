# summitd: `make run` serves, `make test` tests. Both set up everything on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
CONFIG ?= etc/summitd.toml
# Debian packages the tests use (none yet: federation tests will add prosody here).
APT_PACKAGES :=

.PHONY: run test install test-deps apt bench clean

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

test-deps: $(VENV)/.test-installed apt

apt:
	@if [ -n "$(APT_PACKAGES)" ]; then \
	  missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	  if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi; \
	fi

run: install
	$(PY) -m summitd.ctl --config $(CONFIG) prepare
	@echo "Add a user in another terminal:  $(VENV)/bin/summitctl --config $(CONFIG) adduser alice@localhost"
	$(VENV)/bin/twistd -n --pidfile= summitd --config $(CONFIG)

test: test-deps
	$(PY) -m twisted.trial --jobs=2 summitd

bench: install
	bash bench/logins.sh

clean:
	rm -rf $(VENV) _trial_temp* build *.egg-info twisted/plugins/dropin.cache
