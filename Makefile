# usage-ledger: two commands on a fresh machine - `make run` (local stack) and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PORT   ?= 3000

# The deploy tools, each in a venv of its own under .venv-tools/ (their pins would disturb the project's):
# the SAM CLI, checkov, and `lambda`, a Python 3.12 holding only boto3 as the Lambda runtime does
TOOLS := .venv-tools
SAM_CLI_VERSION := 1.170.0
CHECKOV_VERSION := 3.3.30
LAMBDA_BOTO3 := boto3==1.44.18
# a working Python 3.12 (pyenv's shim for python3.12 exists even where it fails)
PYTHON312 ?= $(shell for p in python3.12 $$HOME/.pyenv/versions/3.12*/bin/python3.12 /usr/local/bin/python3.12; do \
	"$$p" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null && command -v "$$p" && break; done)
HOST_ARCH := $(if $(filter aarch64 arm64,$(shell uname -m)),arm64,x86_64)
# sam as docs/deploy.md runs it (samconfig.toml), building with the tools' Python 3.12 (packaging/Makefile)
SAM := SAM_CLI_TELEMETRY=0 LAMBDA_PYTHON=$(abspath $(TOOLS)/lambda/bin/python3.12) $(TOOLS)/sam/bin/sam

.PHONY: install run test test-fast bench close alerts invoice lint soak clean openapi tools build build-host deploy-check

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

## bench: DynamoDB requests per event, per query, per closed cycle; cold-start import time from the build output (JSON)
bench: install build-host
	$(PY) -m bench.run

## close / alerts: run the scheduled jobs of a running `make run` now
close:
	curl -s -X POST http://127.0.0.1:$(PORT)/_local/run/CloseBillingCyclesFunction; echo
alerts:
	curl -s -X POST http://127.0.0.1:$(PORT)/_local/run/EvaluateAlertsFunction; echo
## invoice: the close job now: the demo's Pay as You Go first cycles (bought 40 days ago) have ended: team-demo's
## invoice is paid, team-lab's is declined (its card declines every charge)
invoice:
	$(PY) -m infra.demo invoice http://127.0.0.1:$(PORT)

## openapi: regenerate docs/openapi.json from the handlers (tests fail when the committed file is stale)
openapi: install
	$(PY) -m infra.openapi

## lint: ruff (pyproject.toml's rules) on every Python file, mypy on the package and the handlers, cfn-lint
lint: install
	$(VENV)/bin/ruff check .
	MYPYPATH=shared $(VENV)/bin/mypy shared/usage_ledger functions
	$(VENV)/bin/cfn-lint template.yaml

$(TOOLS)/.installed:
	@test -n "$(PYTHON312)" || { echo "the deploy tools need Python 3.12 (python3.12 on PATH, or pyenv's)" >&2; exit 1; }
	rm -rf $(TOOLS)
	$(PYTHON312) -m venv $(TOOLS)/sam
	$(TOOLS)/sam/bin/pip install --quiet aws-sam-cli==$(SAM_CLI_VERSION)
	$(PYTHON312) -m venv $(TOOLS)/checkov
	$(TOOLS)/checkov/bin/pip install --quiet checkov==$(CHECKOV_VERSION)
	$(PYTHON312) -m venv $(TOOLS)/lambda
	$(TOOLS)/lambda/bin/pip install --quiet $(LAMBDA_BOTO3)
	touch $@

## tools: the SAM CLI, checkov and a Lambda-like Python 3.12 (boto3 only) in .venv-tools/
tools: $(TOOLS)/.installed

## build: `sam build` as docs/deploy.md gives it (arm64, .aws-sam/build: what `sam deploy` ships)
build: tools
	$(SAM) build

## build-host: the same build for this machine's architecture (.aws-sam/host), whose wheels load here
build-host: tools
	LAMBDA_ARCH=$(HOST_ARCH) $(SAM) build --build-dir .aws-sam/host

## deploy-check: sam validate --lint and sam build as documented, every handler imported from the
## build in a Lambda-like interpreter (infra/deploy_check.py), checkov on the template (docs/deploy.md)
deploy-check: install tools
	$(SAM) validate --lint
	$(SAM) build
	LAMBDA_ARCH=$(HOST_ARCH) $(SAM) build --build-dir .aws-sam/host
	$(PY) -m infra.deploy_check --build .aws-sam/host
	$(PY) -m infra.checkov_check --checkov $(TOOLS)/checkov/bin/checkov

clean:
	rm -rf $(VENV) $(TOOLS) .aws-sam .pytest_cache .hypothesis
