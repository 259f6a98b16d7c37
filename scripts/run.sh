#!/usr/bin/env bash
# Builds Tollgate (release) and runs it with conf/gateway.yaml, or the config given as $1.
# With the demo config it also starts the demo echo upstream on 127.0.0.1:8080 (unless
# something already listens there), so https://localhost:6882/v1/... answers at once.
set -euo pipefail
cd "$(dirname "$0")/.."
config="${1:-conf/gateway.yaml}"
scripts/setup.sh
cargo build --release -p gateway --bin tollgate --example echo_upstream

if [ "$config" = "conf/gateway.yaml" ] && ! (exec 3<>/dev/tcp/127.0.0.1/8080) 2>/dev/null; then
  target/release/examples/echo_upstream 127.0.0.1:8080 &
  upstream_pid=$!
  trap 'kill "$upstream_pid" 2>/dev/null || true' EXIT
fi

echo "Tollgate: https://localhost:6882 (demo certificate: use curl -k), admin on http://127.0.0.1:9090" >&2
target/release/tollgate --config "$config"
