"""Model-free baselines on the Multi-Quad simulator, through TorchRL.

* `env`: the batched simulator as a TorchRL multi-agent `EnvBase` (command chain in the loop);
* `ppo`: MAPPO and IPPO built from TorchRL's multi-agent modules, losses and collectors;
* `policy`: an exported baseline policy acting per robot through its command chain, so that
  `seqwm-baseline eval` scores it in the same deployment form as a SeqWM team.

This floor sits above `train` (it reuses the evaluation loop); nothing below imports it.
"""
