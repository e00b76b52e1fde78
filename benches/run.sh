#!/usr/bin/env bash
# One-command benchmark suite: our load_balancer example vs nginx vs haproxy on loopback.
#
#   benches/run.sh                              # full suite: 3 rounds x 10 s per proxy/workload
#   DURATION=5 ROUNDS=1 IDLE_CONNS=2000 benches/run.sh   # a quick look
#   WORKLOADS=small,large PROXIES=ours,nginx benches/run.sh
#   REPEAT=3 benches/run.sh                     # 3 consecutive full runs + how often each target held
#   PGO=0 benches/run.sh                        # our plain release build instead of the PGO one
#   PROXIES=ours,ours-plain,nginx,haproxy benches/run.sh   # both of our builds side by side
#
# Installs nginx, haproxy, wrk, h2load (nghttp2-client), curl and taskset with apt-get when
# missing (as root), builds the example in release mode with PGO (benches/pgo.sh, which also
# installs the llvm-profdata matching rustc), then runs benches/load/suite.py,
# which prints the table and writes benches/results/latest.json (override with OUT=...).
# Needs 2+ cores and an otherwise idle machine for the figures to mean anything.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"

need() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
missing=()
need nginx || missing+=(nginx-light)
need haproxy || missing+=(haproxy)
need wrk || missing+=(wrk)
need h2load || missing+=(nghttp2-client)
need curl || missing+=(curl)
need taskset || missing+=(util-linux)
need python3 || missing+=(python3)
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" != "0" ]; then
        echo "missing: ${missing[*]} (run as root to install them with apt-get)" >&2
        exit 1
    fi
    echo "installing ${missing[*]}..." >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# the idle-connections workload holds 10,000 sockets in the proxies and the client
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# Our proxy is measured as a production build: release profile (fat LTO) plus profile-guided
# optimization trained on these request shapes (benches/pgo.sh). PGO=0 measures the plain
# release build; PROXIES=ours,ours-plain,nginx,haproxy measures both side by side.
PGO="${PGO:-1}"
if [ -n "${OURS_BIN:-}" ]; then
    export OURS_BUILD="${OURS_BUILD:-$OURS_BIN}"
elif [ "$PGO" = "1" ]; then
    echo "building the load_balancer example with PGO (benches/pgo.sh, ~8 minutes)..." >&2
    if OURS_BIN="$("$HERE/pgo.sh")"; then
        export OURS_BIN OURS_BUILD="release (fat LTO) + PGO"
    else
        echo "the PGO build failed (above): measuring the plain release build instead" >&2
        OURS_BIN=""
    fi
fi
if [ -z "${OURS_BIN:-}" ] || [[ ",${PROXIES:-}," == *",ours-plain,"* ]]; then
    echo "building the load_balancer example (release)..." >&2
    (cd "$ROOT" && cargo build --release -q -p pingora-examples --example load_balancer)
fi
if [ -z "${OURS_BIN:-}" ]; then
    unset OURS_BIN
    export OURS_BUILD="release (fat LTO), no PGO"
fi
REPEAT="${REPEAT:-1}"
if [ "$REPEAT" -le 1 ]; then
    exec python3 "$HERE/load/suite.py"
fi
# consecutive full runs, each with its own JSON, then how often each target held
outs=()
for i in $(seq 1 "$REPEAT"); do
    echo "== run $i of $REPEAT" >&2
    out="$ROOT/benches/results/run-$i.json"
    OUT="$out" python3 "$HERE/load/suite.py"
    outs+=("$out")
done
python3 - "${outs[@]}" <<'PY'
import json, statistics, sys
runs = [json.load(open(p)) for p in sys.argv[1:]]
print(f"\ntargets met over {len(runs)} consecutive runs:")
for i, t in enumerate(runs[0]["targets"]):
    met = sum(1 for r in runs if i < len(r["targets"]) and r["targets"][i]["met"])
    print(f"  {met}/{len(runs)}  {t['target']}")
# every round of every run, ours against each proxy measured in the same round
pooled = {}
for r in runs:
    for w, by_other in (r.get("paired_ratios") or {}).items():
        for other, figures in by_other.items():
            for key, f in figures.items():
                pooled.setdefault((w, other, key), []).append(f)
if pooled:
    print("\nround by round over all runs (median ratio, rounds with ours ahead):")
    for (w, other, key), fs in sorted(pooled.items()):
        values = [v for f in fs for v in f["values"]]
        print(f"  {w:6} {other:14} {key:15} {statistics.median(values):.2f}  "
              f"ahead {sum(f['ahead'] for f in fs)}/{len(values)}")
for i, r in enumerate(runs, 1):
    steal = r.get("steal") or {}
    if steal.get("disturbed"):
        print(f"run {i}: {steal['disturbed']} of {steal['measured']} measured runs stayed "
              f"above the steal limit (worst {steal['worst_pct']:.1f}%)")
PY
