#!/usr/bin/env bash
# Train one model-free baseline (TorchRL MAPPO / IPPO) and evaluate it as robots would run it:
# the exact commands behind every directory in models/baselines/ (docs/baselines.md). Usage:
#   scripts/ship_baseline.sh ALGO TASK ROBOTS WALL_S [THREADS] [extra seqwm-baseline train args...]
#   scripts/ship_baseline.sh mappo pushbox 2 1200      # -> models/baselines/pushbox_mappo
#   scripts/ship_baseline.sh ippo gate 5 1800          # -> models/baselines/gate_5robots_ippo
# WALL_S is the training wall-time budget (periodic evaluation excluded): give a baseline at least
# the training wall time of the SeqWM model it is compared with (its manifest's train_wall_time_s).
set -euo pipefail
algo="$1"; task="$2"; robots="$3"; wall="$4"; threads="${5:-1}"; shift $(( $# < 5 ? $# : 5 ))
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
set +u   # colcon's setup scripts read unset variables
# shellcheck disable=SC1091
source "$here/scripts/env.sh"
set -u
cd "$here"
out="$(python -c "from seqwm_agent.baselines.cli import default_out; \
print(default_out('$task', $robots, '$algo'))")"
echo "[ship] $algo on $task, $robots robots -> $out ($threads threads, $wall s)"
seqwm-baseline train --algo "$algo" --task "$task" --robots "$robots" --max-wall-s "$wall" \
  --out "$out" --threads "$threads" --no-progress "$@"
seqwm-baseline eval "$out" --episodes 100 --threads "$threads" --render
echo "[ship] done: $out"
