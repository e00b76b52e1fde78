#!/usr/bin/env bash
# Loopback load comparison: our load_balancer example vs nginx as the same reverse proxy.
#
#   benches/load/run.sh                 # 3 rounds of 10 s per proxy
#   DURATION=5s ROUNDS=1 benches/load/run.sh
#
# Layout on a 2-core machine: the proxy under test is pinned to core 0; wrk and the origin
# (nginx serving a 1 KiB file, 1 worker) share core 1. Proxies alternate within each round.
# For each run it reads the proxy's utime+stime from /proc/<pid>/stat before and after, and
# reports requests/s, p99 latency and CPU microseconds per request, then ours/nginx ratios.
# Not part of CI: it needs idle cores to mean anything.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
DURATION="${DURATION:-10s}"
ROUNDS="${ROUNDS:-3}"
CONNS="${CONNS:-50}"
WARMUP="${WARMUP:-2s}"

need() { command -v "$1" >/dev/null 2>&1; }
if ! need nginx || ! need wrk || ! need taskset; then
    if [ "$(id -u)" = "0" ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light wrk util-linux >/dev/null ||
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx wrk util-linux >/dev/null
    else
        echo "need nginx, wrk and taskset (run as root to install them)" >&2
        exit 1
    fi
fi
NGINX="$(command -v nginx)"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_port() {
    local port=$1
    for _ in $(seq 1 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    echo "nothing listening on $port" >&2
    return 1
}

cpu_ticks() { # utime + stime of a pid (all threads), in clock ticks
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}

WORK="$(mktemp -d /tmp/pingora-load.XXXXXX)"
PIDS=()
cleanup() {
    # nginx: SIGTERM is its fast shutdown. Ours: SIGKILL, as SIGTERM would wait out the grace
    # period and background jobs of a script ignore SIGINT.
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    [ -n "${OURS_PID:-}" ] && kill -KILL "$OURS_PID" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "building the load_balancer example (release)..."
(cd "$ROOT" && cargo build --release -q -p pingora-examples --example load_balancer)
OURS_BIN="$ROOT/target/release/examples/load_balancer"

ORIGIN_PORT="$(free_port)"
NGINX_PORT="$(free_port)"
OURS_PORT="$(free_port)"
mkdir -p "$WORK/www" "$WORK/tmp"
head -c 1024 /dev/urandom | base64 -w0 | head -c 1024 >"$WORK/www/index.html"
# nginx workers run as an unprivileged user when started by root
chmod 755 "$WORK" "$WORK/www" && chmod 644 "$WORK/www/index.html" && chmod 1777 "$WORK/tmp"

render() {
    sed -e "s#@DIR@#$WORK#g" -e "s#@ORIGIN_PORT@#$ORIGIN_PORT#g" -e "s#@NGINX_PORT@#$NGINX_PORT#g" "$1" >"$2"
}
render "$HERE/origin.nginx.conf.in" "$WORK/origin.conf"
render "$HERE/proxy.nginx.conf.in" "$WORK/proxy.conf"

taskset -c 1 "$NGINX" -e "$WORK/origin.error.log" -p "$WORK" -c "$WORK/origin.conf" &
PIDS+=($!)
wait_port "$ORIGIN_PORT"

taskset -c 0 "$NGINX" -e "$WORK/proxy.error.log" -p "$WORK" -c "$WORK/proxy.conf" &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
wait_port "$NGINX_PORT"

UPSTREAMS="127.0.0.1:$ORIGIN_PORT" LISTEN="127.0.0.1:$OURS_PORT" UPSTREAM_HOST=localhost \
    taskset -c 0 "$OURS_BIN" -c "$HERE/conf.yaml" >"$WORK/ours.log" 2>&1 &
OURS_PID=$!
PIDS+=("$OURS_PID")
wait_port "$OURS_PORT"

for port in "$OURS_PORT" "$NGINX_PORT"; do
    code="$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/index.html")"
    [ "$code" = "200" ] || { echo "proxy on $port answered $code" >&2; exit 1; }
done

TICK="$(getconf CLK_TCK)"
RESULTS="$WORK/results.tsv"
: >"$RESULTS"

# one measured run: name port pid -> appends "name rps p99_ms cpu_us_per_req"
measure() {
    local name=$1 port=$2 pid=$3 out before after
    taskset -c 1 wrk -t1 -c"$CONNS" -d"$WARMUP" "http://127.0.0.1:$port/index.html" >/dev/null
    before="$(cpu_ticks "$pid")"
    out="$(taskset -c 1 wrk -t1 -c"$CONNS" -d"$DURATION" --latency "http://127.0.0.1:$port/index.html")"
    after="$(cpu_ticks "$pid")"
    echo "$out" | awk -v name="$name" -v before="$before" -v after="$after" -v tick="$TICK" '
        function ms(v) {
            if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
            if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
            if (v ~ /s$/) return substr(v, 1, length(v) - 1) * 1000
            return v + 0
        }
        /requests in/ { reqs = $1 }
        /Requests\/sec/ { rps = $2 }
        $1 == "99%" { p99 = ms($2) }
        /Non-2xx/ { bad = $NF }
        END {
            cpu = (after - before) / tick * 1e6 / (reqs > 0 ? reqs : 1)
            printf "%s\t%.0f\t%.3f\t%.1f\t%d\n", name, rps, p99, cpu, bad
        }' | tee -a "$RESULTS"
}

printf "proxy\treq/s\tp99_ms\tcpu_us/req\tnon2xx\n"
for round in $(seq 1 "$ROUNDS"); do
    if [ $((round % 2)) -eq 1 ]; then
        measure ours "$OURS_PORT" "$OURS_PID"
        measure nginx "$NGINX_PORT" "$NGINX_PID"
    else
        measure nginx "$NGINX_PORT" "$NGINX_PID"
        measure ours "$OURS_PORT" "$OURS_PID"
    fi
done

echo
echo "mean of $ROUNDS round(s), $CONNS connections, $DURATION each, proxy on core 0:"
awk -F'\t' '
    { n[$1]++; rps[$1] += $2; p99[$1] += $3; cpu[$1] += $4 }
    END {
        printf "%-8s %12s %10s %12s\n", "proxy", "req/s", "p99 ms", "CPU us/req"
        for (k in n) printf "%-8s %12.0f %10.3f %12.1f\n", k, rps[k]/n[k], p99[k]/n[k], cpu[k]/n[k]
        if (n["ours"] && n["nginx"]) {
            printf "%-8s %12.2f %10.2f %12.2f\n", "ours/ngx",
                (rps["ours"]/n["ours"]) / (rps["nginx"]/n["nginx"]),
                (p99["ours"]/n["ours"]) / (p99["nginx"]/n["nginx"]),
                (cpu["ours"]/n["ours"]) / (cpu["nginx"]/n["nginx"])
        }
    }' "$RESULTS"
