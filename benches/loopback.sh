# Shared by the bench scripts (sourced, not run): a scratch dir, process cleanup, free loopback
# ports and the nginx origin.
#
#   . "$BENCHES/loopback.sh" <scratch-dir prefix>
#   mkdir -p "$WORK/www" && <write the files to serve> && start_origin   # sets ORIGIN_PORT
#   spawn ... & PIDS+=($!)                                              # killed on exit
#   example_bin "ours nginx"                                            # sets BIN (builds it)
#   PROXY_PORT=... H2_PORT=... BIN=... start_proxy ours|nginx|haproxy    # then `$!` is its pid
#   start_suite_layout ours|nginx|haproxy    # both of the above, pinned as in the suite

WORK="$(mktemp -d "/tmp/${1:-pingora-bench}.XXXXXX")"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    # a graceful shutdown may wait for its grace period: give it 5 s, then end it
    for _ in $(seq 1 50); do
        local alive=0 st
        for p in "${PIDS[@]}"; do
            # an exited child stays a zombie (state Z) until `wait` below
            st="$(ps -o stat= -p "$p" 2>/dev/null)" && [ "${st#Z}" = "$st" ] && alive=1
        done
        [ "$alive" = 0 ] && break
        sleep 0.1
    done
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

wait_port() {
    for _ in $(seq 1 600); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "nothing listening on $1" >&2
    return 1
}

# nginx serving $WORK/www on a free port (ORIGIN_PORT); its workers run unprivileged under root
start_origin() {
    local benches
    benches="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
    ORIGIN_PORT="$(free_port)"
    mkdir -p "$WORK/tmp"
    chmod 755 "$WORK" "$WORK/www"
    chmod 644 "$WORK/www/"*
    chmod 1777 "$WORK/tmp"
    sed -e "s#@DIR@#$WORK#g" -e "s#@ORIGIN_PORT@#$ORIGIN_PORT#g" \
        "$benches/load/origin.nginx.conf.in" >"$WORK/origin.conf"
    nginx -e "$WORK/origin.error.log" -p "$WORK" -c "$WORK/origin.conf" &
    PIDS+=($!)
    wait_port "$ORIGIN_PORT"
}

# Sets BIN: as given, else our release load_balancer example, built first unless NO_BUILD is set
# or the proxies to measure ($1, a space-separated list, default "ours") do not include ours.
example_bin() {
    local root
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    if [ -z "${BIN:-}" ] && [ -z "${NO_BUILD:-}" ] && [[ " ${1:-ours} " == *" ours "* ]]; then
        (cd "$root" && cargo build --release -q -p pingora-examples --example load_balancer)
    fi
    BIN="${BIN:-$root/target/release/examples/load_balancer}"
}

# One proxy in the suite's one-process configuration, in the background (pid in `$!`), in front of
# the origin: `ours` (BIN, the load_balancer example; the h2c listener on H2_PORT only when H2 is
# set, so HTTP/1 figures stay comparable), `nginx` or `haproxy`. A RUN_UNDER array, if set, is
# the command to run it under (valgrind, say).
start_proxy() {
    local load
    load="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/load"
    local under=("${RUN_UNDER[@]+"${RUN_UNDER[@]}"}")
    case "$1" in
    nginx)
        sed -e "s#@DIR@#$WORK#g" -e "s#@ORIGIN_PORT@#$ORIGIN_PORT#g" -e "s#@NGINX_PORT@#$PROXY_PORT#g" \
            -e "s#@NGINX_H2_PORT@#$H2_PORT#g" "$load/proxy.nginx.conf.in" >"$WORK/proxy.conf"
        "${under[@]}" nginx -e "$WORK/proxy.error.log" -p "$WORK" -c "$WORK/proxy.conf" \
            >"$WORK/proxy.log" 2>&1 &
        ;;
    haproxy)
        # -db keeps it in the foreground (a single process)
        sed -e "s#@DIR@#$WORK#g" -e "s#@ORIGIN_PORT@#$ORIGIN_PORT#g" -e "s#@HAPROXY_PORT@#$PROXY_PORT#g" \
            -e "s#@HAPROXY_H2_PORT@#$H2_PORT#g" -e "s#@HAPROXY_MAXCONN@#1000#g" \
            "$load/proxy.haproxy.cfg.in" >"$WORK/haproxy.cfg"
        "${under[@]}" haproxy -db -f "$WORK/haproxy.cfg" >"$WORK/proxy.log" 2>&1 &
        ;;
    *)
        if [ -n "${H2:-}" ]; then export H2C_LISTEN="127.0.0.1:$H2_PORT"; fi
        UPSTREAMS="127.0.0.1:$ORIGIN_PORT" LISTEN="127.0.0.1:$PROXY_PORT" UPSTREAM_HOST=localhost \
            "${under[@]}" "$BIN" -c "${CONF:-$load/conf.yaml}" >"$WORK/proxy.log" 2>&1 &
        ;;
    esac
}

# The suite's layout for one proxy and small GETs: the origin (serving /1k, a 1 KiB file) pinned
# to core 1 with the load generator, the proxy ($1) pinned to core 0, warmed up by 2 s of wrk.
# Sets ORIGIN_WORKER (the origin's worker pid), PROXY_PID and URL.
start_suite_layout() {
    PROXY_PORT="$(free_port)"; H2_PORT="$(free_port)"
    mkdir -p "$WORK/www"
    head -c 1024 /dev/zero | tr '\0' 'a' >"$WORK/www/1k"
    start_origin
    local origin="${PIDS[-1]}" p
    for p in "$origin" $(pgrep -P "$origin"); do taskset -a -p -c 1 "$p" >/dev/null; done
    ORIGIN_WORKER="$(pgrep -P "$origin" | head -1)"
    RUN_UNDER=(taskset -c 0)
    start_proxy "$1"
    PROXY_PID=$!
    PIDS+=("$PROXY_PID")
    wait_port "$PROXY_PORT"
    URL="http://127.0.0.1:$PROXY_PORT/1k"
    taskset -c 1 wrk -t1 -c50 -d2s "$URL" >/dev/null
}
