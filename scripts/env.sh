# Source this file (bash/zsh) to put the SeqWM workspace on PATH/PYTHONPATH:
#     source scripts/env.sh
# It activates .venv/ (ROS 2 wheels, torch, unitree_sdk2py) and overlays the colcon install/.
# On a machine with a real ROS 2 install, source /opt/ros/<distro>/setup.bash and
# install/setup.bash instead.
_seqwm_here="${BASH_SOURCE[0]:-${(%):-%x}}"
SEQWM_ROOT="$(cd "$(dirname "$_seqwm_here")/.." && pwd)"
export SEQWM_ROOT
# shellcheck disable=SC1091
. "$SEQWM_ROOT/.venv/bin/activate"
# colcon's own environment hooks (PYTHONPATH incl. symlink-install develop paths, AMENT_PREFIX_PATH,
# LD_LIBRARY_PATH); sh needs to be told where the prefix is.
COLCON_CURRENT_PREFIX="$SEQWM_ROOT/install" . "$SEQWM_ROOT/install/local_setup.sh"
# The ROS 2 wheels are their own underlay: rosidl/ament look them up through AMENT_PREFIX_PATH.
export AMENT_PREFIX_PATH="${AMENT_PREFIX_PATH:+$AMENT_PREFIX_PATH:}$VIRTUAL_ENV"
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
for _p in seqwm_agent seqwm_mocap_bridge seqwm_bringup; do
  PATH="$SEQWM_ROOT/install/lib/$_p:$PATH"
done
export PATH
unset _seqwm_here _p
