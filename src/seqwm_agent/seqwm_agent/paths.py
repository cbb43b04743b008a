"""Where shipped data (trained models, task configs) is found, and whether a model fits a team.

One rule for every entry point.

A robot starts its nodes from wherever `ros2 launch` or systemd or a container runs them, so the
working directory says nothing about where the models are. A relative data path is looked up

  1. under $SEQWM_ROOT, when it is set (a source workspace: scripts/env.sh sets it), then
  2. under the installed share directory of seqwm_agent (`colcon build` installs models/ there),

and never under the current directory. An absolute path is used as given. Plain Python: the
agent node, the replay tool, the launch files and the pip-only runner all call it.
"""
from __future__ import annotations

import os
from pathlib import Path

import yaml

from .task_registry import task_info, team_mismatch  # noqa: F401 (team_mismatch re-exported)

PACKAGE = 'seqwm_agent'


def share_dirs(package: str = PACKAGE) -> list[Path]:
    """The package's share directories on AMENT_PREFIX_PATH (the sourced ROS environments)."""
    out = []
    for prefix in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep):
        cand = Path(prefix) / 'share' / package
        if prefix and cand.is_dir():
            out.append(cand)
    return out


def search_roots() -> list[Path]:
    """Where relative data paths are looked up, in order ($SEQWM_ROOT, then the share dirs)."""
    root = os.environ.get('SEQWM_ROOT', '')
    return ([Path(root)] if root else []) + share_dirs()


def resolve_data_path(path: str | os.PathLike) -> str:
    """`path` itself if absolute (or empty); else the first of `search_roots()/path` that exists.

    When none exists the first candidate is returned, so the error the caller raises (cannot
    read manifest: <path>) names a real place; `where_searched` says where else it looked.
    """
    path = os.fspath(path)
    if not path or os.path.isabs(path):
        return path
    candidates = [r / path for r in search_roots()]
    for cand in candidates:
        if cand.exists():
            return str(cand.resolve())
    return str(candidates[0]) if candidates else path


def where_searched(path: str | os.PathLike) -> str:
    """One line naming the places a relative `path` was looked for (for error messages)."""
    path = os.fspath(path)
    if os.path.isabs(path):
        return ''
    roots = search_roots()
    if not roots:
        return (f'{path!r} is relative, and neither $SEQWM_ROOT is set nor a seqwm_agent share '
                f'directory is on AMENT_PREFIX_PATH (source install/setup.bash)')
    return f'looked for {path!r} under ' + ', '.join(str(r) for r in roots)


def model_dir_for_team(model_dir: str, task: str, num_robots: int,
                       task_config: str = '') -> str:
    """The model directory a team uses: `model_dir` when given, else the shipped one for the task,
    team size and task variant (models/gate_5robots for 5 Gate robots, models/gate_paper_5robots
    with task_config config/gate_paper.yaml; task_registry's naming rule)."""
    if model_dir:
        return model_dir
    variant = 'realistic'
    if task_config:
        from .sim.config import load_task_config
        variant = getattr(load_task_config(task_config_source(task_config, task)), 'variant',
                          variant)
    return task_info(task).model_dir_for(num_robots, variant=variant)


def task_config_source(task_config: str, task: str) -> str:
    """What `load_task_config` should read for a node's `task_config` parameter: the packaged
    config of `task` when empty, a packaged config by name ('gate_paper': config/gate_paper.yaml
    of seqwm_agent), else a YAML path located by the data-path rule."""
    if not task_config:
        return task
    if os.sep not in task_config and not task_config.endswith(('.yaml', '.yml')):
        return task_config
    return resolve_data_path(task_config)


def team_model_problem(model_dir: str, task: str, team: list[str] | tuple[str, ...]) -> str:
    """What is wrong with using the (resolved) `model_dir` for `team`, '' when nothing is.

    Reads only the manifest's task and team size (YAML, no torch), so a launch file can refuse a
    wrong team before any node starts; the agent verifies the full manifest itself.
    """
    path = Path(model_dir) / 'manifest.yaml'
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        return (f'no model at {model_dir} ({exc.strerror or exc}); a {task} model for '
                f'{len(team)} robots is trained with: seqwm-train --task {task} --robots '
                f'{len(team)} (or pass model_dir:=)')
    except yaml.YAMLError as exc:
        return f'{path}: not valid YAML ({exc})'
    found_n = data.get('num_agents', (data.get('model') or {}).get('num_agents'))
    if not isinstance(found_n, int):
        return f'{path}: no num_agents'
    return team_mismatch(model_dir, str(data.get('task') or ''), found_n, task, team)
