# The two set-up commands are `make up` and `make test`; both work on a fresh machine (they install and start what
# they need: Postgres if missing, the nisshi broker, migrations).
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: up down status test build lint lint-deploy fmt schemathesis bench soak chaos fuzz

## up: Postgres (if needed), nisshi, migrations, api + relay + worker in the background, and a demo job.
up:
	deploy/local/stack.sh up

## down: stop what `make up` started (by PID), and nothing else.
down:
	deploy/local/stack.sh down

status:
	deploy/local/stack.sh status

build:
	$(CARGO) build --workspace --bins

## test: start Postgres and the broker if needed, build the binaries the end-to-end tests spawn (beside the broker's
## install on a new machine), run every test.
test:
	deploy/local/stack.sh prepare
	deploy/local/stack.sh tools
	deploy/local/test-install-broker.sh
	$(CARGO) test --workspace --no-fail-fast
	deploy/local/schemathesis.sh
	deploy/lint.sh

## schemathesis: property-based tests of the running API from its OpenAPI document (part of `make test`).
schemathesis:
	$(CARGO) build --workspace --bins
	deploy/local/schemathesis.sh
	deploy/lint.sh

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps -q

fmt:
	$(CARGO) fmt --all

## bench: Ackbox next to its ceilings (report in bench/results/latest.md). PART=ceilings|accept|latency|drain|all, or a,b
bench:
	PART=$(or $(PART),all) bench/run.sh

## soak: the whole pipeline under open-loop load, sampled every minute (report and plot in bench/results/soak-*.md/png).
## PART=steady (default: half the sustained capacity, SOAK_MINUTES=20) or PART=overload (twice it, 5 min, then
## recovery); SOAK_RATE=N for another rate (report soak-<part>-N.md).
soak:
	PART=$(or $(PART),steady) bench/soak.sh

## lint-deploy: validate deploy/ offline (compose schema, Kubernetes schemas, env vars vs binaries)
lint-deploy:
	deploy/lint.sh

## chaos: fault scenarios with a Jepsen-style checker (reports in target/chaos/), then (without SCENARIO) the
## `make up` restart check after kill -9 of each component. Restarts Postgres and the broker: run it alone.
## SCENARIO=a,b to pick, SEED=n to repeat a run.
chaos:
	deploy/local/stack.sh deps
	$(CARGO) build --workspace --bins
	target/debug/ackbox-chaos $(if $(SCENARIO),--scenario $(SCENARIO)) $(if $(SEED),--seed $(SEED))
	$(if $(SCENARIO),,deploy/local/restart-check.sh)

## fuzz: each cargo-fuzz target for FUZZ_SECONDS (default 60) from the committed seeds (fuzz/README.md)
fuzz:
	command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd fuzz && for t in envelope submit_request idempotency_fingerprint; do \
	  RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run --sanitizer none $$t corpus/$$t -- -max_total_time=$(or $(FUZZ_SECONDS),60) || exit 1; \
	done
