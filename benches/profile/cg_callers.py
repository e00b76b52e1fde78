#!/usr/bin/env python3
"""Who calls a function, with inclusive cost per caller, from a callgrind output file.

    benches/profile/cg_callers.py callgrind.out SUBSTRING [DIVISOR]
"""
import re
import sys
from collections import defaultdict

path, needle = sys.argv[1], sys.argv[2]
div = float(sys.argv[3]) if len(sys.argv) > 3 else 1.0
names = {}
edges = defaultdict(int)
cur = target = None
in_call = False
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
            target = name_of(line[4:])
        elif line.startswith("calls="):
            in_call = True
        elif in_call and line and (line[0].isdigit() or line[0] in "+-*"):
            parts = line.split()
            if needle in target:
                edges[(cur, target)] += int(parts[1])
            in_call = False
for (caller, callee), c in sorted(edges.items(), key=lambda x: -x[1])[:30]:
    print(f"{c / div:10,.0f}  {caller[:110]}  ->  {callee[:60]}")
