#!/usr/bin/env bash
# Train one shipped model and evaluate it as it is deployed: the exact commands behind every
# directory in models/ (README and docs/results.md). Usage:
#   scripts/ship_model.sh TASK ROBOTS [COMM] [THREADS] [extra seqwm-train args...]
#   scripts/ship_model.sh gate 5            # -> models/gate_5robots
#   scripts/ship_model.sh gate 5 dec        # -> models/gate_5robots_dec (no-intent baseline)
#   scripts/ship_model.sh gate_paper 5 seq 1 --seed 2 --max-wall-s 9000   # -> models/gate_paper_5robots
# TASK is a task config name (config/<TASK>.yaml). The run directory lives outside the work tree
# ($SEQWM_RUNS, default ~/.cache/seqwm/runs/<model name>), and the script picks up where the last
# session stopped: the run directory's checkpoint when this machine still has it (--resume, buffer
# included), else the committed model's trainer_state.pt (--continue: the buffer is refilled),
# else a fresh run. Raise --max-wall-s past the recorded training time to go on. Training wall
# time is the task YAML's train.max_wall_s unless given (evaluation excluded); the evaluation is
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
out="$(python -c "from seqwm_agent.sim import load_task_config
from seqwm_agent.task_registry import task_info
c = load_task_config('$task', {'num_robots': $robots})
print(task_info(c.name).model_dir_for($robots, '$comm', getattr(c, 'variant', 'realistic')))")"
run="${SEQWM_RUNS:-$HOME/.cache/seqwm/runs}/$(basename "$out")"
how=()
if [ -f "$run/checkpoint.pt" ]; then
  how=(--resume)
elif [ -f "$out/trainer_state.pt" ]; then
  how=(--continue "$out")
fi
echo "[ship] $task, $robots robots, $comm -> $out ($threads threads, run $run ${how[*]:-fresh})"
seqwm-train --task "$task" --robots "$robots" --comm "$comm" --out "$out" --run-dir "$run" \
  --threads "$threads" --no-progress "${how[@]}" "$@"
seqwm-eval "$out" --episodes 100 --threads "$threads" --render
echo "[ship] done: $out"
