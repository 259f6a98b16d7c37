#!/usr/bin/env bash
# The load bench: builds the release binaries, starts redis-server, the echo upstream and the
# gateway (conf/bench.yaml) on loopback, measures the raw RS256 signing rate of one thread,
# drives each scenario with the load generator, and prints a Markdown table in which each
# proxy row is compared with a bare Pingora proxy (benches/bare_pingora.rs) measured in the
# same rounds. The gateway and the bare proxy are pinned to core 0; the load generator, the
# upstream and Redis (a separate server in any real deployment) to core 1. It takes about 5 minutes with the defaults. The protected route is
# also measured while the configuration reloads every second (row `protected_reloading`), and
# on a route with a rate limit and health checks on (row `protected_guarded`). Two more
# instances of the gateway sign with an ES256 and an EdDSA key (rows
# `client_credentials_es256`, `client_credentials_eddsa`, compared with bare Pingora too).
#
#   scripts/bench.sh                    # 64 connections, 4 s per run, 5 rounds
#   BENCH_SECONDS=10 BENCH_CONNECTIONS=128 scripts/bench.sh
#
# Everything it starts listens on 127.0.0.1 and is stopped when it ends. Results also go to
# target/bench/results.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${BENCH_SECONDS:-4}"
rounds="${BENCH_ROUNDS:-5}"
connections="${BENCH_CONNECTIONS:-64}"
scripts/setup.sh --test
command -v taskset >/dev/null 2>&1 || { apt-get install -y -qq util-linux >/dev/null; }
cargo build --release -p gateway --bin tollgate --example echo_upstream --example loadgen --example bare_pingora

for port in 16882 16883 16884 16885 19090 19091 19092 18080 16379; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "bench: 127.0.0.1:$port is in use; stop what listens there first" >&2
    exit 1
  fi
done

out=target/bench
mkdir -p "$out"
results="$out/results.jsonl"
: > "$results"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

taskset -c 1 redis-server --port 16379 --bind 127.0.0.1 --save "" --appendonly no --logfile "" >"$out/redis.log" 2>&1 &
pids+=($!)
taskset -c 1 target/release/examples/echo_upstream 127.0.0.1:18080 >"$out/upstream.log" 2>&1 &
pids+=($!)
# The baseline: a bare Pingora proxy to the same upstream, on the gateway's core (only the
# one under load uses it).
taskset -c 0 target/release/examples/bare_pingora 127.0.0.1:16883 127.0.0.1:18080 1 >"$out/bare.log" 2>&1 &
pids+=($!)
TOLLGATE_STORE_URL=redis://127.0.0.1:16379/0 taskset -c 0 target/release/tollgate --config conf/bench.yaml >"$out/gateway.log" 2>&1 &
gateway=$!
pids+=($gateway)

# The same gateway with an ES256 and with an EdDSA signing key, for the token rows
# `client_credentials_es256` and `client_credentials_eddsa`.
for variant in "es256 ES256 16884 19091" "ed25519 EdDSA 16885 19092"; do
  set -- $variant
  sed -e "s#127.0.0.1:16882#127.0.0.1:$3#; s#127.0.0.1:19090#127.0.0.1:$4#" \
      -e "s#algorithm: RS256#algorithm: $2#" \
      -e "s#private_key: keys/demo-rs256-100.pem#private_key: $PWD/conf/keys/demo-$1.pem#" \
      conf/bench.yaml >"$out/bench-$1.yaml"
  TOLLGATE_STORE_URL=redis://127.0.0.1:16379/0 taskset -c 0 target/release/tollgate --config "$out/bench-$1.yaml" >"$out/gateway-$1.log" 2>&1 &
  pids+=($!)
done

for admin in 19090 19091 19092; do
  for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$admin/readyz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -fs "http://127.0.0.1:$admin/readyz" >/dev/null || { echo "bench: a gateway (admin $admin) did not become ready" >&2; cat "$out"/gateway*.log >&2; exit 1; }
done

loadgen=target/release/examples/loadgen
# The signing rate is measured on the gateway's core while it idles, before each round.

run() { # scenario target [rate] [label]
  local extra=()
  [ -n "${3:-}" ] && extra+=(--rate "$3")
  [ -n "${4:-}" ] && extra+=(--label "$4")
  taskset -c 1 "$loadgen" run --target "$2" --scenario "$1" --connections "$connections" --seconds "$seconds" "${extra[@]}" | tee -a "$results" >&2
}
# The protected route while the configuration reloads every second (POST /reload).
run_reloading() {
  ( for _ in $(seq 1 $(( ${seconds%.*} + 3 ))); do
      curl -fs -X POST http://127.0.0.1:19090/reload >/dev/null || echo "bench: a reload failed" >&2
      sleep 1
    done ) &
  local reloader=$!
  run protected 127.0.0.1:16882 "" protected_reloading
  wait "$reloader"
}
# Closed loop (saturation). The runs compared with each other are interleaved, round after
# round, and the report takes medians (of the rates, and of the ratios within a round): this
# machine is shared and noisy.
taskset -c 0 "$loadgen" sign-rate --key conf/keys/demo-rs256-100.pem --seconds 2 >>"$results"
for scenario in password authorization_code; do
  run "$scenario" 127.0.0.1:16882
done
for round in $(seq 1 "$rounds"); do
  taskset -c 0 "$loadgen" sign-rate --key conf/keys/demo-rs256-100.pem --seconds 2 >>"$results"
  run client_credentials 127.0.0.1:16882
  run client_credentials 127.0.0.1:16884 "" client_credentials_es256
  run client_credentials 127.0.0.1:16885 "" client_credentials_eddsa
  run refresh_token 127.0.0.1:16882
  run protected 127.0.0.1:16882
  run protected_guarded 127.0.0.1:16882
  run_reloading
  run unprotected 127.0.0.1:16882
  run bare_pingora 127.0.0.1:16883
  run upstream 127.0.0.1:18080
done

# Latency below saturation: open loop at a quarter and at half of each median maximum.
median_rps() {
  grep "\"rate\":null" "$results" | grep "\"scenario\":\"$1\"" | sed 's/.*"rps":\([0-9.]*\).*/\1/' | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
for scenario in client_credentials refresh_token protected unprotected; do
  max=$(median_rps "$scenario")
  for share in 4 2; do
    run "$scenario" 127.0.0.1:16882 "$(awk -v m="$max" -v s="$share" 'BEGIN { printf "%d", m / s }')"
  done
done

peak_kb=$(awk '/VmHWM/ { print $2 }' "/proc/$gateway/status")
echo "{\"peak_rss_kb\": $peak_kb}" >>"$results"

echo
echo "Tollgate load bench: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), ${connections} connections, ${seconds} s per scenario, store: Redis"
echo
"$loadgen" report "$results"
