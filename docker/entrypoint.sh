#!/usr/bin/env bash
# Source ROS and the SeqWM overlay, then run the command.
set -e
source "/opt/ros/${ROS_DISTRO}/setup.bash"
source "${SEQWM_ROOT}/.venv/bin/activate"
source "${SEQWM_ROOT}/install/setup.bash"
exec "$@"
