#!/usr/bin/env python3
"""Exclusive and inclusive instruction counts per function from a callgrind output file.

    benches/profile/cg_top.py callgrind.out [N] [DIVISOR]

Prints the top N functions (default 40) by self cost, then by inclusive cost; with DIVISOR
(e.g. the request count) also per request. Written because callgrind_annotate 3.19 folds
everything into `clone` for dumps taken with callgrind_control after zeroing.
"""
import re
import sys
from collections import defaultdict

path = sys.argv[1]
top = int(sys.argv[2]) if len(sys.argv) > 2 else 40
div = float(sys.argv[3]) if len(sys.argv) > 3 else 1.0
names = {}
selfc = defaultdict(int)
incl = defaultdict(int)
cur = None
in_call = False
call_target = None
ref = re.compile(r"^\((\d+)\)(?: (.*))?$")


def name_of(s):
    m = ref.match(s)
    if not m:
        return s
    i, n = m.group(1), m.group(2)
    if n:
        names[i] = n
    return names.get(i, "?" + i)


with open(path, errors="replace") as f:
    for line in f:
        line = line.rstrip("\n")
        if line.startswith("fn="):
            cur = name_of(line[3:])
        elif line.startswith("cfn="):
            call_target = name_of(line[4:])
        elif line.startswith("calls="):
            in_call = True
        elif line and (line[0].isdigit() or line[0] in "+-*"):
            parts = line.split()
            if len(parts) < 2:
                continue
            cost = int(parts[1])
            if in_call:
                incl[cur] += cost
                in_call = False
            else:
                selfc[cur] += cost
                incl[cur] += cost

total = sum(selfc.values())
print(f"total Ir {total:,} ({total / div:,.0f} per unit)")
print("-- self --")
for n, c in sorted(selfc.items(), key=lambda x: -x[1])[:top]:
    print(f"{c / div:12,.0f} {100 * c / total:5.1f}%  {n[:150]}")
print("-- inclusive (approximate for recursion) --")
for n, c in sorted(incl.items(), key=lambda x: -x[1])[:top]:
    print(f"{c / div:12,.0f} {100 * c / total:5.1f}%  {n[:150]}")
