"""Every bridge parameter, declared once: name, type, default, description and bounds.

The node declares ROS parameters from `PARAMETERS` (descriptions and ranges show up in
`ros2 param describe`), then builds a `BridgeConfig` from their values with `from_dict`, which
validates everything once at start-up and raises ConfigError naming the parameter. Tests and
tools build the same dataclass without ROS.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Mapping

from seqwm_common.topics import ARENA_TRUTH_TOPIC

from .conversion import AXIS_CHOICES
from .timing import LATENCY_UNIT_TO_MS

SOURCES = ('nokov', 'replay', 'sim')
# Accepted spellings that normalise to a canonical choice.
STRING_ALIASES = {'axis_up': {'Z': 'z', 'Y': 'y', 'z_up': 'z', 'y_up': 'y'}}


class ConfigError(ValueError):
    """A parameter value is missing, of the wrong type or out of range."""


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: Any
    description: str
    kind: type               # bool, int, float, str, or list (element type in `item`)
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    item: type | None = None


PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec('source', 'nokov', 'where frames come from: nokov (vendor SDK), replay (recorded '
              'file), sim (the simulated arena feed on sim_truth_topic)', str, choices=SOURCES),
    # --- NOKOV SDK
    ParamSpec('server_ip', '10.1.1.198', 'IP of the XINGYING host streaming SDK data (its '
              '"Network Card Address" in Data Casting)', str),
    ParamSpec('sdk_library_path', '', 'path of libnokov_sdk.so when the nokovpy wrapper is not '
              'installed; empty: let the dynamic loader find libnokov_sdk.so', str),
    ParamSpec('sdk_reconnect_initial_s', 0.5, 'first reconnect delay; doubles per failure',
              float, 0.05, 60.0),
    ParamSpec('sdk_reconnect_max_s', 10.0, 'longest reconnect delay', float, 0.1, 600.0),
    ParamSpec('sdk_frame_timeout_s', 3.0, 'no frame for this long on a connected client -> '
              'reconnect', float, 0.1, 600.0),
    ParamSpec('latency_unit', 'ms', "unit of the SDK's per-frame latency field (to verify "
              "against the SDK version in use)", str, choices=tuple(LATENCY_UNIT_TO_MS)),
    ParamSpec('max_latency_ms', 500.0, 'reported latencies outside [0, this] are not trusted '
              '(stamp = receive time, counted as bad_latency)', float, 1.0, 10000.0),
    # --- axes and bodies
    ParamSpec('axis_up', 'z', "the SDK's up axis: 'z' (pass-through) or 'y' (older SDKs / "
              "Y-up setting); mapped to the arena frame, z up", str, choices=AXIS_CHOICES),
    ParamSpec('reference_body', '', 'body whose up coordinate is known (e.g. a floor marker); '
              'checked before the first frame is published; empty: no check', str),
    ParamSpec('reference_up_m', 0.0, 'expected up coordinate (m) of reference_body',
              float, -10.0, 10.0),
    ParamSpec('reference_tolerance_m', 0.15, 'allowed |measured - expected| for the reference '
              'body', float, 0.001, 5.0),
    ParamSpec('reference_timeout_s', 10.0, 'refuse to start if the reference body is not '
              'tracked within this time', float, 0.1, 600.0),
    ParamSpec('bodies', [], 'names of the rigid bodies to publish, in MocapFrame order; empty: '
              'every named body the source reports', list, item=str),
    ParamSpec('body_ids', [], 'SDK IDs of `bodies` (same length), pinned over the data '
              'descriptions; empty: IDs from the data descriptions', list, item=int),
    # --- quality
    ParamSpec('max_speed_mps', 5.0, 'a body moving faster than this vs its last accepted pose '
              'is rejected for that frame', float, 0.1, 100.0),
    ParamSpec('max_angular_speed_rps', 20.0, 'same for rotation (rad/s); 0 disables', float,
              0.0, 1000.0),
    ParamSpec('jump_margin_m', 0.05, 'distance allowed on top of max_speed * dt (noise, '
              'stamp jitter)', float, 0.0, 5.0),
    ParamSpec('reacquire_frames', 5, 'accept a body again after this many mutually consistent '
              'rejected poses', int, 2, 10000),
    ParamSpec('quaternion_norm_tolerance', 0.05, 'reject quaternions with |norm - 1| above this',
              float, 0.0001, 0.5),
    ParamSpec('tracking_valid_mask', 0, 'if non-zero, a body is tracked only when '
              'rigid-body params & mask != 0 (NatNet-style flag; verify with the SDK in use)',
              int, 0, 0xFFFF),
    ParamSpec('frozen_frames', 10, 'a pose repeated bit-for-bit for this many frames is treated '
              'as a stale re-send (untracked): 0.1 s at 100 Hz, 0.2 s at 50 Hz; a tracked body '
              'never repeats to the last bit (marker noise); 0 disables, else >= 2', int, 0,
              10000),
    ParamSpec('frame_reset_gap', 1000, 'a frame-number jump larger than this is a counter reset, '
              'not drops', int, 2, 1000000000),
    # --- sim source
    ParamSpec('sim_truth_topic', ARENA_TRUTH_TOPIC, 'seqwm_msgs/MocapFrame ground truth from the '
              'arena node (metres, arena frame, z up, stamp = simulated capture time)', str),
    ParamSpec('latency_ms', 10.0, 'sim: latency the simulated SDK reports and (with '
              'sim_delay_delivery) the delay before the frame reaches the bridge', float,
              0.0, 1000.0),
    ParamSpec('sim_delay_delivery', True, 'sim: really hold each frame for latency_ms of wall '
              'time, like the real link', bool),
    ParamSpec('sim_noise_mm', 0.1, 'sim: Gaussian position noise, standard deviation (mm)',
              float, 0.0, 1000.0),
    ParamSpec('sim_noise_rad', 0.0, 'sim: Gaussian orientation noise, standard deviation (rad)',
              float, 0.0, 3.0),
    ParamSpec('sim_dropout_prob', 0.0, 'sim: probability a body is occluded in a frame',
              float, 0.0, 1.0),
    ParamSpec('sim_frame_drop_prob', 0.0, 'sim: probability a whole frame is lost', float,
              0.0, 1.0),
    ParamSpec('sim_seed', 0, 'sim: random seed for noise and dropouts', int, 0, 2 ** 31 - 1),
    # --- replay source
    ParamSpec('replay_file', '', 'replay: CSV file or rosbag2 (MCAP / sqlite3) of '
              'seqwm_msgs/MocapFrame', str),
    ParamSpec('replay_topic', '', 'replay: topic to read from a bag; empty: the first '
              'MocapFrame topic', str),
    ParamSpec('replay_rate', 1.0, 'replay: speed factor vs the recorded stamps', float,
              0.01, 100.0),
    ParamSpec('replay_loop', False, 'replay: start again at the end', bool),
    ParamSpec('replay_restamp', False, 'replay: shift stamps to the current time (spacing kept); '
              'false: publish the recorded capture times', bool),
    ParamSpec('replay_start_delay_s', 0.0, 'replay: wait this long before the first frame',
              float, 0.0, 600.0),
    ParamSpec('replay_wait_subscribers', 0, 'replay: wait until /mocap/frame has this many '
              'subscribers before starting', int, 0, 1000),
    # --- output
    ParamSpec('frame_id', 'arena', 'header.frame_id of everything published', str),
    ParamSpec('publish_body_poses', True, 'also publish geometry_msgs/PoseStamped per tracked '
              'body on /mocap/<body>/pose', bool),
    ParamSpec('publish_tf', False, 'also publish tf2_msgs/TFMessage on /tf (skipped with a '
              'warning if tf2_msgs is not installed)', bool),
    ParamSpec('status_period_s', 1.0, 'period of the DiagnosticArray on /mocap/status', float,
              0.05, 60.0),
    ParamSpec('stale_timeout_s', 0.5, 'status is ERROR when no frame was published for this long',
              float, 0.01, 60.0),
    ParamSpec('log_throttle_s', 5.0, 'repeated events of one kind are logged at most this often',
              float, 0.0, 3600.0),
    ParamSpec('queue_size', 16, 'frames buffered between the source thread and publishing; the '
              'oldest is dropped (queue_overflow) when full', int, 1, 10000),
)

SPECS = {p.name: p for p in PARAMETERS}


@dataclass
class BridgeConfig:
    """Validated parameter values. Field names are the parameter names."""

    source: str = 'nokov'
    server_ip: str = '10.1.1.198'
    sdk_library_path: str = ''
    sdk_reconnect_initial_s: float = 0.5
    sdk_reconnect_max_s: float = 10.0
    sdk_frame_timeout_s: float = 3.0
    latency_unit: str = 'ms'
    max_latency_ms: float = 500.0
    axis_up: str = 'z'
    reference_body: str = ''
    reference_up_m: float = 0.0
    reference_tolerance_m: float = 0.15
    reference_timeout_s: float = 10.0
    bodies: list = field(default_factory=list)
    body_ids: list = field(default_factory=list)
    max_speed_mps: float = 5.0
    max_angular_speed_rps: float = 20.0
    jump_margin_m: float = 0.05
    reacquire_frames: int = 5
    quaternion_norm_tolerance: float = 0.05
    tracking_valid_mask: int = 0
    frozen_frames: int = 10
    frame_reset_gap: int = 1000
    sim_truth_topic: str = ARENA_TRUTH_TOPIC
    latency_ms: float = 10.0
    sim_delay_delivery: bool = True
    sim_noise_mm: float = 0.1
    sim_noise_rad: float = 0.0
    sim_dropout_prob: float = 0.0
    sim_frame_drop_prob: float = 0.0
    sim_seed: int = 0
    replay_file: str = ''
    replay_topic: str = ''
    replay_rate: float = 1.0
    replay_loop: bool = False
    replay_restamp: bool = False
    replay_start_delay_s: float = 0.0
    replay_wait_subscribers: int = 0
    frame_id: str = 'arena'
    publish_body_poses: bool = True
    publish_tf: bool = False
    status_period_s: float = 1.0
    stale_timeout_s: float = 0.5
    log_throttle_s: float = 5.0
    queue_size: int = 16

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> 'BridgeConfig':
        """Validate `values` (missing keys take defaults); raise ConfigError naming the parameter."""
        unknown = sorted(set(values) - set(SPECS))
        if unknown:
            raise ConfigError(f'unknown parameter(s): {", ".join(unknown)}')
        kwargs = {}
        for spec in PARAMETERS:
            value = values.get(spec.name, spec.default)
            kwargs[spec.name] = _validate(spec, value)
        cfg = cls(**kwargs)
        cfg._cross_check()
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def _cross_check(self) -> None:
        if self.body_ids and len(self.body_ids) != len(self.bodies):
            raise ConfigError(f'parameter body_ids has {len(self.body_ids)} entries but bodies '
                              f'has {len(self.bodies)}; give one ID per body or none')
        if len(set(self.bodies)) != len(self.bodies):
            raise ConfigError(f'parameter bodies has duplicate names: {self.bodies}')
        if len(set(self.body_ids)) != len(self.body_ids):
            raise ConfigError(f'parameter body_ids has duplicate IDs: {self.body_ids}')
        for name in self.bodies:
            if not name:
                raise ConfigError('parameter bodies has an empty name')
        if self.sdk_reconnect_max_s < self.sdk_reconnect_initial_s:
            raise ConfigError(f'parameter sdk_reconnect_max_s ({self.sdk_reconnect_max_s}) is '
                              f'below sdk_reconnect_initial_s ({self.sdk_reconnect_initial_s})')
        if self.frozen_frames == 1:
            raise ConfigError('parameter frozen_frames must be 0 (off) or >= 2, got 1')
        if self.source == 'replay' and not self.replay_file:
            raise ConfigError("parameter replay_file must be set when source is 'replay'")


def _validate(spec: ParamSpec, value: Any) -> Any:
    name = spec.name
    if spec.kind is list:
        if value is None:
            return []
        if isinstance(value, (str, bytes)) or not hasattr(value, '__iter__'):
            raise ConfigError(f'parameter {name} must be a list, got {value!r}')
        out = []
        for v in value:
            if spec.item is int and (isinstance(v, bool) or not isinstance(v, int)):
                raise ConfigError(f'parameter {name} must hold integers, got {v!r}')
            if spec.item is str and not isinstance(v, str):
                raise ConfigError(f'parameter {name} must hold strings, got {v!r}')
            out.append(v)
        return out
    if spec.kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f'parameter {name} must be true or false, got {value!r}')
        return value
    if spec.kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f'parameter {name} must be an integer, got {value!r}')
    elif spec.kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f'parameter {name} must be a number, got {value!r}')
        value = float(value)
        if value != value:
            raise ConfigError(f'parameter {name} must not be NaN')
    elif spec.kind is str:
        if isinstance(value, bool):
            raise ConfigError(
                f'parameter {name} must be a string, got the boolean {value!r}: YAML reads a bare '
                f"y/n/yes/no/on/off as a boolean, so quote it: -p {name}:=\"'y'\" on the "
                f"command line, {name}: 'y' in a parameter file")
        if not isinstance(value, str):
            raise ConfigError(f'parameter {name} must be a string, got {value!r}')
        value = STRING_ALIASES.get(name, {}).get(value, value)
        if spec.choices and value not in spec.choices:
            raise ConfigError(f'parameter {name} must be one of {list(spec.choices)}, '
                              f'got {value!r}')
        return value
    if spec.low is not None and value < spec.low or spec.high is not None and value > spec.high:
        raise ConfigError(f'parameter {name} = {value} is out of range [{spec.low}, {spec.high}]')
    return value
