# The front door: `make demo` and `make setup test` on a fresh machine, `make run` for the service.
TOOLS ?= $(HOME)/.cache/referrers-sidecar/tools
export REFERRERS_SIDECAR_TOOLS := $(TOOLS)
export PATH := $(TOOLS)/bin:$(HOME)/.cargo/bin:$(PATH)
CONFIG ?= deploy/config.example.yaml

.PHONY: setup lint build test demo helm-check observability-check dockerfile-lint release-binary run check-config bench soak clean

## Install every tool the tests and the demo need (idempotent; a repeat is fast).
setup:
	scripts/setup.sh

## Formatting and lints, warnings are errors; nothing tracked reaches outside the repository;
## the service's modules use only the layers below their own (and the check catches a planted
## upward import and circle).
lint:
	scripts/check-self-contained.sh
	scripts/check-layers.py
	scripts/check-layers.py --self-test
	shellcheck -x scripts/bench.sh scripts/soak.sh scripts/lib/loopback.sh scripts/check-helm.sh \
	  scripts/render-config.sh helm/referrers-sidecar/harbor-nginx/post-render.sh \
	  helm/referrers-sidecar/harbor-nginx/install-plugin.sh
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

## Build the binaries the end-to-end suite starts.
build:
	cargo build --workspace --bins

## The whole suite: unit, property and end-to-end tests, the Helm chart, the alert rules and the
## Dockerfile.
test: build helm-check observability-check dockerfile-lint
	cargo nextest run --workspace --no-fail-fast

## The Helm chart: lint, render, validate offline, check-config the rendered configuration.
helm-check:
	scripts/check-helm.sh

## The alert rules (promtool check and unit tests), the chart's copy of them, the dashboard's
## JSON. tests/deployment/observability.rs checks their metric names against the running binary.
observability-check:
	scripts/check-observability.sh

## Lint the container image's Dockerfile (hadolint, installed by make setup).
dockerfile-lint:
	hadolint deploy/Dockerfile

## The release binary exactly as deploy/Dockerfile builds it (slow; not part of make test).
release-binary:
	cargo build --release --locked -p referrers-sidecar

## Criterion's benches and a load run against nginx on loopback; both write their tables into
## docs/benchmarks.md (slow; not part of make test).
bench: setup
	scripts/bench.sh

## Ten minutes of mixed load on loopback while the upstream flaps and Redis restarts; writes
## what it saw into docs/reliability.md (slow; not part of make test).
soak: setup
	scripts/soak.sh

## A local demo: a real upstream with signed content, the Harbor core double and the sidecar
## on loopback; prints the commands to try, serves until Ctrl-C.
demo: setup build
	cargo run -q -p e2e --bin referrers-demo

## Start the sidecar with the example configuration (text logs), until Ctrl-C.
run:
	REFERRERS_SIDECAR__LOG__FORMAT=text cargo run -p referrers-sidecar -- --config $(CONFIG)

## Print the effective configuration of $(CONFIG), secrets masked.
check-config:
	cargo run -q -p referrers-sidecar -- check-config --config $(CONFIG)

clean:
	cargo clean
