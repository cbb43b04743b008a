"""Checkpoints of a team of world models: one file per agent plus a manifest.

    <model_dir>/manifest.yaml     what the files are and how to check them
    <model_dir>/agent_<k>.pt      agent k's weights only (order index k): a robot loads its own file

The manifest records the architecture and widths (ModelConfig), the observation spec (the name
of every observation element, in order), the action scaling, the control period dt, the team
order (robot names by order index), the model-set id (refused when a peer's intents carry
another), the sha256 of each agent file, and free-form `training` / `evaluation` / `planner` /
`deployment`
sections that the trainer fills. Loading verifies all of it and raises CheckpointError naming
what does not match: missing or unreadable files, wrong hash (corruption, truncation, a file
from another run), missing or unexpected tensors, shapes that contradict the widths, an
observation spec of the wrong length or different names, another model-set id.
"""
from __future__ import annotations

import hashlib
import io
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import yaml

from ..task_registry import team_mismatch
from .command import AXES
from .config import ConfigError, ModelConfig
from .validate import number
from .world_model import WorldModel

FORMAT = 'seqwm-checkpoint'
FORMAT_VERSION = 1
ARCHITECTURE = 'seqwm-world-model-v1'
MANIFEST = 'manifest.yaml'
MAX_DT = 1.0          # s: a control period beyond this is a corrupt manifest, not a slow robot
MAX_SCALING = 10.0    # m/s, rad/s per unit action: beyond any legged robot's range


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used; the message says which file and what is wrong."""


def agent_file(index: int) -> str:
    return f'agent_{index}.pt'


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class Manifest:
    """Everything needed to rebuild and check a team's models (manifest.yaml)."""

    model_set_id: str
    model: ModelConfig
    obs_spec: list[str]
    action_scaling: dict[str, float]
    dt: float
    order: list[str]
    task: str = ''
    files: dict[str, str] = field(default_factory=dict)      # agent_<k>.pt -> sha256
    planner: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)
    # the deployment planner's measured cost and how it was chosen (seqwm-budget): plan_ms
    # {p50, p99} at B = 1 on `machine`, the grid file, `paper`: the paper settings' plan_ms
    deployment: dict[str, Any] = field(default_factory=dict)
    architecture: str = ARCHITECTURE

    def __post_init__(self) -> None:
        if not isinstance(self.model_set_id, str) or not self.model_set_id:
            raise CheckpointError('manifest: model_set_id must be a non-empty string')
        self.obs_spec = [str(x) for x in self.obs_spec]
        if len(self.obs_spec) != self.model.obs_dim:
            raise CheckpointError(f'manifest: obs_spec has {len(self.obs_spec)} names but '
                                  f'model.obs_dim is {self.model.obs_dim}')
        if len(set(self.obs_spec)) != len(self.obs_spec):
            raise CheckpointError('manifest: obs_spec names are not unique')
        self.order = [str(x) for x in self.order]
        if len(self.order) != self.model.num_agents:
            raise CheckpointError(f'manifest: order lists {len(self.order)} robots but '
                                  f'model.num_agents is {self.model.num_agents}')
        try:
            number('manifest: dt', self.dt, 0.0, MAX_DT, lo_open=True)
            if not isinstance(self.action_scaling, dict):
                raise ConfigError(f'manifest: action_scaling must be a mapping, got '
                                  f'{self.action_scaling!r}')
            want = set(AXES) if self.model.action_dim == len(AXES) else None
            if want is not None and set(self.action_scaling) != want:
                raise ConfigError(f'manifest: action_scaling keys {sorted(self.action_scaling)} '
                                  f'must be exactly {list(AXES)}')
            if len(self.action_scaling) != self.model.action_dim:
                raise ConfigError(f'manifest: action_scaling has {len(self.action_scaling)} '
                                  f'entries but model.action_dim is {self.model.action_dim}')
            # an action of 1 means this many m/s (rad/s): a sign would invert an axis
            self.action_scaling = {str(k): number(f'manifest: action_scaling.{k}', v, 0.0,
                                                  MAX_SCALING, lo_open=True)
                                   for k, v in self.action_scaling.items()}
        except ConfigError as exc:
            raise CheckpointError(str(exc)) from None

    def to_dict(self) -> dict[str, Any]:
        return {
            'format': FORMAT, 'format_version': FORMAT_VERSION,
            'architecture': self.architecture, 'model_set_id': self.model_set_id,
            'task': self.task, 'num_agents': self.model.num_agents, 'order': list(self.order),
            'dt': float(self.dt), 'obs_spec': list(self.obs_spec),
            'action_scaling': dict(self.action_scaling), 'model': self.model.to_dict(),
            'files': dict(self.files), 'planner': dict(self.planner),
            'training': dict(self.training), 'evaluation': dict(self.evaluation),
            **({'deployment': dict(self.deployment)} if self.deployment else {}),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Manifest:
        if not isinstance(d, Mapping):
            raise CheckpointError('manifest: not a mapping')
        if d.get('format') != FORMAT:
            raise CheckpointError(f"manifest: format is {d.get('format')!r}, expected {FORMAT!r}")
        if d.get('format_version') != FORMAT_VERSION:
            raise CheckpointError(f"manifest: format_version {d.get('format_version')!r} "
                                  f'is not supported (expected {FORMAT_VERSION})')
        if d.get('architecture') != ARCHITECTURE:
            raise CheckpointError(f"manifest: architecture {d.get('architecture')!r} is not "
                                  f'{ARCHITECTURE!r}')
        required = ('model_set_id', 'model', 'obs_spec', 'action_scaling', 'dt', 'order', 'files')
        missing = [k for k in required if k not in d]
        if missing:
            raise CheckpointError(f'manifest: missing key(s) {missing}')
        try:
            model = ModelConfig.from_dict(d['model'])
        except ConfigError as exc:
            raise CheckpointError(f'manifest: {exc}') from None
        if d.get('num_agents', model.num_agents) != model.num_agents:
            raise CheckpointError(f"manifest: num_agents {d['num_agents']} != model.num_agents "
                                  f'{model.num_agents}')
        for key in ('obs_spec', 'order'):
            if not isinstance(d[key], list):
                raise CheckpointError(f'manifest: {key} must be a list')
        for key in ('action_scaling', 'files'):
            if not isinstance(d[key], Mapping):
                raise CheckpointError(f'manifest: {key} must be a mapping')
        return cls(model_set_id=str(d['model_set_id']), model=model, obs_spec=list(d['obs_spec']),
                   action_scaling=dict(d['action_scaling']), dt=d['dt'], order=list(d['order']),
                   task=str(d.get('task', '')), files={str(k): str(v) for k, v in d['files'].items()},
                   planner=dict(d.get('planner') or {}), training=dict(d.get('training') or {}),
                   evaluation=dict(d.get('evaluation') or {}),
                   deployment=dict(d.get('deployment') or {}))


def _atomic_write(path: Path, data: bytes) -> None:
    """Write via a temporary file and rename, so a reader never sees half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.')
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_agent(model_dir: str | Path, index: int, model: WorldModel, manifest: Manifest) -> str:
    """Write agent_<index>.pt (this agent's state dict only); returns its sha256.

    Updates `manifest.files` but does not write the manifest (see `save_team`)."""
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    if model.cfg != manifest.model:
        raise CheckpointError(f'agent {index}: model config {model.cfg} differs from the manifest')
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    payload = {'format': FORMAT, 'format_version': FORMAT_VERSION, 'agent_index': index,
               'model_set_id': manifest.model_set_id, 'state_dict': state}
    buf = io.BytesIO()
    torch.save(payload, buf)
    path = model_dir / agent_file(index)
    _atomic_write(path, buf.getvalue())
    digest = hashlib.sha256(buf.getvalue()).hexdigest()
    manifest.files[agent_file(index)] = digest
    return digest


def write_manifest(model_dir: str | Path, manifest: Manifest) -> Path:
    path = Path(model_dir) / MANIFEST
    text = yaml.safe_dump(manifest.to_dict(), sort_keys=False, default_flow_style=None)
    _atomic_write(path, text.encode())
    return path


def save_team(model_dir: str | Path, models: Sequence[WorldModel], manifest: Manifest) -> Manifest:
    """Write every agent file and then the manifest with their hashes."""
    if len(models) != manifest.model.num_agents:
        raise CheckpointError(f'{len(models)} models for a team of {manifest.model.num_agents}')
    manifest.files = {}
    for k, model in enumerate(models):
        save_agent(model_dir, k, model, manifest)
    write_manifest(model_dir, manifest)
    return manifest


def load_manifest(model_dir: str | Path) -> Manifest:
    path = Path(model_dir) / MANIFEST
    try:
        text = path.read_text()
    except OSError as exc:
        raise CheckpointError(f'{path}: cannot read manifest ({exc.strerror or exc})') from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CheckpointError(f'{path}: not valid YAML ({exc})') from None
    try:
        return Manifest.from_dict(data)
    except CheckpointError as exc:
        raise CheckpointError(f'{path}: {exc}') from None


def check_team(manifest: Manifest, model_dir: str | Path, task: str, team: Sequence[str]) -> None:
    """CheckpointError unless the model set was trained for `task` and a team of len(team).

    Checked before anything else of a model is read, so a wrong directory is reported as what
    it is (a 2-robot Gate model given to 5 robots), not as an observation-size mismatch. The
    message names the expected and found sizes and the directory the naming rule expects.
    """
    problem = team_mismatch(model_dir, manifest.task, manifest.model.num_agents, task, list(team))
    if problem:
        raise CheckpointError(problem)


def load_agent(model_dir: str | Path, index: int, *, model_set_id: str | None = None,
               obs_spec: Sequence[str] | None = None, device: torch.device | str = 'cpu',
               task: str | None = None, team: Sequence[str] | None = None,
               ) -> tuple[WorldModel, Manifest]:
    """Load and verify agent `index`'s model. Returns (model in eval mode, manifest).

    `model_set_id` / `obs_spec`, when given, must equal the manifest's (the team's id, the
    observation builder's names); `task` and `team`, when given, must fit it (check_team).
    """
    model_dir = Path(model_dir)
    manifest = load_manifest(model_dir)
    if task is not None and team is not None:
        check_team(manifest, model_dir, task, team)
    n = manifest.model.num_agents
    if not 0 <= index < n:
        raise CheckpointError(f'{model_dir}: agent index {index} outside 0..{n - 1}')
    if model_set_id is not None and model_set_id != manifest.model_set_id:
        raise CheckpointError(f'{model_dir}: model_set_id {manifest.model_set_id!r} is not the '
                              f'expected {model_set_id!r}')
    if obs_spec is not None:
        obs_spec = [str(x) for x in obs_spec]
        if len(obs_spec) != len(manifest.obs_spec):
            raise CheckpointError(f'{model_dir}: the model expects {len(manifest.obs_spec)} '
                                  f'observation elements, the observation builder gives {len(obs_spec)}')
        diff = [(i, a, b) for i, (a, b) in enumerate(zip(manifest.obs_spec, obs_spec)) if a != b]
        if diff:
            i, a, b = diff[0]
            raise CheckpointError(f'{model_dir}: observation element {i} is {a!r} in the manifest '
                                  f'but {b!r} in the observation builder ({len(diff)} differ)')
    name = agent_file(index)
    path = model_dir / name
    expected = manifest.files.get(name)
    if expected is None:
        raise CheckpointError(f'{model_dir}: manifest lists no sha256 for {name}')
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f'{path}: cannot read ({exc.strerror or exc})') from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected:
        raise CheckpointError(f'{path}: sha256 {digest[:12]}... does not match the manifest '
                              f'({expected[:12]}...): corrupted, truncated or from another run')
    try:
        payload = torch.load(io.BytesIO(data), map_location='cpu', weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means an unusable file
        raise CheckpointError(f'{path}: cannot be read as a checkpoint '
                              f'({type(exc).__name__}: {exc})') from None
    if not isinstance(payload, dict) or payload.get('format') != FORMAT:
        raise CheckpointError(f'{path}: not a {FORMAT} file')
    if payload.get('agent_index') != index:
        raise CheckpointError(f"{path}: holds agent {payload.get('agent_index')!r}, expected {index}")
    if payload.get('model_set_id') != manifest.model_set_id:
        raise CheckpointError(f"{path}: model_set_id {payload.get('model_set_id')!r} differs from "
                              f'the manifest ({manifest.model_set_id!r})')
    state = payload.get('state_dict')
    if not isinstance(state, dict):
        raise CheckpointError(f'{path}: no state_dict')
    model = WorldModel(manifest.model)
    want = model.state_dict()
    missing = sorted(set(want) - set(state))
    unexpected = sorted(set(state) - set(want))
    if missing or unexpected:
        raise CheckpointError(f'{path}: state dict does not match the manifest architecture: '
                              f'missing {missing[:5]}{"..." if len(missing) > 5 else ""}, '
                              f'unexpected {unexpected[:5]}{"..." if len(unexpected) > 5 else ""}')
    for key, ref in want.items():
        got = state[key]
        if not isinstance(got, torch.Tensor) or tuple(got.shape) != tuple(ref.shape):
            shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
            raise CheckpointError(f'{path}: {key} has shape {shape}, the manifest widths '
                                  f'give {tuple(ref.shape)}')
        if got.dtype != ref.dtype:
            raise CheckpointError(f'{path}: {key} has dtype {got.dtype}, expected {ref.dtype}')
        if got.is_floating_point() and not bool(torch.isfinite(got).all()):
            bad = int((~torch.isfinite(got)).sum())
            raise CheckpointError(f'{path}: {key} holds {bad} non-finite values (NaN/inf): '
                                  f'the model cannot plan')
    model.load_state_dict(state, strict=True)
    model.to(device)
    model.eval()
    return model, manifest
