"""Frame sources behind one interface: `nokov` (vendor SDK), `replay` (file), `sim` (arena)."""
from __future__ import annotations

from typing import Any, Callable

from ..config import BridgeConfig
from ..conversion import BodyMap
from .base import FrameSource, SourceSink
from .nokov import NokovSource, SourceError

__all__ = ['FrameSource', 'SourceSink', 'SourceError', 'make_source']


def make_source(cfg: BridgeConfig, body_map: BodyMap, node: Any = None,
                ready: Callable[[], bool] | None = None) -> FrameSource:
    """The source named by cfg.source, configured from cfg. Raises SourceError if unusable."""
    if cfg.source == 'nokov':
        return NokovSource(cfg.server_ip, cfg.sdk_library_path, cfg.sdk_reconnect_initial_s,
                           cfg.sdk_reconnect_max_s, cfg.sdk_frame_timeout_s)
    if cfg.source == 'replay':
        from .replay import ReplaySource

        return ReplaySource(cfg.replay_file, body_map, cfg.axis_up, cfg.latency_unit,
                            cfg.replay_rate, cfg.replay_loop, cfg.replay_restamp,
                            cfg.replay_topic, cfg.replay_start_delay_s, ready)
    if cfg.source == 'sim':
        from .sim import SimSource

        if node is None:
            raise SourceError('the sim source needs a ROS node to subscribe to '
                              f'{cfg.sim_truth_topic}')
        return SimSource(node, cfg.sim_truth_topic, body_map, cfg.axis_up, cfg.latency_ms,
                         cfg.latency_unit, cfg.sim_delay_delivery, cfg.sim_noise_mm,
                         cfg.sim_noise_rad, cfg.sim_dropout_prob, cfg.sim_frame_drop_prob,
                         cfg.sim_seed)
    raise SourceError(f'unknown source {cfg.source!r}')
