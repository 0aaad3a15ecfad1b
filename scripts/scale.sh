#!/usr/bin/env bash
# Measures whole worlds at scale: generated scenes of N traders
# (assets/agents/trader.js, every 5 s) and of the default town plus N users
# (assets/agents/user.js, every 5 s), run headless for STEPS steps each. Prints, per
# scene, wall time, steps/s, agent-steps/s (the agents' steps, all together, per
# second of wall time) and the peak resident memory of the process.
#
# Usage:
#   scripts/scale.sh                  (N = 100 1000 10000)
#   scripts/scale.sh 100 1000         (the sizes given)
#
# Environment:
#   ECOLOGY   the binary (default target/release/ecology; `cargo build --release`)
#   STEPS     steps of each run (default 120)
#   KINDS     which scenes: "traders town" (default both)
set -euo pipefail
cd "$(dirname "$0")/.."
ECOLOGY=${ECOLOGY:-target/release/ecology}
STEPS=${STEPS:-120}
KINDS=${KINDS:-"traders town"}
sizes=("$@")
[ ${#sizes[@]} -eq 0 ] && sizes=(100 1000 10000)
# The scenes name their code by paths relative to the project, like scenes/*.ron.
work=target/scale
mkdir -p "$work"

generate() { # kind n → scene path
    python3 - "$1" "$2" "$work" <<'PY'
import sys
kind, n, work = sys.argv[1], int(sys.argv[2]), sys.argv[3]
# A population: a few lines whatever the size.
what = "trader" if kind == "traders" else "user"
population = f"""  populations: [
    (
      id: "{what}_{{n:05}}",
      count: {n},
      template: (agent: true, scrip: 100, interval_secs: 5.0, code_file: "assets/agents/{what}.js",
                 interface: (tools: [(name: "step")])),
    ),
  ],
"""
if kind == "traders":
    text = f'Scene(\n  name: "traders_{n}",\n{population})\n'
else:
    town = open("scenes/default.ron", encoding="utf-8").read()
    at = town.index("\n  principals: [\n") + 1
    text = town[:at] + population + town[at:]
    text = text.replace('name: "default"', f'name: "town_{n}"', 1)
path = f"{work}/{kind}_{n}.ron"
open(path, "w", encoding="utf-8").write(text)
print(path)
PY
}

printf "%-14s %8s %10s %10s %16s %12s\n" scene agents wall_s steps/s agent-steps/s peak_rss_MB
for kind in $KINDS; do
    for n in "${sizes[@]}"; do
        scene=$(generate "$kind" "$n")
        /usr/bin/time -f "%M" -o "$work/rss" "$ECOLOGY" run "$scene" --steps "$STEPS" >"$work/summary" 2>/dev/null
        rss=$(tail -1 "$work/rss")
        line=$(sed -n 2p "$work/summary")
        wall=$(echo "$line" | sed -E 's/.* in ([0-9.]+) s .*/\1/')
        sps=$(echo "$line" | sed -E 's/.*\(([0-9]+) steps\/s.*/\1/')
        asps=$(echo "$line" | sed -E 's/.* ([0-9]+) agent-steps\/s.*/\1/')
        printf "%-14s %8d %10s %10s %16s %12d\n" "${kind}_$n" "$n" "$wall" "$sps" "$asps" $((rss / 1024))
    done
done
