#!/usr/bin/env python3
"""Counts, per 1,000 requests, the scheduler events `perf script` printed for wakeups.sh.

usage: perf script ... | wakeups_count.py <proxy name> <req/s> <seconds recorded>
The proxy runs on core 0; wrk and the origin (both named so by the kernel) on core 1.
A second line gives core 0's idle share and the length of its idle gaps (median, p10, p90).
"""
import re
import sys

EVENT = re.compile(r"\s*.*?\s+\d+\s+\[(\d+)\]\s+([\d.]+):\s+sched:(\w+):\s+(.*)")
WOKEN = re.compile(r"comm=(.*?) pid=.*target_cpu=(\d+)")
SWITCH = re.compile(r"prev_comm=(.*?) prev_pid=.* ==> next_comm=(.*?) next_pid")

name, rps, seconds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
counts = {"wake_wrk": 0, "wake_origin": 0, "proxy_sleeps": 0, "core1_switches": 0}
gaps, idle_since = [], None  # core 0's idle periods, in seconds
for line in sys.stdin:
    m = EVENT.match(line)
    if not m:
        continue
    cpu, ts, event, detail = m.groups()
    cpu, ts = int(cpu), float(ts)
    if event == "sched_waking" and cpu == 0:
        woken = WOKEN.search(detail)
        # woken onto core 1: wrk or the origin (an nginx proxy runs on core 0)
        if woken and int(woken.group(2)) == 1:
            if woken.group(1) == "wrk":
                counts["wake_wrk"] += 1
            elif woken.group(1) == "nginx":
                counts["wake_origin"] += 1
    elif event == "sched_switch":
        sw = SWITCH.search(detail)
        if cpu == 0 and sw and sw.group(2) == "swapper/0":
            counts["proxy_sleeps"] += 1
            idle_since = ts
        elif cpu == 0 and sw and sw.group(1) == "swapper/0" and idle_since is not None:
            gaps.append(ts - idle_since)
            idle_since = None
        if cpu == 1:
            counts["core1_switches"] += 1
per_k = rps * seconds / 1000
print(f"{name:10s} {rps:8.0f} req/s  " + "  ".join(f"{k} {v / per_k:6.1f}" for k, v in counts.items()))
if gaps:
    gaps.sort()
    us = [1e6 * gaps[int(len(gaps) * q)] for q in (0.5, 0.1, 0.9)]
    short = sum(1 for g in gaps if g <= 20e-6) / len(gaps)
    print(f"{'':10s} core 0 idle {100 * sum(gaps) / seconds:4.1f}% in {len(gaps)} gaps, "
          f"median {us[0]:.0f} us (p10 {us[1]:.0f}, p90 {us[2]:.0f}), {100 * short:.0f}% <= 20 us")
