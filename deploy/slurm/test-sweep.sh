#!/usr/bin/env bash
# End-to-end check that a sweep run as a Slurm job array and merged gives
# the same results as the same sweep run in one go.
#
# Usage:
#   deploy/slurm/test-sweep.sh [SWEEP]      (default scenes/sweep.ron)
#
# Steps:
#   1. bring up the throwaway single-node cluster (local-cluster.sh)
#   2. run the sweep unsharded:   ecology batch SWEEP --out WORK/local
#   3. run it as a job array:     sbatch --array=1-SHARDS sweep.sbatch
#                                 -> WORK/slurm/shard-1 .. shard-SHARDS
#   4. merge the shards:          ecology merge --out WORK/merged WORK/slurm/shard-*
#   5. compare WORK/merged with WORK/local, row by row in the order written:
#      runs.csv without its wall_secs column (timing differs from run to run)
#      and timeseries.csv byte for byte. manifest.json is not compared: it
#      records how the outputs were produced, which differs by design.
# It prints PASS or FAIL and exits 0 or 1.
#
# Environment:
#   ECOLOGY        the ecology binary (default target/release/ecology, built
#                  with `cargo build --release`)
#   WORK           scratch directory (default: a new one under /tmp); its
#                  local/, slurm/ and merged/ subdirectories are replaced
#   SHARDS         number of array tasks (default 3)
#   CPUS_PER_TASK  --cpus-per-task of each array task (default 1)
#   TIMEOUT        seconds to wait for the array job (default 3600)
#   KEEP_CLUSTER   set to 1 to leave the cluster running afterwards; by
#                  default it is stopped again if this script started it
#   ECOLOGY_SLURM_DIR and the other local-cluster.sh settings apply too.
#
# Must run as root (see local-cluster.sh).

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CLUSTER=$HERE/local-cluster.sh

SHARDS=${SHARDS:-3}
CPUS_PER_TASK=${CPUS_PER_TASK:-1}
TIMEOUT=${TIMEOUT:-3600}
KEEP_CLUSTER=${KEEP_CLUSTER:-0}

VERDICT=
STARTED_CLUSTER=0

say() { printf '==> %s\n' "$*"; }

fail() {
    VERDICT=FAIL
    printf 'FAIL: %s\n' "$*"
    exit 1
}

on_exit() {
    local rc=$?
    if [[ $STARTED_CLUSTER == 1 && $KEEP_CLUSTER != 1 ]]; then
        "$CLUSTER" stop || true
    fi
    if [[ $rc != 0 && -z $VERDICT ]]; then
        printf 'FAIL: stopped by an error (exit %s)\n' "$rc"
    fi
}
trap on_exit EXIT

# $1 made absolute against the directory this script was started from.
absolute() {
    case $1 in
        /*) printf '%s\n' "$1" ;;
        *) printf '%s/%s\n' "$PWD" "$1" ;;
    esac
}

if [[ -n ${ECOLOGY:-} ]]; then
    if [[ $ECOLOGY == */* ]]; then
        ECOLOGY=$(absolute "$ECOLOGY")
    else
        ECOLOGY=$(command -v "$ECOLOGY") || fail "'$ECOLOGY' is not on PATH"
    fi
else
    ECOLOGY=$ROOT/target/release/ecology
fi
if [[ -n ${1:-} ]]; then
    SWEEP=$(absolute "$1")
else
    SWEEP=$ROOT/scenes/sweep.ron
fi
[[ -x $ECOLOGY ]] || fail "no ecology binary at $ECOLOGY (build it, or set ECOLOGY)"
[[ -r $SWEEP ]] || fail "cannot read sweep file $SWEEP"
[[ $SHARDS =~ ^[1-9][0-9]*$ ]] || fail "SHARDS='$SHARDS' is not a positive integer"

if [[ -n ${WORK:-} ]]; then
    WORK=$(absolute "$WORK")
    mkdir -p "$WORK"
else
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/ecology-sweep-test.XXXXXX")
fi
# Fresh outputs: `ecology batch` would otherwise skip runs found there.
rm -rf "$WORK/local" "$WORK/slurm" "$WORK/merged"
mkdir -p "$WORK/slurm/logs"

say "binary $ECOLOGY"
say "sweep  $SWEEP"
say "work   $WORK"

# 1. The cluster.
if "$CLUSTER" status >/dev/null 2>&1; then
    say "local Slurm already running; leaving it running afterwards"
else
    say "starting local Slurm"
    STARTED_CLUSTER=1
    "$CLUSTER" start >/dev/null || fail "local Slurm did not come up"
fi
eval "$("$CLUSTER" env)"
export SLURM_CONF
sinfo

# 2. The reference: the whole sweep in one process.
say "unsharded run into $WORK/local"
"$ECOLOGY" batch "$SWEEP" --out "$WORK/local" --jobs "$(nproc)" ||
    fail "ecology batch (unsharded) failed"

# 3. The same sweep as a job array, one shard per task.
JOB_NAME=ecology-sweep-test-$$
say "submitting $SHARDS array tasks ($JOB_NAME)"
sbatch_rc=0
# sweep.sbatch reads ECOLOGY; sbatch hands the environment on to the job.
# The shard count comes from the array itself, as it would for a user.
export ECOLOGY
timeout "$TIMEOUT" sbatch --wait \
    --array="1-$SHARDS" \
    --job-name="$JOB_NAME" \
    --cpus-per-task="$CPUS_PER_TASK" \
    --chdir="$WORK" \
    --output="$WORK/slurm/logs/%x-%A_%a.out" \
    "$HERE/sweep.sbatch" "$SWEEP" "$WORK/slurm" || sbatch_rc=$?
if ((sbatch_rc == 124)); then
    scancel --name="$JOB_NAME" || true
fi
for log in "$WORK"/slurm/logs/*.out; do
    [[ -e $log ]] || continue
    printf -- '--- %s\n' "${log##*/}"
    cat "$log"
done
((sbatch_rc != 124)) || fail "array job did not finish within ${TIMEOUT}s"
((sbatch_rc == 0)) || fail "array job failed (sbatch --wait exited $sbatch_rc)"

shard_dirs=()
for ((i = 1; i <= SHARDS; i++)); do
    [[ -f $WORK/slurm/shard-$i/runs.csv ]] || fail "shard $i wrote no runs.csv"
    shard_dirs+=("$WORK/slurm/shard-$i")
done

# 4. Merge.
say "merging ${#shard_dirs[@]} shards into $WORK/merged"
"$ECOLOGY" merge --out "$WORK/merged" "${shard_dirs[@]}" || fail "ecology merge failed"

# 5. Compare.
# Print CSV file $1 without the column named $2 (if $2 is not empty).
normalize() {
    local file=$1 drop=$2
    if command -v python3 >/dev/null 2>&1; then
        python3 - "$file" "$drop" <<'PY'
import csv
import sys

path, drop = sys.argv[1], sys.argv[2]
with open(path, newline="") as f:
    rows = list(csv.reader(f))
if not rows:
    sys.exit(f"{path}: empty")
header = rows[0]
keep = [i for i, name in enumerate(header) if name != drop]
if drop and len(keep) == len(header):
    sys.exit(f"{path}: no column named {drop}")
out = csv.writer(sys.stdout, lineterminator="\n")
for row in rows:
    out.writerow([row[i] for i in keep if i < len(row)])
PY
    else
        # Plain comma splitting: enough for files without quoted commas.
        awk -F, -v OFS=, -v drop="$drop" '
            NR == 1 {
                for (i = 1; i <= NF; i++) if ($i == drop) col = i
                if (drop != "" && !col) {
                    print FILENAME ": no column named " drop > "/dev/stderr"
                    exit 3
                }
            }
            {
                line = ""; sep = ""
                for (i = 1; i <= NF; i++) if (i != col) { line = line sep $i; sep = OFS }
                print line
            }' "$file"
    fi
}

compare() {
    local name=$1 drop=$2 a b
    a=$WORK/local/$name
    b=$WORK/merged/$name
    [[ -f $a ]] || fail "unsharded run wrote no $name"
    [[ -f $b ]] || fail "merge wrote no $name"
    normalize "$a" "$drop" >"$WORK/$name.local" || fail "cannot read $a"
    normalize "$b" "$drop" >"$WORK/$name.merged" || fail "cannot read $b"
    if ! diff -u "$WORK/$name.local" "$WORK/$name.merged" >"$WORK/$name.diff"; then
        head -n 40 "$WORK/$name.diff"
        fail "$name differs between the unsharded run and the merged shards (full diff: $WORK/$name.diff)"
    fi
}

say "comparing merged outputs with the unsharded run"
compare runs.csv wall_secs
compare timeseries.csv ''

runs=$(($(wc -l <"$WORK/runs.csv.local") - 1))
rows=$(($(wc -l <"$WORK/timeseries.csv.local") - 1))
((runs > 0)) || fail "the sweep produced no runs, so there is nothing to compare"

VERDICT=PASS
printf 'PASS: %s shards merged match the unsharded run (%s runs, %s time-series rows)\n' \
    "$SHARDS" "$runs" "$rows"
