#!/usr/bin/env bash
# Measures how a batch scales with worker threads: the same sweep of RUNS runs
# of the default scene (600 simulated seconds each) with --jobs 1 and with
# --jobs JOBS, timed, and their outputs compared (they must be the same but for
# wall times).
#
# Usage:
#   scripts/batch-throughput.sh            (RUNS=200, JOBS=2)
#   RUNS=50 JOBS=4 scripts/batch-throughput.sh
#
# Environment:
#   ECOLOGY   the binary (default target/release/ecology; build it first with
#             `cargo build --release`)
#   RUNS      runs in the sweep (seeds 1..RUNS of one point; default 200)
#   JOBS      worker threads of the parallel batch (default 2)
#   WORK      scratch directory (default: a new one under /tmp)
#
# Prints the wall time of each batch, runs per second, the speed-up and the
# machine's core count; exits 1 if the two batches' outputs differ.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ECOLOGY=${ECOLOGY:-$ROOT/target/release/ecology}
RUNS=${RUNS:-200}
JOBS=${JOBS:-2}
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/ecology-throughput.XXXXXX")}

[[ -x $ECOLOGY ]] || { echo "no ecology binary at $ECOLOGY: cargo build --release" >&2; exit 2; }
mkdir -p "$WORK"
rm -rf "$WORK/jobs-1" "$WORK/jobs-$JOBS"
cat >"$WORK/sweep.ron" <<EOF
// $RUNS seeds of the default world, 600 simulated seconds each.
Sweep(scene: "default", parameters: {}, seeds: Replicates($RUNS), stop: Steps(600))
EOF

# Seconds (with fractions) that running "$@" takes.
timed() {
    local start end
    start=$(date +%s.%N)
    "$@"
    end=$(date +%s.%N)
    echo "$end - $start" | bc -l
}

echo "$RUNS runs of the default scene, 600 s each; $(nproc) cores; $("$ECOLOGY" --version)"
one=$(timed "$ECOLOGY" batch "$WORK/sweep.ron" --out "$WORK/jobs-1" --jobs 1 --quiet)
printf '  --jobs 1:  %7.1f s  (%.2f runs/s)\n' "$one" "$(echo "$RUNS / $one" | bc -l)"
many=$(timed "$ECOLOGY" batch "$WORK/sweep.ron" --out "$WORK/jobs-$JOBS" --jobs "$JOBS" --quiet)
printf '  --jobs %s:  %7.1f s  (%.2f runs/s)\n' "$JOBS" "$many" "$(echo "$RUNS / $many" | bc -l)"
printf '  speed-up:  %.2fx\n' "$(echo "$one / $many" | bc -l)"

# wall_secs is the last column of runs.csv; everything else must agree.
without_wall() { sed 's/,[^,]*$//' "$1"; }
if ! diff -q <(without_wall "$WORK/jobs-1/runs.csv") <(without_wall "$WORK/jobs-$JOBS/runs.csv") >/dev/null ||
    ! cmp -s "$WORK/jobs-1/timeseries.csv" "$WORK/jobs-$JOBS/timeseries.csv"; then
    echo "the outputs of --jobs 1 and --jobs $JOBS differ (see $WORK)" >&2
    exit 1
fi
echo "  outputs of both batches are the same (but for wall times); in $WORK"
