#!/usr/bin/env bash
# System calls per request of a proxy, counted by `strace -c` on all its threads while h2load
# sends REQS requests (1 KiB GET, keep-alive). strace slows the proxy, so only the counts per
# request are meaningful, not the time.
#
#   benches/profile/syscalls.sh                    # ours (the release load_balancer example)
#   PROXY=haproxy benches/profile/syscalls.sh      # or PROXY=nginx: the suite's configurations
#   H2=1 benches/profile/syscalls.sh               # h2c, 10 connections x 10 streams
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REQS="${REQS:-20000}"
CONNS="${CONNS:-50}"
# shellcheck source=../loopback.sh
. "$HERE/../loopback.sh" pingora-syscalls

example_bin "${PROXY:-ours}"

PROXY_PORT="$(free_port)"; H2_PORT="$(free_port)"
mkdir -p "$WORK/www"
head -c 1024 /dev/zero | tr '\0' 'a' >"$WORK/www/index.html"
start_origin
start_proxy "${PROXY:-ours}"
PROXY_PID=$!
PIDS+=("$PROXY_PID")
wait_port "$PROXY_PORT"
if [ -n "${H2:-}" ]; then
    wait_port "$H2_PORT"
    URL="http://127.0.0.1:$H2_PORT/index.html"; LOAD=(h2load -m10); CONNS="${CONNS_H2:-10}"
else
    URL="http://127.0.0.1:$PROXY_PORT/index.html"; LOAD=(h2load --h1)
fi
"${LOAD[@]}" -n 2000 -c "$CONNS" "$URL" >/dev/null

strace -f -c -o "$WORK/strace.txt" -p "$PROXY_PID" 2>/dev/null &
STRACE=$!
sleep 1
"${LOAD[@]}" -n "$REQS" -c "$CONNS" "$URL" | grep -E "^requests:" >&2
kill -INT "$STRACE"
wait "$STRACE" || true
python3 - "$WORK/strace.txt" "$REQS" <<'PY'
import sys

reqs = int(sys.argv[2])
total = 0
print(f"{'syscall':20s} {'calls/req':>10s} {'errors/req':>11s}")
for line in open(sys.argv[1]):
    cols = line.split()
    # "% time  seconds  usecs/call  calls  [errors]  syscall"
    if len(cols) < 5 or not cols[0][0].isdigit() or cols[-1] == "total":
        continue
    calls = int(cols[3])
    errors = int(cols[4]) if len(cols) == 6 else 0
    total += calls
    print(f"{cols[-1]:20s} {calls / reqs:10.3f} {errors / reqs:11.3f}")
print(f"{'all':20s} {total / reqs:10.3f}")
PY
