#!/usr/bin/env bash
# What a proxy costs the other side, per small GET, in the suite's layout (proxy on core 0, the
# load generator and the nginx origin on core 1, which is the busy core): TCP segments and bytes
# on loopback (`nstat`; a proxy that causes pure ACKs or splits a message shows here), the CPU
# that the load generator and the origin spent per request (utime+stime from /proc), next to the
# proxy's own, and how idle each core was (which of the two limited the request rate).
#
#   benches/profile/peers.sh                                 # ours (the release example)
#   RUNS=4 PROXIES="ours haproxy" benches/profile/peers.sh   # alternate, RUNS rounds
#   H2=1 benches/profile/peers.sh                            # h2c: h2load, 10 conns x 10 streams
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
# idle ticks of cores 0 and 1, "idle0 idle1"
idle() { awk '$1 == "cpu0" { a = $5 } $1 == "cpu1" { b = $5 } END { print a, b }' /proc/stat; }

one_run() {
    # shellcheck source=../loopback.sh
    . "$HERE/../loopback.sh" pingora-peers
    start_suite_layout "$1"
    local load="wrk -t1 -c50 -d${DURATION:-4}s $URL"
    if [ -n "${H2:-}" ]; then
        load="h2load -c10 -m10 -t1 -D ${DURATION:-4} http://127.0.0.1:$H2_PORT/1k"
        taskset -c 1 h2load -c10 -m10 -t1 -D 2 "http://127.0.0.1:$H2_PORT/1k" >/dev/null
    fi
    # the load generator's CPU: the children's user and system time that `times` reports in
    # the shell running it
    local o0 p0 i0 o1 p1 i1 times
    o0="$(ticks "$ORIGIN_WORKER")"; p0="$(ticks "$PROXY_PID")"; i0="$(idle)"
    nstat -n >/dev/null
    times="$(taskset -c 1 bash -c "$load >$WORK/load.txt; times" | tail -1)"
    nstat >"$WORK/nstat.txt"
    o1="$(ticks "$ORIGIN_WORKER")"; p1="$(ticks "$PROXY_PID")"; i1="$(idle)"
    python3 - "$1" "$WORK/load.txt" "$WORK/nstat.txt" "$times" "$o0" "$o1" "$p0" "$p1" \
        "$(getconf CLK_TCK)" "$i0" "$i1" "${DURATION:-4}" <<'PY'
import re, sys
name, load_out, nstat_out, times, o0, o1, p0, p1, hz, i0, i1, secs_run = sys.argv[1:]
out = open(load_out).read()
# wrk: "N requests in"; h2load: "requests: N total, ..., M succeeded"
m = re.search(r"(\d+) requests in", out) or re.search(r"(\d+) succeeded", out)
n = int(m.group(1))
stat = dict(line.split()[:2] for line in open(nstat_out) if line[:1].isalpha())
def secs(t):  # bash `times`: "0m1.234s"
    m, s = re.match(r"(\d+)m([\d.]+)s", t).groups()
    return 60 * int(m) + float(s)
load = sum(secs(t) for t in times.split()[:2])
us = lambda sec: 1e6 * sec / n
tick = 1.0 / int(hz)
# idle share of each core over the run (ticks per second = hz)
idle = [(int(b) - int(a)) * tick / float(secs_run) for a, b in zip(i0.split(), i1.split())]
print(f"{name:8s} {n:8d} requests  segments/req {int(stat.get('TcpOutSegs', 0)) / n:.3f}  "
      f"bytes/req {int(stat.get('IpExtOutOctets', 0)) / n:.0f}  "
      f"us/req: load {us(load):.2f}  origin {us((int(o1) - int(o0)) * tick):.2f}  "
      f"proxy {us((int(p1) - int(p0)) * tick):.2f}  idle: core0 {idle[0]:.0%} core1 {idle[1]:.0%}")
PY
}

for _ in $(seq 1 "${RUNS:-1}"); do
    for proxy in $LIST; do
        (one_run "$proxy")
    done
done
