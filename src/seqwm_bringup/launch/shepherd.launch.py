"""`ros2 launch seqwm_bringup shepherd.launch.py [robots:=a,b] [order:=b,a] [sim:=true|false]
[model_dir:=...] [task_config:=...]`."""
from seqwm_bringup.launch_actions import team_launch_description


def generate_launch_description():
    return team_launch_description('shepherd')
