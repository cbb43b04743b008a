"""Top-view pictures of an episode: PNG (whole trajectory) and GIF (animation), matplotlib Agg.

Record with `EpisodeRecorder` (one environment of a `MultiQuadEnv`, or any sequence of B = 1
`Snapshot`s, e.g. rebuilt from a bag's mocap frames), then `render_png` / `render_gif`.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import animation, patches  # noqa: E402

from .config import GateConfig, PushBoxConfig, ShepherdConfig, TaskConfig  # noqa: E402
from .observation import Snapshot  # noqa: E402

ROBOT_COLOURS = ['tab:blue', 'tab:orange', 'tab:green', 'tab:red', 'tab:purple', 'tab:brown']


class EpisodeRecorder:
    """Collects the true snapshots of one environment, step by step (CPU copies)."""

    def __init__(self, env, env_index: int = 0) -> None:
        self.env, self.index = env, env_index
        self.frames: list[Snapshot] = []

    def record(self) -> None:
        snap = self.env.snapshot().index(self.index)
        self.frames.append(Snapshot(*(None if t is None else t.detach().cpu() for t in
                                      (snap.robots, snap.box, snap.sheep, snap.target,
                                       snap.gate))))


def _draw_static(ax, cfg: TaskConfig, snap: Snapshot) -> None:
    a = cfg.arena
    ax.add_patch(patches.Rectangle((a.x_min, a.y_min), a.x_max - a.x_min, a.y_max - a.y_min,
                                   fill=False, lw=2.5, ec='black'))
    if isinstance(cfg, (GateConfig, ShepherdConfig)) and snap.gate is not None:
        gx, gy = (float(v) for v in snap.gate[0])
        d, w = cfg.wall_depth, cfg.gate_width
        ax.add_patch(patches.Rectangle((gx - d / 2, a.y_min), d, gy - w / 2 - a.y_min,
                                       color='dimgray'))
        ax.add_patch(patches.Rectangle((gx - d / 2, gy + w / 2), d, a.y_max - gy - w / 2,
                                       color='dimgray'))
    if isinstance(cfg, PushBoxConfig) and snap.target is not None:
        tx, ty = (float(v) for v in snap.target[0, 0])
        ax.add_patch(patches.Circle((tx, ty), cfg.success_radius, fill=False, ls='--',
                                    ec='green', lw=1.5))
        ax.plot([tx], [ty], marker='*', ms=14, color='green')
    if isinstance(cfg, GateConfig) and snap.target is not None:
        for k, (tx, ty) in enumerate(snap.target[0].tolist()):
            col = ROBOT_COLOURS[k % len(ROBOT_COLOURS)]
            ax.add_patch(patches.Circle((tx, ty), cfg.target_radius, fill=False, ls='--',
                                        ec=col, lw=1.2))
            ax.plot([tx], [ty], marker='x', ms=9, color=col)


def _box_patch(cfg: PushBoxConfig, pose, **kw) -> patches.Polygon:
    x, y, yaw = (float(v) for v in pose)
    h = cfg.box_size / 2
    c, s = math.cos(yaw), math.sin(yaw)
    pts = [(x + c * sx * h - s * sy * h, y + s * sx * h + c * sy * h)
           for sx, sy in ((1, 1), (-1, 1), (-1, -1), (1, -1))]
    return patches.Polygon(pts, closed=True, **kw)


def _draw_bodies(ax, cfg: TaskConfig, snap: Snapshot, alpha: float = 1.0) -> list:
    """Robots (discs with a heading tick), box, sheep at one instant; returns the artists."""
    arts = []
    r = cfg.robot.radius
    for k, (x, y, yaw) in enumerate(snap.robots[0].tolist()):
        col = ROBOT_COLOURS[k % len(ROBOT_COLOURS)]
        arts.append(ax.add_patch(patches.Circle((x, y), r, color=col, alpha=0.6 * alpha)))
        arts += ax.plot([x, x + r * math.cos(yaw)], [y, y + r * math.sin(yaw)], color='black',
                        lw=1.5, alpha=alpha)
        arts.append(ax.text(x, y, str(k + 1), ha='center', va='center', fontsize=8,
                            alpha=alpha))
    if snap.box is not None and isinstance(cfg, PushBoxConfig):
        arts.append(ax.add_patch(_box_patch(cfg, snap.box[0], fc='peru', ec='saddlebrown',
                                            alpha=0.7 * alpha)))
    if snap.sheep is not None and isinstance(cfg, ShepherdConfig):
        x, y = (float(v) for v in snap.sheep[0, :2])
        arts.append(ax.add_patch(patches.Circle((x, y), cfg.sheep_radius, color='lightgray',
                                                ec='black', alpha=alpha)))
    return arts


def _setup(cfg: TaskConfig, title: str | None):
    a = cfg.arena
    w, h = a.x_max - a.x_min, a.y_max - a.y_min
    fig, ax = plt.subplots(figsize=(1.2 * w + 1, 1.2 * h + 0.8), dpi=80)
    ax.set_xlim(a.x_min - 0.2, a.x_max + 0.2)
    ax.set_ylim(a.y_min - 0.2, a.y_max + 0.2)
    ax.set_aspect('equal')
    ax.set_xlabel('x [m]')
    ax.set_ylabel('y [m]')
    if title:
        ax.set_title(title)
    return fig, ax


def render_png(frames: Sequence[Snapshot], cfg: TaskConfig, path: str | Path,
               title: str | None = None) -> Path:
    """The whole episode in one picture: walls, gate, target(s), trajectories, start and end."""
    if not frames:
        raise ValueError('render_png: no frames recorded')
    path = Path(path)
    fig, ax = _setup(cfg, title or f'{cfg.name}: {len(frames)} steps')
    _draw_static(ax, cfg, frames[-1])
    n = frames[0].robots.shape[1]
    for k in range(n):
        xs = [float(f.robots[0, k, 0]) for f in frames]
        ys = [float(f.robots[0, k, 1]) for f in frames]
        ax.plot(xs, ys, color=ROBOT_COLOURS[k % len(ROBOT_COLOURS)], lw=1.5,
                label=f'robot {k + 1}')
    for key, col in (('box', 'saddlebrown'), ('sheep', 'black')):
        if getattr(frames[0], key) is not None:
            xs = [float(getattr(f, key)[0, 0]) for f in frames]
            ys = [float(getattr(f, key)[0, 1]) for f in frames]
            ax.plot(xs, ys, color=col, lw=1.5, ls=':', label=key)
    _draw_bodies(ax, cfg, frames[0], alpha=0.3)
    _draw_bodies(ax, cfg, frames[-1])
    ax.legend(loc='upper right', fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def render_gif(frames: Sequence[Snapshot], cfg: TaskConfig, path: str | Path,
               fps: float | None = None, stride: int = 1, title: str | None = None) -> Path:
    """Animated top view (PillowWriter); `fps` defaults to real time (1 / control_dt)."""
    if not frames:
        raise ValueError('render_gif: no frames recorded')
    path = Path(path)
    fps = fps or 1.0 / cfg.physics.control_dt / stride
    shown = list(frames[::stride])
    fig, ax = _setup(cfg, title or cfg.name)
    _draw_static(ax, cfg, shown[-1])
    n = shown[0].robots.shape[1]
    trails = [ax.plot([], [], color=ROBOT_COLOURS[k % len(ROBOT_COLOURS)], lw=1.2)[0]
              for k in range(n)]
    dynamic: list = []

    def update(i: int):
        for art in dynamic:
            art.remove()
        dynamic.clear()
        for k, line in enumerate(trails):
            line.set_data([float(f.robots[0, k, 0]) for f in shown[:i + 1]],
                          [float(f.robots[0, k, 1]) for f in shown[:i + 1]])
        dynamic.extend(_draw_bodies(ax, cfg, shown[i]))
        dynamic.append(ax.text(cfg.arena.x_min + 0.1, cfg.arena.y_max - 0.35,
                               f't = {i * stride * cfg.physics.control_dt:.1f} s', fontsize=9))
        return trails + dynamic

    anim = animation.FuncAnimation(fig, update, frames=len(shown), blit=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    anim.save(str(path), writer=animation.PillowWriter(fps=fps))
    plt.close(fig)
    return path


def gate_passes(frames: Sequence[Snapshot], cfg: GateConfig, dt: float) -> list[float | None]:
    """When each robot passed the gate (s; None if it never did): the first frame whose x is
    past the opening by `pass_margin`, the task's own `passed` rule."""
    out: list[float | None] = []
    n = frames[0].robots.shape[1]
    for k in range(n):
        t = next((round(i * dt, 3) for i, f in enumerate(frames)
                  if float(f.robots[0, k, 0]) > float(f.gate[0, 0]) + cfg.pass_margin), None)
        out.append(t)
    return out


def render_behaviour(frames: Sequence[Snapshot], commands: Sequence[Sequence[Sequence[float]]],
                     cfg: TaskConfig, dt: float, path: str | Path, title: str | None = None
                     ) -> dict:
    """Every robot's sent forward command over one episode (the paper's Fig. 6), one row per
    robot in planning order; in Gate each row marks when that robot passed and its place in the
    passing order, which is where waiting and yielding show. Returns the figure's data."""
    n = len(commands[0])
    t = [i * dt for i in range(len(commands))]
    passes = gate_passes(frames, cfg, dt) if isinstance(cfg, GateConfig) else [None] * n
    ranked = sorted((p, k) for k, p in enumerate(passes) if p is not None)
    place = {k: r + 1 for r, (_, k) in enumerate(ranked)}
    fig, axes = plt.subplots(n, 1, figsize=(8, 1.2 + 1.1 * n), sharex=True, squeeze=False)
    vmax = cfg.robot.vx_max
    for k, ax in enumerate(axes[:, 0]):
        ax.plot(t, [c[k][0] for c in commands], color=f'C{k}', lw=1.6)
        ax.axhline(0.0, color='gray', lw=0.6)
        ax.set_ylim(-1.1 * vmax, 1.1 * vmax)
        ax.set_ylabel(f'robot {k + 1}\nvx (m/s)', fontsize=8)
        if passes[k] is not None:
            ax.axvline(passes[k], color='black', ls='--', lw=1)
            ax.text(passes[k], 0.85 * vmax, f'  passes #{place[k]}', fontsize=8, va='top')
    axes[-1, 0].set_xlabel('time (s)')
    if title:
        axes[0, 0].set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return {'pass_time_s': passes,
            'pass_order': [k + 1 for _, k in ranked],   # robots (planning order, 1-based)
            'ticks': len(commands)}
