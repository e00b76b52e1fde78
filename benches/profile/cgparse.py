"""Cost lines of a callgrind output file, with function names resolved.

Shared by cg_top.py and cg_callers.py. Callgrind compresses names: the first use is written
as "(id) name", later uses as "(id)" alone.
"""
import os
import re

_REF = re.compile(r"^\((\d+)\)(?: (.*))?$")


def _weigh(events):
    """How one cost line becomes a number: the event named by $EVENT (default Ir), or, with
    EVENT=CEst, callgrind's cycle estimate Ir + 10 x L1 misses + 100 x LL misses (needs a
    profile taken with --cache-sim=yes)."""
    want = os.environ.get("EVENT", "Ir")
    if want == "CEst":
        l1 = [events.index(e) for e in ("I1mr", "D1mr", "D1mw") if e in events]
        ll = [events.index(e) for e in ("ILmr", "DLmr", "DLmw") if e in events]

        def weigh(vals):
            def at(i):
                return vals[i] if i < len(vals) else 0

            return at(0) + 10 * sum(at(i) for i in l1) + 100 * sum(at(i) for i in ll)

        return weigh
    i = events.index(want)
    return lambda vals: vals[i] if i < len(vals) else 0


def costs(path):
    """Yield (function, callee, cost): callee is None for the function's own cost, otherwise
    the cost is the inclusive cost of the call from function to callee."""
    names = {}
    weigh = lambda vals: vals[0]  # noqa: E731 (Ir until the "events:" line says otherwise)

    def name_of(s):
        m = _REF.match(s)
        if not m:
            return s
        i, n = m.group(1), m.group(2)
        if n:
            names[i] = n
        return names.get(i, "?" + i)

    cur = callee = None
    in_call = False
    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("events:"):
                weigh = _weigh(line.split()[1:])
            elif line.startswith("fn="):
                cur = name_of(line[3:])
            elif line.startswith("cfn="):
                callee = name_of(line[4:])
            elif line.startswith("calls="):
                in_call = True
            elif line and (line[0].isdigit() or line[0] in "+-*"):
                parts = line.split()
                if len(parts) < 2:
                    continue
                yield cur, (callee if in_call else None), weigh([int(v) for v in parts[1:]])
                in_call = False
