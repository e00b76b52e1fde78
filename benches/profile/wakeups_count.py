#!/usr/bin/env python3
"""Counts, per 1,000 requests, the scheduler events `perf script` printed for wakeups.sh.

usage: perf script ... | wakeups_count.py <proxy name> <req/s> <seconds recorded>
The proxy runs on core 0; wrk and the origin (both named so by the kernel) on core 1.
"""
import re
import sys

EVENT = re.compile(r"\s*.*?\s+\d+\s+\[(\d+)\]\s+[\d.]+:\s+sched:(\w+):\s+(.*)")
WOKEN = re.compile(r"comm=(.*?) pid=.*target_cpu=(\d+)")
SWITCH = re.compile(r"prev_comm=.*? ==> next_comm=(.*?) next_pid")

name, rps, seconds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
counts = {"wake_wrk": 0, "wake_origin": 0, "proxy_sleeps": 0, "core1_switches": 0}
for line in sys.stdin:
    m = EVENT.match(line)
    if not m:
        continue
    cpu, event, detail = m.groups()
    cpu = int(cpu)
    if event == "sched_waking" and cpu == 0:
        woken = WOKEN.search(detail)
        # woken onto core 1: wrk or the origin (an nginx proxy runs on core 0)
        if woken and int(woken.group(2)) == 1:
            if woken.group(1) == "wrk":
                counts["wake_wrk"] += 1
            elif woken.group(1) == "nginx":
                counts["wake_origin"] += 1
    elif event == "sched_switch":
        nxt = SWITCH.search(detail)
        if cpu == 0 and nxt and nxt.group(1) == "swapper/0":
            counts["proxy_sleeps"] += 1
        if cpu == 1:
            counts["core1_switches"] += 1
per_k = rps * seconds / 1000
print(f"{name:10s} {rps:8.0f} req/s  " + "  ".join(f"{k} {v / per_k:6.1f}" for k, v in counts.items()))
