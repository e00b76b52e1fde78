#!/usr/bin/env python3
"""Who calls a function, with inclusive cost per caller, from a callgrind output file.

    benches/profile/cg_callers.py callgrind.out SUBSTRING [DIVISOR]
"""
import os
import sys
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cgparse import costs  # noqa: E402

path, needle = sys.argv[1], sys.argv[2]
div = float(sys.argv[3]) if len(sys.argv) > 3 else 1.0
edges = defaultdict(int)
for caller, callee, cost in costs(path):
    if callee is not None and needle in callee:
        edges[(caller, callee)] += cost
for (caller, callee), c in sorted(edges.items(), key=lambda x: -x[1])[:30]:
    print(f"{c / div:10,.0f}  {caller[:110]}  ->  {callee[:60]}")
