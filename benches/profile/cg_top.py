#!/usr/bin/env python3
"""Exclusive and inclusive instruction counts per function from a callgrind output file.

    benches/profile/cg_top.py callgrind.out [N] [DIVISOR]

Prints the top N functions (default 40) by self cost (EVENT=I1mr, EVENT=CEst, ... for other
events of a --cache-sim=yes profile), then by inclusive cost; with DIVISOR
(e.g. the request count) also per request. Written because callgrind_annotate 3.19 folds
everything into `clone` for dumps taken with callgrind_control after zeroing.
"""
import os
import sys
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cgparse import costs  # noqa: E402

path = sys.argv[1]
top = int(sys.argv[2]) if len(sys.argv) > 2 else 40
div = float(sys.argv[3]) if len(sys.argv) > 3 else 1.0
selfc = defaultdict(int)
incl = defaultdict(int)
for fn, callee, cost in costs(path):
    incl[fn] += cost
    if callee is None:
        selfc[fn] += cost

total = sum(selfc.values())
print(f"total Ir {total:,} ({total / div:,.0f} per unit)")
print("-- self --")
for n, c in sorted(selfc.items(), key=lambda x: -x[1])[:top]:
    print(f"{c / div:12,.0f} {100 * c / total:5.1f}%  {n[:150]}")
print("-- inclusive (approximate for recursion) --")
for n, c in sorted(incl.items(), key=lambda x: -x[1])[:top]:
    print(f"{c / div:12,.0f} {100 * c / total:5.1f}%  {n[:150]}")
