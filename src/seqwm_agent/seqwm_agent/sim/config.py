"""Task configurations of the Multi-Quad simulator: dataclasses with defaults, loaded from YAML.

One dataclass per configuration block, validated once at construction, so a bad YAML value fails
at start-up with a message naming the key instead of producing a silently wrong world. The task
YAML files (`config/pushbox.yaml`, ...) hold a top-level `task:` section (the trainer adds its own
`train:` section to the same files); `load_task_config` reads only `task:`.

Units: metres, seconds, kilograms, radians. Arena frame: x right (the direction the tasks
progress), y left, z up; yaw counter-clockwise from +x.
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Union, get_type_hints

import yaml

from ..core.validate import ConfigError, check, number, unknown_keys
from ..task_registry import TASK_NAMES, TASKS



def _check(cond: bool, key: str, msg: str) -> None:
    check(cond, f'{key}:', msg)


def _positive(obj: Any, *names: str) -> None:
    for name in names:
        number(name, getattr(obj, name), 0.0, lo_open=True)


def _non_negative(obj: Any, *names: str) -> None:
    for name in names:
        number(name, getattr(obj, name), 0.0)


def _range(obj: Any, name: str, lo: float = 0.0) -> None:
    v = getattr(obj, name)
    _check(len(v) == 2 and lo <= v[0] <= v[1] and all(math.isfinite(x) for x in v), name,
           f'must be [low, high] with {lo} <= low <= high, got {v!r}')


class _FromDict:
    """`from_dict` / `to_dict` for (nested) dataclasses; unknown keys are rejected by name."""

    @classmethod
    def from_dict(cls, data: dict | None, prefix: str = ''):
        data = dict(data or {})
        hints = get_type_hints(cls)
        kwargs = {}
        unknown_keys(cls, data, f'{prefix}{cls.__name__}')
        for f in dataclasses.fields(cls):
            if f.name not in data or not f.init:
                continue
            value = data[f.name]
            typ = hints[f.name]
            if isinstance(typ, type) and issubclass(typ, _FromDict):
                _check(isinstance(value, dict) or value is None, prefix + f.name,
                       f'must be a mapping, got {value!r}')
                value = typ.from_dict(value, prefix=f'{prefix}{f.name}.')
            elif isinstance(value, list):
                value = tuple(value)
            kwargs[f.name] = value
        try:
            return cls(**kwargs)
        except ConfigError as e:
            raise ConfigError(prefix + str(e)) from None
        except TypeError as e:
            raise ConfigError(f'{prefix}{cls.__name__}: {e}') from None

    def to_dict(self) -> dict:
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, _FromDict):
                v = v.to_dict()
            elif isinstance(v, tuple):
                v = list(v)
            out[f.name] = v
        return out


@dataclass
class ArenaConfig(_FromDict):
    """The walled rectangle (default: the real 8 m x 5 m room, x in [0, 8], y in [-2.5, 2.5])."""

    x_min: float = 0.0
    x_max: float = 8.0
    y_min: float = -2.5
    y_max: float = 2.5

    def __post_init__(self) -> None:
        _check(self.x_max - self.x_min >= 2.0, 'x_max', 'arena must be at least 2 m long')
        _check(self.y_max - self.y_min >= 2.0, 'y_max', 'arena must be at least 2 m wide')

    @property
    def centre(self) -> tuple[float, float]:
        return (0.5 * (self.x_min + self.x_max), 0.5 * (self.y_min + self.y_max))


@dataclass
class RobotConfig(_FromDict):
    """A Go2-W as the planar simulator sees it.

    Footprint: a disc of `radius` (0.3 m: the 0.7 x 0.4 m body is modelled by a disc whose
    diameter lies between its length and width, so two robots cannot pass a 1 m gate side by
    side, as in the real arena). Its locomotion controller tracks body-frame (vx, vy, wz)
    commands, clamped to the limits below, through a first-order lag of time constant
    `lag_tau_lin` (vx, vy) and `lag_tau_yaw` (wz). While it presses against another body
    (box, robot, sheep) its horizontal force is limited to `max_push_force` (traction): 20 N is
    below the PushBox box's floor friction (mu m g = 29 N nominal, 24-35 N randomised), so one
    robot cannot move the box and two can.
    """

    radius: float = 0.3
    mass: float = 15.0
    vx_max: float = 1.0
    vy_max: float = 0.5
    wz_max: float = 0.5
    lag_tau_lin: float = 0.2
    lag_tau_yaw: float = 0.15
    max_push_force: float = 20.0

    def __post_init__(self) -> None:
        _positive(self, 'radius', 'mass', 'vx_max', 'vy_max', 'wz_max', 'lag_tau_lin',
                  'lag_tau_yaw', 'max_push_force')


@dataclass
class PhysicsConfig(_FromDict):
    """Integration and contact-solver settings."""

    control_dt: float = 0.1          # one env step (the planner's control period)
    substeps: int = 3                # physics sub-steps per control step
    solver_iterations: int = 3       # velocity iterations of the impulse solver per sub-step
    gravity: float = 9.81
    contact_friction: float = 0.3    # Coulomb coefficient body-body (walls are frictionless)
    slop: float = 0.005              # penetration tolerated before position correction (m)
    position_correction: float = 0.8  # fraction of the excess penetration removed per sub-step
    collision_margin: float = 0.01   # gaps below this count as touching for the collision flags

    def __post_init__(self) -> None:
        _positive(self, 'control_dt', 'gravity')
        _non_negative(self, 'contact_friction', 'slop', 'collision_margin')
        _check(isinstance(self.substeps, int) and self.substeps >= 1, 'substeps',
               f'must be an integer >= 1, got {self.substeps!r}')
        _check(isinstance(self.solver_iterations, int) and self.solver_iterations >= 1,
               'solver_iterations', f'must be an integer >= 1, got {self.solver_iterations!r}')
        _check(0 < self.position_correction <= 1, 'position_correction',
               f'must lie in (0, 1], got {self.position_correction!r}')

    @property
    def substep_dt(self) -> float:
        return self.control_dt / self.substeps


@dataclass
class NoiseConfig(_FromDict):
    """Sensor noise on observed poses and actuation delay (both seeded)."""

    pos_std: float = 0.005           # Gaussian noise on observed x, y (m); mocap is mm-accurate
    yaw_std: float = 0.01            # Gaussian noise on observed yaw (rad)
    delay_max_s: float = 0.05        # per-episode command delay ~ U[0, delay_max_s], in sub-steps

    def __post_init__(self) -> None:
        _non_negative(self, 'pos_std', 'yaw_std', 'delay_max_s')


@dataclass
class _TaskConfig(_FromDict):
    """Fields every task has. `randomize: false` switches every domain randomisation off
    (nominal start poses, target, masses, friction, lag); noise and delay have their own knobs."""

    name: ClassVar[str] = ''
    num_robots: int = 2
    episode_s: float = 15.0
    arena: ArenaConfig = field(default_factory=ArenaConfig)
    robot: RobotConfig = field(default_factory=RobotConfig)
    physics: PhysicsConfig = field(default_factory=PhysicsConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    randomize: bool = True
    robot_pos_jitter: float = 0.1    # uniform +- on each start coordinate (m)
    robot_yaw_jitter: float = 0.2    # uniform +- on start yaw (rad)
    lag_scale_range: tuple = (0.8, 1.2)  # per-episode factor on the lag time constants

    min_robots: ClassVar[int] = 1
    max_robots: ClassVar[int] = 8

    def __post_init__(self) -> None:
        _check(isinstance(self.num_robots, int)
               and self.min_robots <= self.num_robots <= self.max_robots, 'num_robots',
               f'{self.name} supports {self.min_robots}..{self.max_robots} robots, '
               f'got {self.num_robots!r}')
        _positive(self, 'episode_seconds')
        _non_negative(self, 'robot_pos_jitter', 'robot_yaw_jitter')
        _range(self, 'lag_scale_range', lo=1e-3)
        _check(isinstance(self.randomize, bool), 'randomize', 'must be true or false')

    @property
    def episode_seconds(self) -> float:
        return self.episode_s

    @property
    def max_steps(self) -> int:
        """Control steps per episode; reaching it is a time-out (truncated, not terminated)."""
        return max(1, int(round(self.episode_seconds / self.physics.control_dt)))

    @property
    def action_limits(self) -> tuple[float, float, float]:
        return (self.robot.vx_max, self.robot.vy_max, self.robot.wz_max)


@dataclass
class PushBoxReward(_FromDict):
    """Team reward of PushBox per control step (see docs/simulator.md)."""

    progress: float = 5.0            # x (decrease of box-target distance, m)
    approach: float = 1.0            # x mean decrease of robot distance to the box's far side
    time_penalty: float = 0.01
    collision_penalty: float = 0.1   # when any robot touches another robot or a wall
    success_bonus: float = 10.0

    def __post_init__(self) -> None:
        _non_negative(self, 'progress', 'approach', 'time_penalty', 'collision_penalty',
                      'success_bonus')


@dataclass
class PushBoxConfig(_TaskConfig):
    """Push a 1.2 m square box onto a target; a lone robot cannot steer it."""

    name: ClassVar[str] = 'pushbox'
    min_robots: ClassVar[int] = TASKS['pushbox'].min_robots
    max_robots: ClassVar[int] = TASKS['pushbox'].max_robots
    box_size: float = 1.2
    box_mass: float = 6.0
    box_friction: float = 0.5
    box_mass_range: tuple = (5.5, 6.5)
    box_friction_range: tuple = (0.45, 0.55)
    box_start: tuple = (2.0, 0.0)
    box_start_jitter: float = 0.2
    box_yaw_jitter: float = 0.1
    target: tuple = (4.0, 0.0)
    target_jitter: float = 0.2
    robot_start_back: float = 0.85   # robots start this far behind the box start (in -x) ...
    robot_start_span: float = 2.5    # ... spread evenly over this width in y
    success_radius: float = 0.3      # success: box centre within this distance of the target
    reward: PushBoxReward = field(default_factory=PushBoxReward)

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive(self, 'box_size', 'box_mass', 'success_radius')
        _non_negative(self, 'box_friction', 'box_start_jitter', 'box_yaw_jitter', 'target_jitter',
                      'robot_start_back', 'robot_start_span')
        _range(self, 'box_mass_range', lo=1e-3)
        _range(self, 'box_friction_range')
        _check(len(self.box_start) == 2, 'box_start', 'must be [x, y]')
        _check(len(self.target) == 2, 'target', 'must be [x, y]')
        a = self.arena
        for key, (x, y) in (('box_start', self.box_start), ('target', self.target)):
            _check(a.x_min + self.box_size < x < a.x_max - self.box_size
                   and a.y_min + self.box_size < y < a.y_max - self.box_size, key,
                   f'({x}, {y}) must lie inside the arena with a box-size margin')
        for x, y in self.robot_starts():
            _check(a.x_min + self.robot.radius + self.robot_pos_jitter <= x, 'robot_start_back',
                   f'robot start x {x:.2f} leaves no room to the left wall')
            _check(a.y_min + self.robot.radius + self.robot_pos_jitter <= y
                   <= a.y_max - self.robot.radius - self.robot_pos_jitter, 'robot_start_span',
                   f'robot start y {y:.2f} leaves no room to the side walls')

    def robot_starts(self) -> list[tuple[float, float]]:
        """Nominal robot starts: behind the box start, spread over `robot_start_span` in y.

        With the reference's 2 robots: (1.15, -1.25) and (1.15, 1.25). Robots whose lane would
        hit the (jittered, rotated) box start further back.
        """
        n = self.num_robots
        bx, by = self.box_start
        yj = min(self.box_yaw_jitter, math.pi / 4)
        reach = self.box_size / 2 * (math.cos(yj) + math.sin(yj)) + self.box_start_jitter
        clear = reach + self.robot.radius + self.robot_pos_jitter
        # robots never start overlapping each other: widen the span if needed
        span = max(self.robot_start_span,
                   (n - 1) * (2 * (self.robot.radius + self.robot_pos_jitter) + 0.05))
        starts = []
        for i in range(n):
            off = 0.0 if n == 1 else (i / (n - 1) - 0.5) * span
            # a lane that could overlap the box by more than 2 cm starts behind its reach
            back = self.robot_start_back if abs(off) + 0.02 >= clear else max(
                self.robot_start_back, clear)
            starts.append((bx - back, by + off))
        return starts


@dataclass
class GateReward(_FromDict):
    """Team reward of Gate per control step."""

    progress: float = 5.0            # x mean decrease of each robot's path length to its target
    proximity: float = 0.1           # x sum over pairs of (1 - d / safe_distance)^2 when closer
    safe_distance: float = 0.8
    time_penalty: float = 0.01
    collision_penalty: float = 1.0   # on any contact, inside the [-1, 1] clip of the shaped terms
    success_bonus: float = 10.0
    # on a contact, outside the clip like success_bonus: inside it a contact that ends the
    # episode would cost about two steps of progress (docs/simulator.md, "contact_cost")
    contact_cost: float = 5.0
    # x fraction of the robots within target_radius of their own targets, every step: an
    # arrived robot is paid for staying (docs/simulator.md, "on_target")
    on_target: float = 0.2

    def __post_init__(self) -> None:
        _non_negative(self, 'progress', 'proximity', 'time_penalty', 'collision_penalty',
                      'success_bonus', 'on_target', 'contact_cost')
        _positive(self, 'safe_distance')


@dataclass
class PaperGateReward(_FromDict):
    """Team reward of the paper variant of Gate per control step: the paper's code's terms
    (MQE's Gate as the paper configures it), each scaled by the team size n as there."""

    forward: float = 1.0             # x n x sum of the robots' progress in +x (m)
    towards_gate: float = 1.0        # x n x sum of the decrease of distance to the opening,
                                     #   for robots not yet through
    contact: float = 2.0             # x n, once, on a trunk contact (which ends the episode)
    crowding: float = 0.1            # x sum over robots of 1 / d^2 to the nearest teammate ...
    crowding_distance: float = 0.71  # ... when d is below this
    all_through: float = 1.0         # x n per step once every robot is through: paid at once,
                                     #   for the steps left to the time limit, as the episode
                                     #   ends there (see GateConfig.variant)

    def __post_init__(self) -> None:
        _non_negative(self, 'forward', 'towards_gate', 'contact', 'crowding', 'all_through')
        _positive(self, 'crowding_distance')


GATE_SUCCESS = ('passed', 'targets')
GATE_LANE_FIT = ('widen', 'shrink')
GATE_VARIANTS = ('realistic', 'paper')


@dataclass
class GateConfig(_TaskConfig):
    """Pass a 1 m opening in a wall across the arena, no contact (then one's own target)."""

    name: ClassVar[str] = 'gate'
    min_robots: ClassVar[int] = TASKS['gate'].min_robots
    max_robots: ClassVar[int] = TASKS['gate'].max_robots
    # Which Gate. 'realistic': a contact is any touch of the robot's footprint (robot.radius),
    # the team reward is `reward`, every robot observes its own target. 'paper': the paper's
    # Gate as its code configures MQE: only a contact of the robot's trunk box (`trunk`) counts
    # (legs, i.e. the footprint disc, may touch a post), the reward is `paper_reward`, the
    # observation holds the robot's id instead of a target. Geometry and fixed starts are data:
    # config/gate_paper.yaml. Both variants end an episode at success.
    variant: str = 'realistic'
    trunk: tuple = (0.376, 0.094)    # length, width of the Go2 trunk box (paper variant contact)
    episode_s: float = 0.0           # 0: the reference's 5 (n + 1) s (see episode_seconds)
    gate_x: float = 3.5
    gate_y: float = 0.0
    gate_y_jitter: float = 0.2
    gate_width: float = 1.0
    wall_depth: float = 0.1
    start_x: float = 1.0
    lane_spacing: float = 1.5        # wanted y spacing of starts and targets (see lane_fit)
    # What gives when n lanes of lane_spacing do not fit the arena's width (4-5 robots in the
    # 5 m room). 'widen': the arena grows in y, about its centre, to the paper's track width
    # lane_spacing x n (7.5 m for 5 robots: simulation only); 2-3 robots fit and keep the room.
    # 'shrink': the lanes shrink to fit the room (1.0 m for 5 robots: 0.4 m gaps).
    lane_fit: str = 'shrink'
    target_x: float = 0.0            # 0: 5 + max(n - 1, 1) / 2 as in the reference, capped
    target_jitter: float = 0.1
    pass_margin: float = 0.25        # "passed" = x > gate_x + pass_margin
    target_radius: float = 0.3       # 'targets' success: every robot within this of its target
    # When an episode is a success (and ends). 'passed': every robot is through the opening
    # with no contact so far - the paper's Gate ("pass through a narrow gate as quickly as
    # possible without collision"). 'targets': stricter, every robot also within
    # target_radius of its own target at once, no contact (the 2- and 3-robot models' manifests
    # record it: they were trained so).
    success: str = 'passed'
    terminate_on_collision: bool = True
    reward: GateReward = field(default_factory=GateReward)
    paper_reward: PaperGateReward = field(default_factory=PaperGateReward)

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive(self, 'gate_width', 'wall_depth', 'lane_spacing', 'target_radius')
        _check(self.variant in GATE_VARIANTS, 'variant',
               f"must be one of {', '.join(GATE_VARIANTS)}, got {self.variant!r}")
        _check(len(self.trunk) == 2 and all(math.isfinite(v) and v > 0 for v in self.trunk),
               'trunk', f'must be [length, width] > 0, got {self.trunk!r}')
        _check(self.variant == 'realistic' or self.success == 'passed', 'success',
               "the paper variant's success is 'passed' (it has no targets)")
        _non_negative(self, 'gate_y_jitter', 'target_jitter', 'pass_margin')
        _check(self.success in GATE_SUCCESS, 'success',
               f"must be one of {', '.join(GATE_SUCCESS)}, got {self.success!r}")
        _check(self.lane_fit in GATE_LANE_FIT, 'lane_fit',
               f"must be one of {', '.join(GATE_LANE_FIT)}, got {self.lane_fit!r}")
        a = self.arena
        track = self.lane_spacing * self.num_robots
        if self.lane_fit == 'widen' and track > a.y_max - a.y_min:
            mid = a.centre[1]
            self.arena = a = dataclasses.replace(a, y_min=mid - track / 2, y_max=mid + track / 2)
        _check(a.x_min + 2 * self.robot.radius <= self.start_x < self.gate_x, 'start_x',
               f'must lie between the left wall and the gate, got {self.start_x}')
        _check(self.gate_x + self.pass_margin < self.target_x_resolved
               <= a.x_max - self.robot.radius, 'target_x',
               f'must lie past the gate and inside the arena, got {self.target_x_resolved}')
        _check(a.y_min + 0.5 < self.gate_y - self.gate_width / 2
               and self.gate_y + self.gate_width / 2 < a.y_max - 0.5, 'gate_y',
               'the opening must leave wall on both sides')

    @property
    def episode_seconds(self) -> float:
        """`episode_s`, or the reference's 5 (n + 1) s when it is 0."""
        return self.episode_s if self.episode_s > 0 else 5.0 * (self.num_robots + 1)

    @property
    def target_x_resolved(self) -> float:
        """`target_x`, or the reference's 5 + max(n - 1, 1) / 2 (capped by the arena) when 0."""
        if self.target_x > 0:
            return self.target_x
        return min(5.0 + max(self.num_robots - 1, 1) / 2.0,
                   self.arena.x_max - 2 * self.robot.radius)

    @property
    def lane_offsets(self) -> list[float]:
        """y offsets of the starts/targets: evenly spaced, spacing shrunk to fit the arena
        (with lane_fit 'widen' the arena already fits lane_spacing)."""
        n = self.num_robots
        usable = (self.arena.y_max - self.arena.y_min) - 2 * (self.robot.radius + 0.2)
        spacing = min(self.lane_spacing, usable / max(n - 1, 1))
        mid = self.arena.centre[1]
        return [mid + (i - (n - 1) / 2) * spacing for i in range(n)]


@dataclass
class ShepherdReward(_FromDict):
    """Team reward of Shepherd per control step."""

    progress: float = 5.0            # x decrease of the sheep's distance to the pen point
    approach: float = 0.5            # x mean decrease of dog distance to the herding point
    herd_distance: float = 1.0       # herding point: this far behind the sheep (away from goal)
    time_penalty: float = 0.01
    collision_penalty: float = 0.1
    success_bonus: float = 10.0

    def __post_init__(self) -> None:
        _non_negative(self, 'progress', 'approach', 'herd_distance', 'time_penalty',
                      'collision_penalty', 'success_bonus')


@dataclass
class ShepherdConfig(_TaskConfig):
    """Dogs (the robots) herd a fleeing sheep robot through a gate in a fence into the pen."""

    name: ClassVar[str] = 'shepherd'
    min_robots: ClassVar[int] = TASKS['shepherd'].min_robots
    max_robots: ClassVar[int] = TASKS['shepherd'].max_robots
    sheep_radius: float = 0.2        # DJI RoboMaster EP, 0.32 x 0.24 m
    sheep_mass: float = 3.3
    sheep_max_speed: float = 0.8
    flee_gain: float = 0.6           # flee speed = flee_gain / distance to the nearest dog (m^2/s)
    flee_radius: float = 3.0         # the sheep ignores dogs farther than this
    sheep_tau: float = 0.2
    sheep_max_force: float = 30.0
    sheep_start: tuple = (3.0, 0.0)
    sheep_start_jitter: float = 0.3
    dog_start_x: float = 1.25
    dog_start_span: float = 1.95     # dogs spread over this width in y (reference: +-0.975)
    gate_x: float = 5.0
    gate_y: float = 0.0
    gate_y_jitter: float = 0.5
    gate_width: float = 0.8
    wall_depth: float = 0.1
    pass_margin: float = 0.3         # success: sheep centre x > gate_x + pass_margin
    terminate_on_collision: bool = False
    reward: ShepherdReward = field(default_factory=ShepherdReward)

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive(self, 'sheep_radius', 'sheep_mass', 'sheep_max_speed', 'flee_gain',
                  'flee_radius', 'sheep_tau', 'sheep_max_force', 'gate_width', 'wall_depth')
        _non_negative(self, 'sheep_start_jitter', 'gate_y_jitter', 'pass_margin',
                      'dog_start_span')
        _check(self.gate_width > 2 * self.sheep_radius, 'gate_width',
               'the sheep must fit through the gate')
        a = self.arena
        _check(a.x_min < self.sheep_start[0] < self.gate_x < a.x_max - 0.5, 'gate_x',
               'gate must lie between the sheep start and the right wall')
        _check(a.y_min + 0.5 < self.gate_y - self.gate_y_jitter - self.gate_width / 2
               and self.gate_y + self.gate_y_jitter + self.gate_width / 2 < a.y_max - 0.5,
               'gate_y', 'the opening (with jitter) must leave fence on both sides')


TaskConfig = Union[PushBoxConfig, GateConfig, ShepherdConfig]
_CLASSES = {'pushbox': PushBoxConfig, 'gate': GateConfig, 'shepherd': ShepherdConfig}


def task_config_from_dict(data: dict) -> TaskConfig:
    """Build the config of the task named by `data['name']` from a `task:` section."""
    data = dict(data or {})
    name = data.pop('name', None)
    if name not in _CLASSES:
        raise ConfigError(f'name: task must be one of {", ".join(TASK_NAMES)}, got {name!r}')
    return _CLASSES[name].from_dict(data)


def task_config_to_dict(cfg: TaskConfig) -> dict:
    """The `task:` section that reproduces `cfg` (for manifests)."""
    return {'name': cfg.name, **cfg.to_dict()}


def config_dir() -> Path:
    """Where the task YAML files live: the source tree, else the installed share directory."""
    here = Path(__file__).resolve().parents[2] / 'config'
    if here.is_dir():
        return here
    for prefix in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep):
        cand = Path(prefix) / 'share' / 'seqwm_agent' / 'config'
        if prefix and cand.is_dir():
            return cand
    return here


def load_task_config(source: str | Path | dict | TaskConfig,
                     overrides: dict | None = None) -> TaskConfig:
    """A task config from a config name ('pushbox', 'gate_paper': config/<name>.yaml), a YAML
    path, a `task:` dict or a config.

    `overrides` are merged into the `task:` section (nested dicts merge key by key), e.g.
    `{'num_robots': 3, 'noise': {'pos_std': 0.0}}`.
    """
    if isinstance(source, (PushBoxConfig, GateConfig, ShepherdConfig)):
        data = task_config_to_dict(source)
    elif isinstance(source, dict):
        data = dict(source.get('task', source))
    else:
        path = Path(source)
        if not path.exists() and (config_dir() / f'{source}.yaml').is_file():
            path = config_dir() / f'{source}.yaml'
        try:
            with open(path) as f:
                doc = yaml.safe_load(f) or {}
        except OSError as e:
            raise ConfigError(f'cannot read task config {path}: {e}') from None
        if 'task' not in doc:
            raise ConfigError(f'task: {path} has no top-level "task:" section')
        data = dict(doc['task'])
    if overrides:
        data = _merge(data, overrides)
    return task_config_from_dict(data)


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out
