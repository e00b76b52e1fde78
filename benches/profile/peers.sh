#!/usr/bin/env bash
# What a proxy costs the other side, per small GET, in the suite's layout (proxy on core 0, wrk
# and the nginx origin on core 1, which is the busy core): TCP segments and bytes on loopback
# (`nstat`; a proxy that causes pure ACKs or splits a message shows here), and the CPU that wrk
# and the origin spent per request (utime+stime from /proc), next to the proxy's own.
#
#   benches/profile/peers.sh                                 # ours (the release example)
#   RUNS=4 PROXIES="ours haproxy" benches/profile/peers.sh   # alternate, RUNS rounds
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
command -v nstat >/dev/null || { echo "needs nstat (apt-get install iproute2)" >&2; exit 1; }
LIST="${PROXIES:-${PROXY:-ours}}"
# shellcheck source=../loopback.sh
. "$HERE/../loopback.sh" pingora-peers
example_bin "$LIST"
export BIN

# utime+stime of a process, all threads, in clock ticks
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

one_run() {
    # shellcheck source=../loopback.sh
    . "$HERE/../loopback.sh" pingora-peers
    start_suite_layout "$1"
    # wrk's CPU: the children's user and system time that `times` reports in the shell running it
    local o0 p0 o1 p1 times
    o0="$(ticks "$ORIGIN_WORKER")"; p0="$(ticks "$PROXY_PID")"
    nstat -n >/dev/null
    times="$(taskset -c 1 bash -c "wrk -t1 -c50 -d${DURATION:-4}s $URL >$WORK/wrk.txt; times" \
        | tail -1)"
    nstat >"$WORK/nstat.txt"
    o1="$(ticks "$ORIGIN_WORKER")"; p1="$(ticks "$PROXY_PID")"
    python3 - "$1" "$WORK/wrk.txt" "$WORK/nstat.txt" "$times" "$o0" "$o1" "$p0" "$p1" \
        "$(getconf CLK_TCK)" <<'PY'
import re, sys
name, wrk_out, nstat_out, times, o0, o1, p0, p1, hz = sys.argv[1:]
n = int(re.search(r"(\d+) requests in", open(wrk_out).read()).group(1))
stat = dict(line.split()[:2] for line in open(nstat_out) if line[:1].isalpha())
def secs(t):  # bash `times`: "0m1.234s"
    m, s = re.match(r"(\d+)m([\d.]+)s", t).groups()
    return 60 * int(m) + float(s)
wrk = sum(secs(t) for t in times.split()[:2])
us = lambda sec: 1e6 * sec / n
tick = 1.0 / int(hz)
print(f"{name:8s} {n:8d} requests  segments/req {int(stat.get('TcpOutSegs', 0)) / n:.3f}  "
      f"bytes/req {int(stat.get('IpExtOutOctets', 0)) / n:.0f}  "
      f"us/req: wrk {us(wrk):.2f}  origin {us((int(o1) - int(o0)) * tick):.2f}  "
      f"proxy {us((int(p1) - int(p0)) * tick):.2f}")
PY
}

for _ in $(seq 1 "${RUNS:-1}"); do
    for proxy in $LIST; do
        (one_run "$proxy")
    done
done
