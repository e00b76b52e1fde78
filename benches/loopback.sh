# Shared by the bench scripts (sourced, not run): a scratch dir, process cleanup, free loopback
# ports and the nginx origin.
#
#   . "$BENCHES/loopback.sh" <scratch-dir prefix>
#   mkdir -p "$WORK/www" && <write the files to serve> && start_origin   # sets ORIGIN_PORT
#   spawn ... & PIDS+=($!)                                              # killed on exit

WORK="$(mktemp -d "/tmp/${1:-pingora-bench}.XXXXXX")"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
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
