"""A model-free baseline's networks, its model dir, and its team acting through the chains.

One definition of the networks (`build_actor`, `build_critic`) serves the trainer and the
deployed team. The actor is TorchRL's: a `MultiAgentMLP` (decentralised: each robot's action
depends on its own observation only, parameters shared as in MAPPO/IPPO), a TanhNormal head in
[-1, 1], and its deterministic action (TorchRL's `ExplorationType.DETERMINISTIC`) is what a robot
would send into its command chain. The critic exists only in training (MAPPO: centralised, it
reads every robot's observation; IPPO: each robot's own).

A baseline model dir: `manifest.yaml` (format seqwm-baseline, algorithm, task, team size,
observation names, network sizes, training record, evaluation), `policy.pt` (the actor's
parameters, tensors only), `metrics.jsonl` and `learning_curve.png`.
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
import yaml
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torch import nn
from torchrl.envs.utils import ExplorationType, set_exploration_type
from torchrl.modules import MultiAgentMLP, ProbabilisticActor, TanhNormal
from torchrl.modules.distributions import NormalParamExtractor

from ..core.command import ChainSettings
from ..train.team import ChainedTeam
from .env import GROUP

FORMAT = 'seqwm-baseline'
ALGOS = ('mappo', 'ippo')


@dataclass(frozen=True)
class NetConfig:
    """Sizes of a baseline's networks (MAPPO paper / BenchMARL-style MLPs)."""
    obs_dim: int
    num_agents: int
    action_dim: int = 3
    hidden: int = 256
    depth: int = 2

    def __post_init__(self) -> None:
        for k in ('obs_dim', 'num_agents', 'action_dim', 'hidden', 'depth'):
            v = getattr(self, k)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f'NetConfig.{k} must be a positive integer, got {v!r}')


def build_actor(net: NetConfig) -> ProbabilisticActor:
    """The decentralised policy: obs ("agents", "observation") -> ("agents", "action")."""
    body = nn.Sequential(
        MultiAgentMLP(n_agent_inputs=net.obs_dim, n_agent_outputs=2 * net.action_dim,
                      n_agents=net.num_agents, centralized=False, share_params=True,
                      depth=net.depth, num_cells=net.hidden, activation_class=nn.Tanh),
        NormalParamExtractor())
    module = TensorDictModule(body, in_keys=[(GROUP, 'observation')],
                              out_keys=[(GROUP, 'loc'), (GROUP, 'scale')])
    return ProbabilisticActor(module, in_keys=[(GROUP, 'loc'), (GROUP, 'scale')],
                              out_keys=[(GROUP, 'action')], distribution_class=TanhNormal,
                              distribution_kwargs={'low': -1.0, 'high': 1.0},
                              return_log_prob=True)


def build_critic(net: NetConfig, algo: str) -> TensorDictModule:
    """Value per robot: MAPPO's reads every robot's observation, IPPO's only its own."""
    if algo not in ALGOS:
        raise ValueError(f'algo must be one of {ALGOS}, got {algo!r}')
    mlp = MultiAgentMLP(n_agent_inputs=net.obs_dim, n_agent_outputs=1, n_agents=net.num_agents,
                        centralized=algo == 'mappo', share_params=True, depth=net.depth,
                        num_cells=net.hidden, activation_class=nn.Tanh)
    return TensorDictModule(mlp, in_keys=[(GROUP, 'observation')],
                            out_keys=[(GROUP, 'state_value')])


class PolicyTeam(ChainedTeam):
    """B teams of robots, each acting on its own observation with the baseline's deterministic
    action through its own command chain (what `seqwm-baseline eval` scores)."""

    def __init__(self, actor: ProbabilisticActor, n: int, chain: ChainSettings,
                 action_scale: Sequence[float], batch: int,
                 device: torch.device | str = 'cpu') -> None:
        super().__init__(n, chain, action_scale, batch, device)
        self.actor = actor.to(device).eval()

    @torch.no_grad()
    def actions(self, obs: torch.Tensor) -> torch.Tensor:
        """(B, n, obs_dim) -> deterministic actions (B, n, 3) in [-1, 1]."""
        td = TensorDict({GROUP: TensorDict({'observation': obs.float()},
                                           batch_size=obs.shape[:2])}, batch_size=obs.shape[:1])
        with set_exploration_type(ExplorationType.DETERMINISTIC):
            return self.actor(td).get((GROUP, 'action'))

    def act(self, obs: torch.Tensor, tick: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return self._through(self.actions(obs))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_policy(model_dir: str | Path, actor: ProbabilisticActor, net: NetConfig,
                manifest: dict[str, Any]) -> Path:
    """Write policy.pt and manifest.yaml (the manifest gets `format`, `net` and the file hash)."""
    d = Path(model_dir)
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / 'policy.pt.tmp'
    torch.save({k: v.detach().cpu() for k, v in actor.state_dict().items()}, tmp)
    tmp.replace(d / 'policy.pt')
    doc = {'format': FORMAT, 'format_version': 1, **manifest, 'net': asdict(net),
           'files': {'policy.pt': _sha256(d / 'policy.pt')}}
    write_baseline_manifest(d, doc)
    return d


def write_baseline_manifest(model_dir: Path, doc: dict[str, Any]) -> None:
    tmp = model_dir / 'manifest.yaml.tmp'
    tmp.write_text(yaml.safe_dump(doc, sort_keys=False, width=100))
    tmp.replace(model_dir / 'manifest.yaml')


def load_baseline_manifest(model_dir: str | Path) -> dict[str, Any]:
    """The manifest of a baseline model dir; ValueError naming what is wrong otherwise."""
    path = Path(model_dir) / 'manifest.yaml'
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except OSError as e:
        raise ValueError(f'cannot read {path}: {e}') from None
    if doc.get('format') != FORMAT:
        raise ValueError(f'{path} is not a baseline policy (format {doc.get("format")!r}, '
                         f'expected {FORMAT!r}); SeqWM teams are evaluated with seqwm-eval')
    return doc


def load_policy(model_dir: str | Path, device: str = 'cpu') -> tuple[ProbabilisticActor, dict]:
    """The actor of a baseline model dir, its hash checked against the manifest."""
    d = Path(model_dir)
    doc = load_baseline_manifest(d)
    want = (doc.get('files') or {}).get('policy.pt')
    if want != _sha256(d / 'policy.pt'):
        raise ValueError(f'{d / "policy.pt"} does not match its manifest (sha256 differs)')
    actor = build_actor(NetConfig(**doc['net']))
    actor.load_state_dict(torch.load(d / 'policy.pt', map_location=device, weights_only=True))
    return actor.to(device).eval(), doc
