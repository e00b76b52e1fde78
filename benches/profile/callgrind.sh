#!/usr/bin/env bash
# Deterministic per-request cost of our proxy: instructions (Ir) per request under callgrind.
#
#   benches/profile/callgrind.sh                  # 1 KiB GET, keep-alive, 50 connections
#   BODY=65536 REQS=2000 benches/profile/callgrind.sh
#   OUT=/tmp/cg.out benches/profile/callgrind.sh  # keep the profile for callgrind_annotate
#   PROXY=nginx benches/profile/callgrind.sh      # the same figure for nginx as the proxy
#   PROXY=haproxy benches/profile/callgrind.sh    # ... and for haproxy (one thread)
#   H2=1 benches/profile/callgrind.sh             # h2c with prior knowledge, 10 conns x 10 streams
#                                                 # (combine with PROXY=nginx / PROXY=haproxy)
#   VG_OPTS=--cache-sim=yes benches/profile/callgrind.sh  # also simulated cache misses (D1mr, LLd...)
#
# Starts an nginx origin and the release load_balancer example under valgrind, warms up,
# zeroes the counters, sends exactly REQS requests with h2load (HTTP/1.1, CONNS connections)
# and divides the instructions executed by the proxy by REQS. Wall-clock noise from other
# processes on the machine does not change the figure, which is why it is used to judge
# each hot-path change.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REQS="${REQS:-5000}"
CONNS="${CONNS:-50}"
BODY="${BODY:-1024}"
OUT="${OUT:-}"
# shellcheck source=../loopback.sh
. "$HERE/../loopback.sh" pingora-cg

example_bin "${PROXY:-ours}"

PROXY_PORT="$(free_port)"; H2_PORT="$(free_port)"
mkdir -p "$WORK/www"
head -c "$BODY" /dev/zero | tr '\0' 'a' >"$WORK/www/index.html"
start_origin

RUN_UNDER=(valgrind --tool=callgrind ${VG_OPTS:-} --callgrind-out-file="$WORK/cg.out")
start_proxy "${PROXY:-ours}"
VG=$!
PIDS+=("$VG")
wait_port "$PROXY_PORT"

if [ -n "${H2:-}" ]; then
    # the suite's h2 workload shape: h2c with prior knowledge, CONNS connections x 10 streams
    CONNS="${CONNS_H2:-10}"
    wait_port "$H2_PORT"
    URL="http://127.0.0.1:$H2_PORT/index.html"
    LOAD=(h2load -m10)
else
    URL="http://127.0.0.1:$PROXY_PORT/index.html"
    LOAD=(h2load --h1)
fi
"${LOAD[@]}" -n 1000 -c "$CONNS" "$URL" >/dev/null
callgrind_control -z "$VG" >/dev/null
"${LOAD[@]}" -n "$REQS" -c "$CONNS" "$URL" | grep -E "^requests:|^status codes:" >&2
callgrind_control -d "$VG" >/dev/null
sleep 0.5
# the dump after zeroing is the last "cg.out.N" part
PART="$(ls -t "$WORK"/cg.out* | head -1)"
IR="$(grep -E '^(summary|totals):' "$PART" | head -1 | awk '{print $2}')"
echo "Ir total: $IR, requests: $REQS, Ir/request: $((IR / REQS))"
if [ -n "$OUT" ]; then cp "$PART" "$OUT"; echo "profile: $OUT"; fi
