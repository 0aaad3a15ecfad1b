#!/usr/bin/env bash
# Starts the real window under a virtual X display, lets the default scene play for a
# few seconds and captures the screen: proof that the window renders on a machine
# without a monitor. Needs xvfb and imagemagick (`apt-get install xvfb imagemagick`).
#
#   scripts/screenshot.sh [OUT.png] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-docs/window.png}"
secs="${2:-8}"
cargo build --release --quiet
export OUT="$out" SECS="$secs"
xvfb-run --auto-servernum --server-args="-screen 0 1440x900x24" bash -c '
    target/release/ecology gui --play &
    app=$!
    sleep "$SECS"
    kill -0 "$app"                       # the window is still up: it did not crash
    import -window root "$OUT"
    kill "$app"
    wait "$app" 2>/dev/null || true
'
echo "wrote $out"
