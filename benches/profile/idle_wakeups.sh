#!/usr/bin/env bash
# Wake-ups per second of each thread of our proxy while CONNS keep-alive connections sit idle
# (each has made one request): the voluntary context switches in /proc over SECONDS.
#
#   benches/profile/idle_wakeups.sh
#   BIN=/path/to/another/load_balancer benches/profile/idle_wakeups.sh   # compare two builds
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../loopback.sh
. "$HERE/../loopback.sh" pingora-idle-wakeups

example_bin

PROXY_PORT="$(free_port)"; H2_PORT="$(free_port)"
mkdir -p "$WORK/www"
echo hello >"$WORK/www/index.html"
start_origin
start_proxy ours
PROXY_PID=$!
PIDS+=("$PROXY_PID")
wait_port "$PROXY_PORT"
python3 - "$PROXY_PORT" "$PROXY_PID" "${CONNS:-100}" "${SECONDS_IDLE:-10}" <<'PY'
import glob
import socket
import sys
import time

port, pid, conns, seconds = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
held = []
for _ in range(conns):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n")
    s.recv(4096)
    held.append(s)


def switches():
    """Voluntary context switches per thread name."""
    out = {}
    for task in glob.glob(f"/proc/{pid}/task/*"):
        name = open(task + "/comm").read().strip()
        line = next(l for l in open(task + "/status") if l.startswith("voluntary_ctxt"))
        out[name] = out.get(name, 0) + int(line.split()[1])
    return out


time.sleep(3)  # past the park delay of the idle connections
before = switches()
time.sleep(seconds)
after = switches()
print(f"{conns} idle keep-alive connections, {seconds} s")
for name in sorted(after):
    print(f"  {name:20s} {(after[name] - before.get(name, 0)) / seconds:7.1f} wake-ups/s")
PY
