"""Cost lines of a callgrind output file, with function names resolved.

Shared by cg_top.py and cg_callers.py. Callgrind compresses names: the first use is written
as "(id) name", later uses as "(id)" alone.
"""
import re

_REF = re.compile(r"^\((\d+)\)(?: (.*))?$")


def costs(path):
    """Yield (function, callee, cost): callee is None for the function's own cost, otherwise
    the cost is the inclusive cost of the call from function to callee."""
    names = {}

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
            if line.startswith("fn="):
                cur = name_of(line[3:])
            elif line.startswith("cfn="):
                callee = name_of(line[4:])
            elif line.startswith("calls="):
                in_call = True
            elif line and (line[0].isdigit() or line[0] in "+-*"):
                parts = line.split()
                if len(parts) < 2:
                    continue
                yield cur, (callee if in_call else None), int(parts[1])
                in_call = False
