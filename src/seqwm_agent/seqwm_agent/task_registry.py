"""The task registry: every fact about a task that more than one part of the stack needs.

Read by the simulator's configs (team-size range), the agent runtime (object bodies it must see
in each mocap frame), the node graph and launch files (bodies the bridge tracks, team size),
the trainer and the CLIs (names, default model directory), and the one check of a team against
a task (team_problem, position_problem, team_mismatch). Declared once, here; plain data and
pure functions with no project imports, so every layer may read it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class TaskInfo:
    name: str
    min_robots: int
    max_robots: int
    default_robots: int
    object_bodies: tuple[str, ...]     # mocap bodies besides the robots
    model_dir: str                     # model directory of the default team, relative to the workspace

    def model_dir_for(self, n: int, comm: str = 'seq', variant: str = 'realistic') -> str:
        """The shipped model directory for a team of `n` robots trained with `comm`.

        One rule for every task: the default team size keeps the plain name (models/pushbox),
        other sizes add the size (models/gate_5robots), a task variant other than the
        realistic one adds its name first (models/gate_paper_5robots), a no-intent baseline
        adds `_dec`. A user can tell the team from the name, and launch files find it
        without a table.
        """
        self.check_team_size(n)
        base = self.model_dir if variant == 'realistic' else f'{self.model_dir}_{variant}'
        d = base if n == self.default_robots else f'{base}_{n}robots'
        return d if comm == 'seq' else f'{d}_{comm}'

    def check_team_size(self, n: int) -> None:
        if not self.min_robots <= n <= self.max_robots:
            raise ValueError(f'{self.name} supports {self.min_robots}..{self.max_robots} robots, '
                             f'got {n}')


TASKS: dict[str, TaskInfo] = {
    'pushbox': TaskInfo('pushbox', 1, 5, 2, ('box',), 'models/pushbox'),
    'gate': TaskInfo('gate', 2, 5, 2, (), 'models/gate'),
    'shepherd': TaskInfo('shepherd', 1, 5, 2, ('sheep',), 'models/shepherd'),
}
TASK_NAMES: tuple[str, ...] = tuple(TASKS)


_ROS_NAME = re.compile(r'^[A-Za-z][A-Za-z0-9_]*$')


def team_problem(task: str, team: Sequence[str]) -> str:
    """What is wrong with `team` (robot names in planning order) for `task`, '' when nothing:
    the one team check of the graph, the agent's parameters and its settings."""
    if task not in TASKS:
        return f'unknown task {task!r}; expected one of {list(TASK_NAMES)}'
    info, team = TASKS[task], list(team)
    if not info.min_robots <= len(team) <= info.max_robots:
        return f'{task} needs {info.min_robots}..{info.max_robots} robots, got {len(team)}: {team}'
    if len(set(team)) != len(team):
        return f'robot names must be unique, got {team}'
    for r in team:
        if not _ROS_NAME.match(r):
            return f'robot name {r!r} is not a valid ROS name (letters, digits, _)'
        if r in info.object_bodies:
            return f'robot name {r!r} clashes with the mocap body of the task object'
    return ''


def position_problem(team: Sequence[str], robot: str, order_index: int, predecessor: str) -> str:
    """What is wrong with one robot's place in `team`, '' when nothing: its index, its name at
    that index, and the predecessor the order gives it."""
    team = list(team)
    if not 0 <= order_index < len(team):
        return f'order_index {order_index} is outside the team {team}'
    if team[order_index] != robot:
        return f'robot_name {robot!r} is not team[{order_index}] = {team[order_index]!r}'
    want = team[order_index - 1] if order_index > 0 else ''
    if predecessor != want:
        return (f'predecessor {predecessor!r} does not match the team order (expected {want!r} '
                f'for order_index {order_index})')
    return ''


def team_mismatch(model_dir: object, found_task: str, found_robots: int, task: str,
                  team: list[str] | tuple[str, ...]) -> str:
    """Why the model set in `model_dir` (trained for `found_task` with `found_robots` robots)
    cannot drive `team` on `task`, naming the expected and found sizes; '' when it fits.

    Asked before anything else of a model is read (core.checkpoint.check_team for the agent,
    team_model_problem for the launch files), so a wrong directory is reported as what it is.
    """
    n = len(team)
    if found_task and found_task != task:
        return f'{model_dir} holds a {found_task} model; this is a {task} team'
    if found_robots != n:
        info = TASKS.get(task)
        hint = ''
        if info is not None and info.min_robots <= n <= info.max_robots:
            hint = (f'; the {n}-robot model is {info.model_dir_for(n)} '
                    f'(train it with: seqwm-train --task {task} --robots {n})')
        return (f'team size mismatch: {model_dir} holds a {task} model for {found_robots} '
                f'robots, the team has {n} ({", ".join(team)}){hint}')
    return ''


def task_info(name: str) -> TaskInfo:
    """The registry entry of `name`; ValueError naming the known tasks otherwise."""
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f'unknown task {name!r}; known tasks: {list(TASK_NAMES)}') from None
