#!/usr/bin/env bash
# Builds the load_balancer example with profile-guided optimization (PGO) and prints the path
# of the optimized binary on stdout.
#
#   benches/pgo.sh                 # instrument, train, merge, rebuild: ~8 minutes on 2 cores
#   BIN="$(benches/pgo.sh)"        # what benches/run.sh does
#
# 1. builds the example instrumented (-Cprofile-generate) into target/pgo/gen;
# 2. trains it on loopback: an nginx origin and h2load sending the suite's request shapes
#    (1 KiB keep-alive GETs, 64 KiB responses, h2c with 10 streams per connection, a new
#    connection per request), then stops it so it writes its profile;
# 3. merges the profile with the llvm-profdata of rustc's own LLVM version (installed with
#    apt-get as llvm-<major> when missing and running as root);
# 4. rebuilds with -Cprofile-use into target/pgo/use, hot functions grouped by the linker.
# The same recipe applies to any binary built on these crates: see docs/performance.md.
# PGO_USE_RUSTFLAGS adds flags to the optimized build only (e.g. linker options).
# Exits non-zero (with the reason on stderr) when it cannot finish, e.g. no llvm-profdata.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
OUT_DIR="${PGO_DIR:-$ROOT/target/pgo}"
HOST="$(rustc -vV | sed -n 's/^host: //p')"
LLVM_MAJOR="$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')"

say() { echo "pgo: $*" >&2; }

find_profdata() {
    local c
    for c in "llvm-profdata-$LLVM_MAJOR" \
        "$(rustc --print sysroot)/lib/rustlib/$HOST/bin/llvm-profdata" llvm-profdata; do
        if command -v "$c" >/dev/null 2>&1 &&
            "$c" --version 2>/dev/null | grep -q "LLVM version $LLVM_MAJOR\."; then
            command -v "$c"
            return 0
        fi
    done
    return 1
}

PROFDATA="$(find_profdata || true)"
if [ -z "$PROFDATA" ] && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    say "installing llvm-$LLVM_MAJOR for llvm-profdata (rustc uses LLVM $LLVM_MAJOR)..."
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "llvm-$LLVM_MAJOR") \
        >/dev/null 2>&1 || true
    PROFDATA="$(find_profdata || true)"
fi
if [ -z "$PROFDATA" ]; then
    say "no llvm-profdata for LLVM $LLVM_MAJOR (rustc's); install llvm-$LLVM_MAJOR or rustup's llvm-tools"
    exit 1
fi

build() { # build <target dir> <rustflags>
    # --target keeps the flags off build scripts and proc macros (host artifacts)
    (cd "$ROOT" && RUSTFLAGS="$2" cargo build --release -q -p pingora-examples \
        --example load_balancer --target "$HOST" --target-dir "$1")
}

RAW="$OUT_DIR/raw"
rm -rf "$RAW"
mkdir -p "$RAW"
say "instrumented build..."
build "$OUT_DIR/gen" "-Cprofile-generate=$RAW"
GEN_BIN="$OUT_DIR/gen/$HOST/release/examples/load_balancer"

# shellcheck source=loopback.sh
. "$HERE/loopback.sh" pingora-pgo
PROXY_PORT="$(free_port)"; H2_PORT="$(free_port)"
mkdir -p "$WORK/www"
head -c 1024 /dev/zero | tr '\0' 'a' >"$WORK/www/1k"
head -c 65536 /dev/zero | tr '\0' 'a' >"$WORK/www/64k"
start_origin

say "training..."
H2C_LISTEN="127.0.0.1:$H2_PORT" UPSTREAMS="127.0.0.1:$ORIGIN_PORT" \
    LISTEN="127.0.0.1:$PROXY_PORT" UPSTREAM_HOST=localhost \
    "$GEN_BIN" -c "$HERE/load/conf.yaml" >"$WORK/proxy.log" 2>&1 &
PROXY_PID=$!
PIDS+=("$PROXY_PID")
wait_port "$PROXY_PORT"
wait_port "$H2_PORT"
train() { h2load "$@" | grep -E "^requests:" >&2; }
train --h1 -n 100000 -c 50 "http://127.0.0.1:$PROXY_PORT/1k"
train --h1 -n 5000 -c 50 "http://127.0.0.1:$PROXY_PORT/64k"
train -m10 -n 100000 -c 10 "http://127.0.0.1:$H2_PORT/1k"
train --h1 -n 2000 -c 10 -H 'Connection: close' "http://127.0.0.1:$PROXY_PORT/1k"
# the profile is written when the process exits
kill -INT "$PROXY_PID"
for _ in $(seq 1 600); do
    kill -0 "$PROXY_PID" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$PROXY_PID" 2>/dev/null || ! ls "$RAW"/*.profraw >/dev/null 2>&1; then
    say "the instrumented proxy did not exit and write its profile"
    exit 1
fi

"$PROFDATA" merge -o "$WORK/merged.profdata" "$RAW"
# a content-named profile: cargo only sees RUSTFLAGS, so a new profile must change them
SUM="$(sha256sum "$WORK/merged.profdata" | cut -c1-16)"
PROFILE="$OUT_DIR/merged-$SUM.profdata"
cp "$WORK/merged.profdata" "$PROFILE"
say "optimized build with $PROFILE..."
# keep-text-section-prefix: the linker groups the functions PGO marked hot (.text.hot) instead
# of leaving them spread through .text (-1.7% cycle estimate per small GET under callgrind)
build "$OUT_DIR/use" "-Cprofile-use=$PROFILE -Clink-arg=-Wl,-z,keep-text-section-prefix ${PGO_USE_RUSTFLAGS:-}"
echo "$OUT_DIR/use/$HOST/release/examples/load_balancer"
