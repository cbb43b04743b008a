#!/usr/bin/env bash
# Train one shipped model and evaluate it as it is deployed: the exact commands behind every
# directory in models/ (README and docs/results.md). Usage:
#   scripts/ship_model.sh TASK ROBOTS [COMM] [THREADS] [extra seqwm-train args...]
#   scripts/ship_model.sh gate 5            # -> models/gate_5robots
#   scripts/ship_model.sh gate 5 dec        # -> models/gate_5robots_dec (no-intent baseline)
# Training wall time is the task YAML's train.max_wall_s (evaluation excluded); the evaluation is
# 100 episodes in deployment form (each robot's runtime, command chain and intent timing), with
# the episode-0 picture, GIF and behaviour figure.
set -euo pipefail
task="$1"; robots="$2"; comm="${3:-seq}"; threads="${4:-1}"; shift $(( $# < 4 ? $# : 4 ))
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
set +u   # colcon's setup scripts read unset variables
# shellcheck disable=SC1091
source "$here/scripts/env.sh"
set -u
cd "$here"
out="$(python -c "from seqwm_agent.task_registry import task_info; \
print(task_info('$task').model_dir_for($robots, '$comm'))")"
echo "[ship] $task, $robots robots, $comm -> $out ($threads threads)"
seqwm-train --task "$task" --robots "$robots" --comm "$comm" --out "$out" --threads "$threads" \
  --no-progress "$@"
seqwm-eval "$out" --episodes 100 --threads "$threads" --render
echo "[ship] done: $out"
