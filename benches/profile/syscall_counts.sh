#!/usr/bin/env bash
# System calls per request of the proxy, wrk and the origin, in the suite's layout (proxy on
# core 0; wrk and the nginx origin on core 1), counted by the kernel's syscall tracepoints with
# `perf stat`. Unlike `syscalls.sh` (strace) this does not slow the proxy down, so the counts
# are those of a proxy at full speed: how events batch, and so how often each process calls
# `epoll_wait`, depends on that speed. Counts are per request the origin served (its
# `recvfrom` calls).
#
#   benches/profile/syscall_counts.sh                          # ours (the release example)
#   RUNS=2 PROXIES="ours haproxy nginx" benches/profile/syscall_counts.sh   # alternate
#   H2=1 benches/profile/syscall_counts.sh                     # h2c: h2load, 10 conns x 10 streams
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
command -v perf >/dev/null || { echo "needs perf (apt-get install linux-perf)" >&2; exit 1; }
LIST="${PROXIES:-${PROXY:-ours}}"
# shellcheck source=../loopback.sh
. "$HERE/../loopback.sh" pingora-syscall-counts
example_bin "$LIST"
export BIN

EVENTS=raw_syscalls:sys_enter
for call in epoll_wait recvfrom sendto read write writev epoll_ctl; do
    EVENTS="$EVENTS,syscalls:sys_enter_$call"
done

one_run() {
    # shellcheck source=../loopback.sh
    . "$HERE/../loopback.sh" pingora-syscall-counts
    start_suite_layout "$1"
    local gen=wrk
    if [ -n "${H2:-}" ]; then
        gen=h2load
        taskset -c 1 h2load -c10 -m10 -t1 -D 5 "http://127.0.0.1:$H2_PORT/1k" >/dev/null &
    else
        taskset -c 1 wrk -t1 -c50 -d5s "$URL" >/dev/null &
    fi
    local wrk=$! who
    sleep 1
    for who in "wrk:$(pgrep -n -x $gen)" "origin:$ORIGIN_WORKER" "proxy:$PROXY_PID"; do
        perf stat -x, -e "$EVENTS" -p "${who#*:}" -o "$WORK/${who%%:*}.stat" -- sleep 3 &
    done
    wait "$wrk" || true
    python3 - "$1" "$WORK" <<'PY'
import sys

name, work = sys.argv[1], sys.argv[2]


def counts(who):
    out = {}
    for line in open(f"{work}/{who}.stat"):
        parts = line.strip().split(",")
        if len(parts) > 2 and parts[0].replace(".", "").isdigit():
            out[parts[2].split(":")[-1].replace("sys_enter_", "")] = float(parts[0])
    return out


per = {who: counts(who) for who in ("wrk", "origin", "proxy")}
requests = per["origin"].get("recvfrom", 0)
for who, c in per.items():
    shown = " ".join(f"{k} {v / requests:.3f}" for k, v in c.items() if v and k != "sys_enter")
    print(f"{name:8} {who:7} all {c.get('sys_enter', 0) / requests:.2f}  {shown}")
PY
}

for _ in $(seq 1 "${RUNS:-1}"); do
    for proxy in $LIST; do
        (one_run "$proxy")
    done
done
