#!/usr/bin/env bash
# Wake-ups a proxy causes per 1,000 small GETs, in the suite's layout: the proxy on core 0, the
# origin (nginx) and wrk on core 1. `perf record` of the scheduler's tracepoints over the middle
# of a wrk run counts, per 1,000 requests:
#   wake_wrk, wake_origin  sleeping peers on core 1 the proxy woke with its sends;
#   proxy_sleeps           times core 0 went idle (the proxy waits in epoll_wait);
#   core1_switches         context switches on core 1 (wrk and the origin taking turns);
# and, on a second line, how much of the time core 0 was idle and how long its idle gaps were.
# Every wake-up of a sleeping peer is a context switch on its core and often an interrupt from
# ours; a proxy that sends in bursts wakes its peers once per burst. The counts move with the
# machine's load much less than req/s does, so they compare proxies and builds on a noisy VM.
#
#   benches/profile/wakeups.sh                      # ours (the release load_balancer example)
#   PROXY=haproxy benches/profile/wakeups.sh        # or nginx, in the suite's configurations
#   RUNS=3 PROXIES="ours haproxy" benches/profile/wakeups.sh   # alternate, RUNS rounds
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
command -v perf >/dev/null || { echo "needs perf (apt-get install linux-perf)" >&2; exit 1; }
LIST="${PROXIES:-${PROXY:-ours}}"
# shellcheck source=../loopback.sh
. "$HERE/../loopback.sh" pingora-wakeups
example_bin "$LIST"
export BIN

one_run() {
    # shellcheck source=../loopback.sh
    . "$HERE/../loopback.sh" pingora-wakeups
    start_suite_layout "$1"
    taskset -c 1 wrk -t1 -c50 -d"${DURATION:-4}"s "$URL" >"$WORK/wrk.txt" &
    local wrk=$!
    sleep 1
    perf record -q -a -e sched:sched_waking,sched:sched_switch -o "$WORK/perf.data" -- sleep 2 \
        2>/dev/null
    wait "$wrk"
    perf script -i "$WORK/perf.data" 2>/dev/null | python3 "$HERE/wakeups_count.py" "$1" \
        "$(grep -o 'Requests/sec: *[0-9.]*' "$WORK/wrk.txt" | grep -o '[0-9.]*$')" 2
}

for _ in $(seq 1 "${RUNS:-1}"); do
    for proxy in $LIST; do
        (one_run "$proxy")
    done
done
