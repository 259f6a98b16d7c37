#!/usr/bin/env bash
# Runs every test: unit tests, and the integration tests that start their own redis-server,
# upstreams and gateway on ephemeral loopback ports. Installs what is missing first.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
cargo test --workspace --all-targets "$@"
