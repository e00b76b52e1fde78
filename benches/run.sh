#!/usr/bin/env bash
# One-command benchmark suite: our load_balancer example vs nginx vs haproxy on loopback.
#
#   benches/run.sh                              # full suite: 3 rounds x 10 s per proxy/workload
#   DURATION=5 ROUNDS=1 IDLE_CONNS=2000 benches/run.sh   # a quick look
#   WORKLOADS=small,large PROXIES=ours,nginx benches/run.sh
#   REPEAT=3 benches/run.sh                     # 3 consecutive full runs + how often each target held
#
# Installs nginx, haproxy, wrk, h2load (nghttp2-client), curl and taskset with apt-get when
# missing (as root), builds the example in release mode, then runs benches/load/suite.py,
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

echo "building the load_balancer example (release)..." >&2
(cd "$ROOT" && cargo build --release -q -p pingora-examples --example load_balancer)
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
import json, sys
runs = [json.load(open(p)) for p in sys.argv[1:]]
print(f"\ntargets met over {len(runs)} consecutive runs:")
for i, t in enumerate(runs[0]["targets"]):
    met = sum(1 for r in runs if i < len(r["targets"]) and r["targets"][i]["met"])
    print(f"  {met}/{len(runs)}  {t['target']}")
PY
