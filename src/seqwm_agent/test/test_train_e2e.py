"""Trainer end to end: tiny seqwm-train run, checkpoint round trip, deterministic evaluation."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from seqwm_agent.core.checkpoint import CheckpointError, load_agent, load_manifest
from seqwm_agent.core.config import PlannerConfig
from seqwm_agent.core.intent import IntentLayout
from seqwm_agent.core.planner import SequentialPlanner
from seqwm_agent.sim import MultiQuadEnv, load_task_config
from seqwm_agent.train import cli, evaluate

TINY_TRAIN = {
    'seed': 3, 'num_envs': 16, 'total_env_steps': 400, 'warmup_env_steps': 160,
    'pretrain_updates': 2, 'updates_per_env_step': 0.02, 'batch_size': 16, 'buffer_size': 4000,
    'td_steps': 3, 'plan_envs': 2, 'plan_every': 2, 'eval_every_env_steps': 300,
    'eval_episodes': 2, 'checkpoint_every_s': 0.0,
    'model': {'latent_dim': 16, 'encoder_dim': 32, 'hidden_dim': 32, 'critic_dim': 16,
              'actor_dim': 16},
    'planner': {'num_samples': 16, 'num_pi_trajs': 4, 'num_elites': 4, 'iterations': 2},
    'eval_planner': {'num_samples': 16, 'num_pi_trajs': 4, 'num_elites': 4, 'iterations': 1},
    'collect_planner': {'num_samples': 16, 'num_pi_trajs': 4, 'num_elites': 4, 'iterations': 1},
}


@pytest.fixture(scope='module')
def trained(tmp_path_factory) -> Path:
    """A tiny PushBox task (4 s episodes) trained for 400 env steps with seqwm-train."""
    root = tmp_path_factory.mktemp('train')
    task = yaml.safe_load(open(Path(cli.task_yaml('pushbox'))))['task']
    task['episode_s'] = 2.0
    cfg = root / 'tiny.yaml'
    cfg.write_text(yaml.safe_dump({'task': task, 'train': TINY_TRAIN}))
    out = root / 'model'
    rc = cli.main(['--task', str(cfg), '--out', str(out), '--run-dir', str(root / 'run'),
                   '--no-progress'])
    assert rc == 0
    return out


def test_tiny_run_writes_a_loadable_model_dir(trained: Path):
    m = load_manifest(trained)
    assert m.task == 'pushbox' and m.model.num_agents == 2
    assert m.training['env_steps'] >= 400 and m.training['comm'] == 'seq'
    assert m.training['git_commit'] and m.training['wall_time_s'] > 0
    assert m.obs_spec == MultiQuadEnv(load_task_config('pushbox'), 1).obs_spec()
    assert set(m.files) == {'agent_0.pt', 'agent_1.pt'}
    assert (trained / 'learning_curve.png').stat().st_size > 0
    for k in range(2):
        model, _ = load_agent(trained, k, model_set_id=m.model_set_id, obs_spec=m.obs_spec)
        assert model.cfg.latent_dim == 16
    assert (trained.parent / 'run' / 'checkpoint.pt').exists()


def test_resume_continues_from_the_checkpoint(trained: Path):
    run = trained.parent / 'run'
    rc = cli.main(['--task', str(trained.parent / 'tiny.yaml'), '--out', str(trained.parent / 'm2'),
                   '--run-dir', str(run), '--resume', '--total-env-steps', '600', '--no-progress'])
    assert rc == 0
    state = torch.load(run / 'checkpoint.pt', weights_only=True)
    assert state['env_steps'] >= 600


def test_a_run_continues_on_a_new_machine_from_its_model_dir_alone(trained: Path,
                                                                  tmp_path: Path):
    """No run dir (no buffer): counters, optimizers and curve go on, the buffer is refilled
    with the current policy before updates resume, and the log and manifest say so."""
    src = load_manifest(trained)
    state = torch.load(trained / 'trainer_state.pt', weights_only=True)
    # the run's latest state (the agent files are its best evaluation, at or before it)
    assert 'buffer' not in state and state['env_steps'] >= src.training['env_steps']
    assert state['learner']['num_updates'] >= src.training['updates']
    out = tmp_path / 'continued'
    rc = cli.main(['--task', str(trained.parent / 'tiny.yaml'), '--out', str(out),
                   '--run-dir', str(tmp_path / 'fresh_machine'), '--no-progress',
                   '--continue', str(trained), '--total-env-steps', '800'])
    assert rc == 0
    # the model dir holds the segment's best evaluation, the run dir its end
    end = torch.load(tmp_path / 'fresh_machine' / 'checkpoint.pt', weights_only=True)
    assert end['env_steps'] >= 800
    assert end['learner']['num_updates'] > state['learner']['num_updates']
    got = load_manifest(out).training
    assert got['env_steps'] > state['env_steps']
    assert got['train_wall_time_s'] > src.training['train_wall_time_s']
    (seg,) = got['segments']
    assert seg['continued_from'] == str(trained) and seg['env_steps'] == state['env_steps']
    assert 'refilled with the current policy' in seg['buffer']
    records = [json.loads(x) for x in (out / 'metrics.jsonl').read_text().splitlines()]
    kinds = [r['kind'] for r in records]
    assert 'segment' in kinds
    steps = [r['env_steps'] for r in records if r['kind'] != 'segment']
    assert steps == sorted(steps) and steps[-1] > src.training['env_steps']   # one curve
    # no update while the buffer refills: the first training record after the segment
    # marker with updates past the source's comes only after warmup_env_steps more steps
    after = records[kinds.index('segment') + 1:]
    first = next(r for r in after if r.get('updates', 0) > state['learner']['num_updates'])
    assert first['env_steps'] >= state['env_steps'] + TINY_TRAIN['warmup_env_steps']
    # changed settings are refused: a continued run keeps its config
    rc = cli.main(['--task', str(trained.parent / 'tiny.yaml'), '--out', str(tmp_path / 'x'),
                   '--run-dir', str(tmp_path / 'x_run'), '--no-progress',
                   '--continue', str(trained), '--set', 'lr=0.1'])
    assert rc == 2


def test_periodic_evaluations_record_the_learning_health_of_every_agent(trained: Path):
    evals = [json.loads(x) for x in (trained / 'metrics.jsonl').read_text().splitlines()]
    evals = [r for r in evals if r['kind'] == 'eval']
    assert evals
    h = evals[-1]['health']
    assert h['transitions'] > 0
    assert len(h['contact_auc']) == len(h['dynamics_error']) == 2
    assert all(e is not None and e >= 0 for e in h['dynamics_error'] + h['reward_error'])
    assert load_manifest(trained).training['health'] == h


def test_init_from_starts_at_a_model_dirs_weights_and_records_the_totals(trained: Path,
                                                                       tmp_path: Path):
    src = load_manifest(trained)
    out = tmp_path / 'continued'
    args = ['--task', str(trained.parent / 'tiny.yaml'), '--out', str(out), '--no-progress']
    rc = cli.main(args + ['--run-dir', str(tmp_path / 'run'), '--init-from', str(trained),
                          '--total-env-steps', '200', '--set', 'eval_every_env_steps=100000'])
    assert rc == 0
    got = load_manifest(out).training
    rec = got['init_from']
    assert rec['model_set_id'] == src.model_set_id
    assert rec['before']['env_steps'] == src.training['env_steps']
    assert rec['total']['env_steps'] == src.training['env_steps'] + got['env_steps']
    assert rec['total']['train_wall_time_s'] >= src.training['train_wall_time_s']
    # resuming that run keeps where it started: the totals keep counting over the source
    args[args.index('--out') + 1] = str(tmp_path / 'resumed')
    rc = cli.main(args + ['--run-dir', str(tmp_path / 'run'), '--resume',
                          '--total-env-steps', '400', '--set', 'eval_every_env_steps=100000'])
    assert rc == 0
    resumed = load_manifest(tmp_path / 'resumed').training
    assert resumed['env_steps'] > got['env_steps']
    assert resumed['init_from']['model_set_id'] == src.model_set_id
    assert resumed['init_from']['total']['env_steps'] == (src.training['env_steps']
                                                          + resumed['env_steps'])
    # a larger team of the task grows from it (train/grow.py) and says so in its manifest
    args[args.index('--out') + 1] = str(tmp_path / 'grown')
    rc = cli.main(args + ['--run-dir', str(tmp_path / 'r2'), '--init-from', str(trained),
                          '--robots', '3', '--total-env-steps', '200',
                          '--set', 'eval_every_env_steps=100000'])
    assert rc == 0
    grown = load_manifest(tmp_path / 'grown')
    assert grown.model.num_agents == 3 and set(grown.files) == {f'agent_{k}.pt' for k in range(3)}
    assert grown.training['init_from']['num_agents'] == 2
    assert grown.training['init_from']['model_set_id'] == src.model_set_id
    # a model of other widths is refused with the reason, before any training
    widths = dict(TINY_TRAIN['model'], hidden_dim=40)
    rc = cli.main(args + ['--run-dir', str(tmp_path / 'r3'), '--init-from', str(trained),
                          '--set', f'model={json.dumps(widths)}'])
    assert rc == 2


def test_export_only_writes_the_checkpoint_models_with_the_run_config(trained: Path,
                                                                      tmp_path: Path):
    run = trained.parent / 'run'
    state = torch.load(run / 'checkpoint.pt', weights_only=True)
    out = tmp_path / 'exported'
    # a different wall budget on this command line must not end up in the manifest
    rc = cli.main(['--task', str(trained.parent / 'tiny.yaml'), '--out', str(out),
                   '--run-dir', str(run), '--export-only', '--max-wall-s', '1', '--no-progress'])
    assert rc == 0
    m = load_manifest(out)
    assert m.training['env_steps'] == state['env_steps']
    assert m.training['config'] == state['config'] and m.evaluation == {}
    for k in range(2):
        model, _ = load_agent(out, k, model_set_id=m.model_set_id, obs_spec=m.obs_spec)
        for name, t in model.state_dict().items():
            assert torch.equal(t, state['models'][k][name].cpu()), name
    after = torch.load(run / 'checkpoint.pt', weights_only=True)
    assert after['env_steps'] == state['env_steps'], 'export-only must not train'


def test_export_only_without_a_checkpoint_fails_cleanly(trained: Path, tmp_path: Path):
    rc = cli.main(['--task', str(trained.parent / 'tiny.yaml'), '--out', str(tmp_path / 'x'),
                   '--run-dir', str(tmp_path / 'empty_run'), '--export-only', '--no-progress'])
    assert rc == 2 and not (tmp_path / 'x' / 'manifest.yaml').exists()


def test_curves_compare_runs_and_refuse_a_dir_without_evaluations(trained: Path,
                                                                  tmp_path: Path):
    from seqwm_agent.train import curves
    png = tmp_path / 'cmp.png'
    assert curves.main([str(trained), str(trained.parent / 'run'), '--out', str(png)]) == 0
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert curves._run_label(trained) == f'seq ({trained.name})'
    (tmp_path / 'empty').mkdir()
    assert curves.main([str(tmp_path / 'empty'), '--out', str(tmp_path / 'x.png')]) == 2
    assert not (tmp_path / 'x.png').exists()


def test_prediction_error_compares_seq_cen_dec_on_the_same_data(trained: Path, tmp_path: Path,
                                                                capsys):
    out = tmp_path / 'pe'
    rc = cli.main(['--task', str(trained.parent / 'tiny.yaml'), '--prediction-error', str(out),
                   '--pe-data-steps', '2048', '--pe-updates', '3', '--pe-horizon', '3',
                   '--no-progress'])
    assert rc == 0
    table = json.loads((out / 'prediction_error.json').read_text())
    assert set(table['errors']) == {'seq', 'cen', 'dec'} and table['updates'] == 3
    for e in table['errors'].values():
        for key in ('dynamics', 'reward'):
            assert len(e[key]) == 3 and all(x >= 0 and x == x for x in e[key])
    # the three modes differ only in what they condition on: their errors are not all equal
    assert table['errors']['seq']['dynamics'] != table['errors']['dec']['dynamics']
    assert (out / 'prediction_error.png').read_bytes()[:4] == b'\x89PNG'
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed['seq']['dynamics'] == [round(x, 5) for x in table['errors']['seq']['dynamics']]


def test_saved_models_reload_bit_identically_and_plan_identically(trained: Path, tmp_path: Path):
    import shutil
    m = load_manifest(trained)
    a, _ = load_agent(trained, 1)
    copy = tmp_path / 'copy'
    shutil.copytree(trained, copy)
    b, _ = load_agent(copy, 1)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    layout = IntentLayout(2, 3, m.model.latent_dim, 3)
    pc = PlannerConfig.from_dict(m.planner)
    obs = torch.randn(3, m.model.obs_dim, generator=torch.Generator().manual_seed(0))
    intent = layout.insert(layout.empty(3), 0, torch.rand(3, 4, m.model.latent_dim),
                           torch.rand(3, 3, 3) * 2 - 1)
    ra = SequentialPlanner(a, layout, pc, 1, seed=5).plan(obs, intent)
    rb = SequentialPlanner(b, layout, pc, 1, seed=5).plan(obs, intent)
    assert torch.equal(ra.actions, rb.actions) and torch.equal(ra.latents, rb.latents)


def test_corrupted_checkpoint_is_refused(trained: Path, tmp_path: Path):
    import shutil
    copy = tmp_path / 'bad'
    shutil.copytree(trained, copy)
    data = bytearray((copy / 'agent_0.pt').read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / 'agent_0.pt').write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match='sha256'):
        evaluate.load_team(copy)


def test_evaluation_is_deterministic_for_a_seed(trained: Path, tmp_path: Path):
    results = []
    for k in range(2):
        out = tmp_path / f'eval{k}.json'
        assert evaluate.main([str(trained), '--episodes', '3', '--seed', '7', '--out',
                              str(out)]) == 0
        results.append(json.loads(out.read_text())['results'][0])
    for key in ('success_rate', 'mean_return', 'mean_length', 'successes', 'mode_fractions'):
        assert results[0][key] == results[1][key]
    assert results[0]['form'] == 'deployed' and results[0]['chain']['cutoff_hz'] == 2.0
    other = tmp_path / 'other.json'
    evaluate.main([str(trained), '--episodes', '3', '--seed', '8', '--out', str(other)])
    assert json.loads(other.read_text())['results'][0]['mean_return'] != results[0]['mean_return']
    dec = tmp_path / 'dec.json'
    evaluate.main([str(trained), '--episodes', '2', '--seed', '7', '--comm', 'dec', '--out', str(dec)])
    assert json.loads(dec.read_text())['results'][0]['comm'] == 'dec'


def test_evaluation_in_a_changed_task_records_the_change_and_refuses_an_unknown_key(
        trained: Path, tmp_path: Path, capsys):
    out = tmp_path / 'short.json'
    assert evaluate.main([str(trained), '--episodes', '2', '--task-set', 'episode_s=0.5',
                          '--out', str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc['task_set'] == {'episode_s': 0.5}
    assert doc['results'][0]['mean_length'] <= 5
    assert evaluate.main([str(trained), '--episodes', '1', '--task-set', 'no_such_key=1',
                          '--out', str(tmp_path / 'bad.json')]) == 2
    assert 'no_such_key' in capsys.readouterr().err
    assert evaluate.main([str(trained), '--episodes', '1', '--task-set', 'episode_s',
                          '--out', str(tmp_path / 'bad.json')]) == 2
    assert 'KEY=VALUE' in capsys.readouterr().err


def test_training_with_the_command_chain_in_the_loop_learns_and_records_the_chain(tmp_path):
    """Every action the trainer stores is a command the robot's chain produced (inside the
    velocity limits, rate limited between ticks of one episode), the world model's losses fall,
    and the manifest records the chain the model was trained with."""
    from seqwm_agent.core.command import CommandLimits
    from seqwm_agent.train.config import TrainConfig
    from seqwm_agent.train.trainer import Trainer

    task = load_task_config('pushbox', overrides={'episode_s': 3.0})
    cfg = TrainConfig.from_dict({**TINY_TRAIN, 'num_envs': 8, 'total_env_steps': 2400,
                                 'warmup_env_steps': 160,
                                 'updates_per_env_step': 0.1, 'eval_every_env_steps': 10 ** 9,
                                 'plan_envs': 0, 'compile': 'off'})
    tr = Trainer(task, cfg, tmp_path / 'run', tmp_path / 'model', progress=False)
    tr.run()
    buf = tr.buffer
    a = buf.action[:buf.rows].double() * torch.tensor(task.action_limits, dtype=torch.float64)
    lim = CommandLimits()
    assert bool((a.abs() <= torch.tensor([task.action_limits]) + 1e-6).all())
    same_episode = ~(buf.terminated[:buf.rows - 1] | buf.truncated[:buf.rows - 1])   # (T-1, E)
    step = (a[1:] - a[:-1]).abs()[same_episode]                                     # (k, n, 3)
    dt = task.physics.control_dt
    assert bool((step <= torch.tensor(lim.acceleration) * dt + 1e-5).all()), step.max()
    records = [r for r in map(json.loads, (tmp_path / 'run' / 'metrics.jsonl').read_text()
                              .splitlines()) if r.get('kind') == 'train' and 'dynamics' in r]
    assert len(records) >= 4
    k = len(records) // 3
    early = sum(r['dynamics'] for r in records[:k]) / k
    late = sum(r['dynamics'] for r in records[-k:]) / k
    assert late < 0.8 * early, (early, late)
    chain = load_manifest(tmp_path / 'model').training['command_chain']
    assert chain == {'limits': lim.to_dict(), 'cutoff_hz': 2.0, 'rate_hz': 1.0 / dt}
