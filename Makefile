# usage-ledger: two commands on a fresh machine - `make run` (local stack) and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PORT   ?= 3000

.PHONY: install run test test-fast bench close alerts invoice lint soak clean openapi

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## run: the whole system locally (moto server + template + HTTP gateway on :$(PORT) + pollers + demo data)
run: install
	$(PY) -m infra.local --port $(PORT)

## test: every test (unit, functional, server-mode concurrency, template checks, local stack, browser)
test: install
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then bash infra/install_browser.sh || echo "browser install failed; browser tests will be skipped"; fi
	$(PY) -m pytest -n 2 --dist loadfile

test-fast: install
	$(PY) -m pytest -n 2 --dist loadfile -m "not e2e and not browser"

## soak: the seeded simulation, longer and over fresh seeds, 20,000 users in one month (BOUNDED_USERS) (~12 min per seed; SIM_SEEDS, SIM_STEPS, SIM_EVENTS, SIM_SEED to replay), and the fuzz and the close-clock property with more examples (FUZZ_EXAMPLES, CLOSE_SKEW_EXAMPLES)
soak: install
	SIM_SEEDS=$${SIM_SEEDS:-3} SIM_STEPS=$${SIM_STEPS:-30} SIM_EVENTS=$${SIM_EVENTS:-80} FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-300} \
		BOUNDED_USERS=$${BOUNDED_USERS:-20000} CLOSE_SKEW_EXAMPLES=$${CLOSE_SKEW_EXAMPLES:-100} \
		$(PY) -m pytest -p no:cacheprovider -s tests/simulation tests/security tests/functional/test_bounded_items.py \
		tests/functional/test_close_clock_skew.py

## bench: DynamoDB requests per event, per query, per closed cycle; cold-start import time (JSON)
bench: install
	$(PY) -m bench.run

## close / alerts: run the scheduled jobs of a running `make run` now
close:
	curl -s -X POST http://127.0.0.1:$(PORT)/_local/run/CloseBillingCyclesFunction; echo
alerts:
	curl -s -X POST http://127.0.0.1:$(PORT)/_local/run/EvaluateAlertsFunction; echo
## invoice: close the demo's open Pay as You Go cycle as of two days after it ends: an invoice to open on the page
invoice:
	$(PY) -m infra.demo invoice http://127.0.0.1:$(PORT)

## openapi: regenerate docs/openapi.json from the handlers (tests fail when the committed file is stale)
openapi: install
	$(PY) -m infra.openapi

lint: install
	$(VENV)/bin/cfn-lint template.yaml

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
