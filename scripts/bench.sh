#!/usr/bin/env bash
# The load bench. Builds the release binaries, starts redis-server, the echo upstream and the
# gateway (conf/bench.yaml) on loopback, and drives them with the load generator
# (benches/loadgen.rs, the same command operators point at their own deployment; see README,
# "Load-testing your own deployment").
#
#   scripts/bench.sh          # the bench: a Markdown table, about 10 minutes with the defaults
#   scripts/bench.sh soak     # (or BENCH_SOAK=1) the soak: memory under a long steady load
#   scripts/bench.sh fleet    # one gateway against two on one Redis, with Redis's CPU share
#   scripts/bench.sh instructions  # instructions per proxied request, bare Pingora and Tollgate
#
# The bench measures the raw RS256 signing rate of one thread and drives each scenario; each
# proxy row is compared with a bare Pingora proxy (benches/bare_pingora.rs) measured in the same
# rounds, by requests per second and by the server's CPU time per request (the load generator
# reads it from /proc over each measured run, with the share of one core the server used: a
# server below 100 % was not what capped its row). The protected route is measured with JWTs (row `protected`), with opaque tokens looked
# up in the store (`protected_opaque`), while the configuration reloads every second
# (`protected_reloading`), and on a route with a rate limit and health checks on
# (`protected_guarded`). Two more instances of the gateway sign with an ES256 and an EdDSA key
# (rows `client_credentials_es256`, `client_credentials_eddsa`, compared with bare Pingora too).
# The last rows drive a fixed rate (a quarter and a half of each measured maximum).
#
# The soak measures the protected route's maximum, then drives it at half of that for
# SOAK_SECONDS (default 600) while it samples the gateway's resident memory (VmRSS) every
# 10 s, and prints the samples with the first, last and largest, and the gateway's share of
# its core and CPU time per request over the soak. It starts only what it drives: Redis, the
# upstream and the gateway.
#
# The fleet mode starts two gateways on one Redis (A on core 0, B on core 1) and, per
# scenario, drives A alone and then A and B together (two load generators, half the
# connections each); it prints both rates, their ratio and Redis's CPU share in each run. On
# a 2-core machine the load generators, the upstream and Redis share the gateways' cores, so
# the aggregate shows where this machine, not the design, stops scaling.
#
# The instructions mode runs bare Pingora and the gateway under valgrind's callgrind, one at a
# time, and counts the user-space instructions each spends per request of the proxy rows: a
# count that, unlike requests per second, does not move with the machine's other tenants. Each
# count comes from two measured runs of different lengths (2 s and 8 s), so what a run does
# once (each connection's token request) cancels out. It prints each row's instructions, their
# ratio to bare Pingora's (also bare Pingora adding the two forwarding headers, and the
# unprotected route with each `server.upstream_forwarded_header`), client_credentials with the
# RS256 key against one RS256 signature and with the ES256 key, and where the protected route's
# instructions go in Tollgate's own code (inclusive, per request). It takes about eight minutes.
#
# The gateway and the bare proxy are pinned to core 0; the load generator, the upstream and
# Redis (a separate server in any real deployment) to core 1.
#
#   BENCH_SECONDS=10 BENCH_CONNECTIONS=128 BENCH_ROUNDS=3 scripts/bench.sh
#   SOAK_SECONDS=3600 scripts/bench.sh soak
#
# Everything it starts listens on 127.0.0.1 and is stopped when it ends. Results also go to
# target/bench/ (results.jsonl; for the soak soak.txt, soak.json and soak.svg).
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:-bench}"
[ "${BENCH_SOAK:-}" = 1 ] && mode=soak
case "$mode" in
  bench | soak | fleet | instructions) ;;
  *) echo "usage: scripts/bench.sh [soak | fleet | instructions]" >&2; exit 2 ;;
esac
seconds="${BENCH_SECONDS:-4}"
rounds="${BENCH_ROUNDS:-5}"
connections="${BENCH_CONNECTIONS:-64}"
soak_seconds="${SOAK_SECONDS:-600}"

gw=http://127.0.0.1:16882
loadgen=target/release/examples/loadgen
out=target/bench
results="$out/results.jsonl"
pids=()
# The process behind each port the runs target: the load generator reports its CPU time.
declare -A server_pid=()
# SIGINT first: Pingora's fast shutdown (on SIGTERM bare Pingora would wait out a five-minute
# grace period). Then SIGTERM for what ignores SIGINT (a script's background jobs do).
cleanup() {
  for pid in "${pids[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
  sleep 1
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

build() {
  scripts/setup.sh --test
  command -v taskset >/dev/null 2>&1 || { apt-get install -y -qq util-linux >/dev/null; }
  # The gateway on its own, as it ships: built with the examples, it would get the
  # test-only features of their dev-dependencies (tokio's mockable clock).
  cargo build --release -p gateway --bin tollgate
  cargo build --release -p gateway --example echo_upstream --example loadgen --example bare_pingora
  mkdir -p "$out"
}

check_ports() { # port...
  for port in "$@"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "bench: 127.0.0.1:$port is in use; stop what listens there first" >&2
      exit 1
    fi
  done
}

wait_ready() { # admin port...
  for admin in "$@"; do
    for _ in $(seq 1 100); do
      curl -fs "http://127.0.0.1:$admin/readyz" >/dev/null 2>&1 && break
      sleep 0.1
    done
    curl -fs "http://127.0.0.1:$admin/readyz" >/dev/null || { echo "bench: a gateway (admin $admin) did not become ready" >&2; cat "$out"/gateway*.log >&2; exit 1; }
  done
}

# Redis, the echo upstream and the gateway; sets $gateway to its process id.
start_gateway() {
  taskset -c 1 redis-server --port 16379 --bind 127.0.0.1 --save "" --appendonly no --logfile "" >"$out/redis.log" 2>&1 &
  pids+=($!)
  taskset -c 1 target/release/examples/echo_upstream 127.0.0.1:18080 >"$out/upstream.log" 2>&1 &
  pids+=($!)
  server_pid[18080]=$!
  TOLLGATE_STORE_URL=redis://127.0.0.1:16379/0 taskset -c 0 target/release/tollgate --config conf/bench.yaml >"$out/gateway.log" 2>&1 &
  gateway=$!
  pids+=($gateway)
  server_pid[16882]=$gateway
}

# The baseline (a bare Pingora proxy to the same upstream, on the gateway's core; only the one
# under load uses it) and the same gateway with an ES256 and with an EdDSA signing key, for the
# token rows `client_credentials_es256` and `client_credentials_eddsa`.
# `in out algorithm key`: the configuration `in` (conf/bench.yaml's, keys named from conf/
# or absolute) signing with `algorithm` and conf/keys/demo-<key>.pem instead, written to `out`.
signing_with() {
  sed -e "s#algorithm: RS256#algorithm: $3#" -e "s#private_key: keys/#private_key: $PWD/conf/keys/#" \
    -e "s#keys/demo-rs256-100.pem#keys/demo-$4.pem#" "$1" >"$2"
  grep -q "algorithm: $3" "$2" && grep -q "keys/demo-$4.pem" "$2" \
    || { echo "bench: $1 does not sign with RS256 and keys/demo-rs256-100.pem" >&2; exit 1; }
}

start_baselines() {
  taskset -c 0 target/release/examples/bare_pingora 127.0.0.1:16883 127.0.0.1:18080 1 >"$out/bare.log" 2>&1 &
  pids+=($!)
  server_pid[16883]=$!
  for variant in "es256 ES256 16884 19091" "ed25519 EdDSA 16885 19092"; do
    set -- $variant
    sed -e "s#127.0.0.1:16882#127.0.0.1:$3#; s#127.0.0.1:19090#127.0.0.1:$4#" conf/bench.yaml >"$out/bench-$1.ports.yaml"
    signing_with "$out/bench-$1.ports.yaml" "$out/bench-$1.yaml" "$2" "$1"
    TOLLGATE_STORE_URL=redis://127.0.0.1:16379/0 taskset -c 0 target/release/tollgate --config "$out/bench-$1.yaml" >"$out/gateway-$1.log" 2>&1 &
    pids+=($!)
    server_pid[$3]=$!
  done
}

run() { # scenario target-url [rate] [label]
  local extra=()
  [ -n "${3:-}" ] && extra+=(--rate "$3")
  [ -n "${4:-}" ] && extra+=(--label "$4")
  local pid=${server_pid[${2##*:}]:-}
  [ -n "$pid" ] && extra+=(--server-pid "$pid")
  taskset -c 1 "$loadgen" run --target "$2" --scenario "$1" --connections "$connections" --seconds "$seconds" --jsonl "${extra[@]}" | tee -a "$results" >&2
}

# The protected route while the configuration reloads every second (POST /reload).
run_reloading() {
  ( for _ in $(seq 1 $(( ${seconds%.*} + 3 ))); do
      curl -fs -X POST http://127.0.0.1:19090/reload >/dev/null || echo "bench: a reload failed" >&2
      sleep 1
    done ) &
  local reloader=$!
  run protected "$gw" "" protected_reloading
  wait "$reloader"
}

median_rps() { # scenario: the median closed-loop rate in $results
  grep "\"rate\":null" "$results" | grep "\"scenario\":\"$1\"" | sed 's/.*"rps":\([0-9.]*\).*/\1/' | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

rss_mb() { # pid
  awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"
}

bench() {
  check_ports 16882 16883 16884 16885 19090 19091 19092 18080 16379
  : > "$results"
  start_gateway
  start_baselines
  wait_ready 19090 19091 19092

  # Closed loop (saturation). The runs compared with each other are interleaved, round after
  # round, and the report takes medians (of the rates, and of the ratios within a round): this
  # machine is shared and noisy. The signing rate is measured on the gateway's core while it
  # idles, before each round.
  taskset -c 0 "$loadgen" sign-rate --key conf/keys/demo-rs256-100.pem --seconds 2 >>"$results"
  for scenario in password authorization_code; do
    run "$scenario" "$gw"
  done
  for round in $(seq 1 "$rounds"); do
    taskset -c 0 "$loadgen" sign-rate --key conf/keys/demo-rs256-100.pem --seconds 2 >>"$results"
    run client_credentials "$gw"
    run client_credentials http://127.0.0.1:16884 "" client_credentials_es256
    run client_credentials http://127.0.0.1:16885 "" client_credentials_eddsa
    run refresh_token "$gw"
    run protected "$gw"
    run protected_opaque "$gw"
    run protected_guarded "$gw"
    run_reloading
    run unprotected "$gw"
    run bare_pingora http://127.0.0.1:16883
    run upstream http://127.0.0.1:18080
  done

  # Latency below saturation: open loop at a quarter and at half of each median maximum.
  for scenario in client_credentials refresh_token protected unprotected; do
    local max
    max=$(median_rps "$scenario")
    for share in 4 2; do
      run "$scenario" "$gw" "$(awk -v m="$max" -v s="$share" 'BEGIN { printf "%d", m / s }')"
    done
  done

  local peak_kb
  peak_kb=$(awk '/VmHWM/ { print $2 }' "/proc/$gateway/status")
  echo "{\"peak_rss_kb\": $peak_kb}" >>"$results"

  echo
  echo "Tollgate load bench: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), ${connections} connections, ${seconds} s per scenario, store: Redis"
  echo
  "$loadgen" report "$results"
}

soak() {
  check_ports 16882 19090 18080 16379
  start_gateway
  wait_ready 19090

  local max rate
  max=$(taskset -c 1 "$loadgen" run --target "$gw" --scenario protected --connections "$connections" --seconds "$seconds" --jsonl | sed 's/.*"rps":\([0-9.]*\).*/\1/')
  rate=$(awk -v m="$max" 'BEGIN { printf "%d", m / 2 }')
  echo "bench: soak: the protected route at ${rate}/s (half of its maximum, ${max}/s) for ${soak_seconds} s" >&2
  taskset -c 1 "$loadgen" run --target "$gw" --scenario protected --connections "$connections" \
    --seconds "$soak_seconds" --rate "$rate" --server-pid "$gateway" --json "$out/soak.json" --svg "$out/soak.svg" >"$out/soak.txt" &
  local load=$!
  pids+=($load)

  # A sample now and every 10 s while the load runs (checked each second, so the soak ends
  # with it).
  local samples=()
  while kill -0 "$load" 2>/dev/null; do
    samples+=("$(rss_mb "$gateway")")
    for _ in $(seq 1 10); do
      kill -0 "$load" 2>/dev/null || break
      sleep 1
    done
  done
  wait "$load"

  echo
  echo "Tollgate soak: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), ${connections} connections, store: Redis"
  echo
  cat "$out/soak.txt"
  echo
  echo "RSS MB every 10 s: ${samples[*]}"
  printf '%s\n' "${samples[@]}" | awk 'NR == 1 { first = $1; max = $1 } { last = $1; if ($1 > max) max = $1 }
    END { printf "RSS MB first %s, last %s, max %s; peak (VmHWM) ", first, last, max }'
  awk '/^VmHWM/ { printf "%.1f\n", $2 / 1024 }' "/proc/$gateway/status"
}

cpu_ticks() { # pid: user + system clock ticks so far
  awk '{ print $14 + $15 }' "/proc/$1/stat"
}

fleet() {
  check_ports 16882 16892 19090 19093 18080 16379
  : > "$results"
  start_gateway
  local redis=${pids[0]}
  sed -e "s#127.0.0.1:16882#127.0.0.1:16892#; s#127.0.0.1:19090#127.0.0.1:19093#" \
      -e "s#private_key: keys/#private_key: $PWD/conf/keys/#" conf/bench.yaml >"$out/bench-b.yaml"
  TOLLGATE_STORE_URL=redis://127.0.0.1:16379/0 taskset -c 1 target/release/tollgate --config "$out/bench-b.yaml" >"$out/gateway-b.log" 2>&1 &
  pids+=($!)
  wait_ready 19090 19093
  local half=$(( connections / 2 )) hz
  hz=$(getconf CLK_TCK)
  rate_of() { sed 's/.*"rps":\([0-9.]*\).*/\1/' "$1"; }
  echo "| scenario | one gateway req/s | Redis CPU | two gateways req/s | Redis CPU | two / one |"
  echo "| --- | --- | --- | --- | --- | --- |"
  for scenario in client_credentials refresh_token protected protected_opaque; do
    local t0 r0 one two t1 r1 a b
    t0=$(date +%s.%N); r0=$(cpu_ticks "$redis")
    taskset -c 1 "$loadgen" run --target "$gw" --scenario "$scenario" --connections "$connections" --seconds "$seconds" --jsonl >"$out/fleet-one.json"
    one=$(rate_of "$out/fleet-one.json")
    local share_one
    share_one=$(awk -v d="$(( $(cpu_ticks "$redis") - r0 ))" -v t0="$t0" -v t1="$(date +%s.%N)" -v hz="$hz" 'BEGIN { printf "%.0f %%", 100 * d / hz / (t1 - t0) }')
    t1=$(date +%s.%N); r1=$(cpu_ticks "$redis")
    "$loadgen" run --target "$gw" --scenario "$scenario" --connections "$half" --seconds "$seconds" --jsonl >"$out/fleet-a.json" &
    a=$!
    "$loadgen" run --target http://127.0.0.1:16892 --scenario "$scenario" --connections "$half" --seconds "$seconds" --jsonl >"$out/fleet-b.json" &
    b=$!
    wait "$a" "$b"
    two=$(awk -v x="$(rate_of "$out/fleet-a.json")" -v y="$(rate_of "$out/fleet-b.json")" 'BEGIN { printf "%.0f", x + y }')
    local share_two
    share_two=$(awk -v d="$(( $(cpu_ticks "$redis") - r1 ))" -v t0="$t1" -v t1="$(date +%s.%N)" -v hz="$hz" 'BEGIN { printf "%.0f %%", 100 * d / hz / (t1 - t0) }')
    cat "$out/fleet-one.json" "$out/fleet-a.json" "$out/fleet-b.json" >>"$results"
    awk -v s="$scenario" -v o="$one" -v so="$share_one" -v t="$two" -v st="$share_two" \
      'BEGIN { printf "| %s | %.0f | %s | %s | %s | %.2f |\n", s, o, so, t, st, t / o }'
  done
}

# The instructions a callgrind dump counts.
callgrind_total() { callgrind_annotate "$1" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }'; }

# `a x b y`: what one more unit costs, from a count of `a` for `x` units and `b` for `y`.
per_unit() { awk -v a="$1" -v x="$2" -v b="$3" -v y="$4" 'BEGIN { printf "%.0f\n", (b - a) / (y - x) }'; }

# Under callgrind: `name port command...` runs the command, drives `scenario` at it (8
# connections) for 2 s and for 8 s, and prints the instructions per request from the two
# counts' difference. The dump of the long run stays in $out/callgrind.<name>.
count_instructions() { # name scenario port command...
  local name=$1 scenario=$2 port=$3
  shift 3
  rm -f "$out/callgrind.$name".*
  valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.$name.%p" "$@" >"$out/valgrind.$name.log" 2>&1 &
  local vg=$!
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.2
  done
  drive() { "$loadgen" run --target "http://127.0.0.1:$port" --scenario "$scenario" --connections 8 --seconds "$1" --warmup 0 --timeout-ms 30000 --jsonl | sed 's/.*"requests":\([0-9]*\).*/\1/'; }
  drive 2 >/dev/null # warm-up: caches filled, connections pooled
  local short long
  callgrind_control -z "$vg" >/dev/null 2>&1; short=$(drive 2); callgrind_control -d "$vg" >/dev/null 2>&1
  callgrind_control -z "$vg" >/dev/null 2>&1; long=$(drive 8); callgrind_control -d "$vg" >/dev/null 2>&1
  # The dumps are written: nothing else is wanted of the process (SIGTERM would wait out the
  # graceful-shutdown period, minutes under valgrind).
  kill -KILL "$vg"; wait "$vg" 2>/dev/null || true
  echo "$short $long" >"$out/callgrind.$name.requests"
  per_unit "$(callgrind_total "$(ls "$out/callgrind.$name".*.1)")" "$short" \
    "$(callgrind_total "$(ls "$out/callgrind.$name".*.2)")" "$long"
}

# `name scenario config`: count_instructions for the gateway with `config`.
gateway_instructions() {
  TOLLGATE_STORE_URL=redis://127.0.0.1:16379/0 count_instructions "$1" "$2" 16882 target/release/tollgate --config "$3"
}

instructions() {
  command -v valgrind >/dev/null 2>&1 || apt-get install -y -qq valgrind >/dev/null
  check_ports 16882 16883 19090 18080 16379
  taskset -c 1 redis-server --port 16379 --bind 127.0.0.1 --save "" --appendonly no --logfile "" >"$out/redis.log" 2>&1 &
  pids+=($!)
  taskset -c 1 target/release/examples/echo_upstream 127.0.0.1:18080 >"$out/upstream.log" 2>&1 &
  pids+=($!)
  # Valgrind slows the gateway down some fifty times: the store gets more time to answer.
  sed -e "s#timeout_ms: 1000#timeout_ms: 20000#" -e "s#private_key: keys/#private_key: $PWD/conf/keys/#" \
    conf/bench.yaml >"$out/bench-callgrind.yaml"
  local bare bare_command=(target/release/examples/bare_pingora 127.0.0.1:16883 127.0.0.1:18080 1)
  bare=$(count_instructions bare bare_pingora 16883 "${bare_command[@]}")
  # `label instructions`: a table row, with its ratio to bare Pingora.
  row() { awk -v s="$1" -v n="$2" -v b="$bare" 'BEGIN { printf "| %s | %d | %.3f |\n", s, n, b / n }'; }
  echo "| row | instructions per request | bare Pingora / row |"
  echo "| --- | --- | --- |"
  row bare_pingora "$bare"
  # What the two forwarding headers every Tollgate route sends cost in Pingora itself.
  row "bare_pingora adding X-Forwarded-For and -Proto" \
    "$(count_instructions bare_forwarded bare_pingora 16883 "${bare_command[@]}" --forwarded)"
  for scenario in unprotected protected protected_opaque; do
    row "$scenario" "$(gateway_instructions "$scenario" "$scenario" "$out/bench-callgrind.yaml")"
  done
  # The unprotected route with one RFC 7239 header, and with none (server.upstream_forwarded_header).
  for style in forwarded none; do
    sed "s/^server:$/server:\n  upstream_forwarded_header: $style/" "$out/bench-callgrind.yaml" >"$out/bench-callgrind-$style.yaml"
    grep -q "upstream_forwarded_header: $style" "$out/bench-callgrind-$style.yaml" || { echo "bench: no server section in conf/bench.yaml" >&2; exit 1; }
    row "unprotected, upstream_forwarded_header: $style" \
      "$(gateway_instructions "unprotected_$style" unprotected "$out/bench-callgrind-$style.yaml")"
  done
  # The token endpoint: client_credentials with the RS256 key against one RS256 signature
  # (aws-lc-rs, key parsed once: `loadgen sign-rate` for 2 s and for 8 s, the difference), and
  # with an ES256 key. The ES256 row is not set against bare Pingora here: a proxied request
  # spends most of its time in the kernel, which callgrind does not count, so that ratio is
  # the throughput table's.
  local runs=() seconds_run
  for seconds_run in 2 8; do
    rm -f "$out/callgrind.sign.$seconds_run"
    valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.sign.$seconds_run" \
      "$loadgen" sign-rate --key conf/keys/demo-rs256-100.pem --seconds "$seconds_run" 2>"$out/valgrind.sign.log" \
      | sed 's/.*"signatures":\([0-9]*\).*/\1/' >"$out/callgrind.sign.$seconds_run.count"
    runs+=("$(callgrind_total "$out/callgrind.sign.$seconds_run")" "$(cat "$out/callgrind.sign.$seconds_run.count")")
  done
  local sign cc
  sign=$(per_unit "${runs[0]}" "${runs[1]}" "${runs[2]}" "${runs[3]}")
  echo "| one RS256 signature (aws-lc-rs, key parsed once) | $sign | |"
  cc=$(gateway_instructions client_credentials client_credentials "$out/bench-callgrind.yaml")
  awk -v n="$cc" -v s="$sign" 'BEGIN { printf "| client_credentials, RS256 | %d | %.3f of it is the signature |\n", n, s / n }'
  signing_with "$out/bench-callgrind.yaml" "$out/bench-callgrind-es256.yaml" ES256 es256
  echo "| client_credentials, ES256 | $(gateway_instructions client_credentials_es256 client_credentials "$out/bench-callgrind-es256.yaml") | |"
  echo
  echo "Where the protected route's instructions go in Tollgate's own code (inclusive, per request):"
  echo
  local short long
  read -r short long <"$out/callgrind.protected.requests"
  # Per function, the long run's count less the short run's, over the requests between them.
  for part in 1 2; do
    callgrind_annotate --inclusive=yes --auto=no --threshold=99.9 "$(ls "$out/callgrind.protected".*."$part")" 2>/dev/null \
      | grep -E '^ *[0-9,]+ \([^)]*\) +[^ ]*(gateway|token_module)/src/' \
      | sed -E "s/^ *([0-9,]+) \([^)]*\) +[^ ]*\/src\/[^:]*:/$part \\1 /; s/ \\[.*//"
  done | awk -v n="$(( long - short ))" '
      { count = $2; gsub(",", "", count); name = $0; sub(/^[12] [0-9,]+ /, "", name)
        if (count > best[$1, name]) best[$1, name] = count; names[name] = 1 }
      END { for (name in names) if (name !~ /EdgeApp|process_new/) printf "%8.0f  %s\n", (best[2, name] - best[1, name]) / n, name }' \
    | sort -rn | head -12
}

build
"$mode"
