"""The shipped-model table is read from the manifests; README and docs/results.md show exactly it."""
from __future__ import annotations

import sys
from pathlib import Path

from seqwm_agent.core.checkpoint import load_manifest, write_manifest
from seqwm_agent.train.report import model_table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from agent_team import write_team  # noqa: E402

REPO = Path(__file__).resolve().parents[3]


def test_a_row_gives_what_the_manifest_records_and_says_when_nothing_was_evaluated(tmp_path):
    d = write_team(tmp_path / 'pushbox')
    m = load_manifest(d)
    m.training = {'comm': 'dec', 'env_steps': 123456, 'train_wall_time_s': 1199.6,
                  'torch_threads': 1}
    m.evaluation = {'form': 'deployed', 'episodes': 100,
                    'results': [{'success_rate': 0.93, 'success_ci95': [0.862, 0.966],
                                 'mean_length': 71.0}]}
    write_manifest(d, m)
    write_team(tmp_path / 'untested')
    rows = model_table(tmp_path).splitlines()
    assert rows[2] == ('| `models/pushbox` | pushbox | 2 | dec | **93 %** (86-97 %), 100 ep. | '
                       '7.1 s | 123,456 | 1,200 s | 1 |')
    assert 'not evaluated in deployment form' in rows[3]


def test_readme_and_the_results_page_show_the_table_of_the_shipped_models():
    table = model_table(REPO / 'models')
    for doc in ('README.md', 'docs/results.md'):
        assert table in (REPO / doc).read_text(), f'{doc}: regenerate with seqwm-models'


def test_the_comparison_puts_seq_dec_and_baselines_of_one_task_side_by_side(tmp_path):
    import yaml
    from seqwm_agent.train.report import comparison_table
    for name, comm, rate in (('pushbox', 'seq', 0.99), ('pushbox_dec', 'dec', 0.93)):
        d = write_team(tmp_path / name)
        m = load_manifest(d)
        m.training = {'comm': comm, 'env_steps': 500528, 'train_wall_time_s': 686.0}
        m.evaluation = {'form': 'deployed', 'episodes': 100,
                        'results': [{'success_rate': rate, 'success_ci95': [rate - 0.05, 1.0]}]}
        write_manifest(d, m)
    write_team(tmp_path / 'gate')                       # one method only: no comparison row
    b = tmp_path / 'baselines' / 'pushbox_mappo'
    b.mkdir(parents=True)
    b.joinpath('manifest.yaml').write_text(yaml.safe_dump({
        'format': 'seqwm-baseline', 'algo': 'mappo', 'task': 'pushbox', 'num_agents': 2,
        'training': {'env_steps': 4000000, 'train_wall_time_s': 1200.4},
        'evaluation': {'form': 'deployed', 'episodes': 100,
                       'results': [{'success_rate': 0.0, 'success_ci95': [0.0, 0.037]}]}}))
    rows = comparison_table(tmp_path).splitlines()
    assert rows[0] == '| task | robots | seq | dec | MAPPO | IPPO |'
    assert rows[2:] == ['| pushbox | 2 | **99 %** (94-100 %) · 500,528 steps · 686 s | '
                        '**93 %** (88-100 %) · 500,528 steps · 686 s | '
                        '**0 %** (0-4 %) · 4,000,000 steps · 1,200 s | – |']


def test_a_gate_cell_says_how_many_robots_got_through_and_in_which_task_it_was_scored():
    from seqwm_agent.train.report import _cell
    evaluation = {'form': 'deployed', 'episodes': 100,
                  'results': [{'success_rate': 0.86, 'success_ci95': [0.78, 0.91],
                               'all_passed_rate': 0.86, 'mean_robots_passed': 4.48}]}
    training = {'env_steps': 5529600, 'train_wall_time_s': 4210.4}
    assert _cell(training, evaluation) == (
        '**86 %** (78-91 %) · 4.5 robots through on average · 5,529,600 steps · 4,210 s')
    evaluation['task_set'] = {'success': 'passed'}
    assert _cell(training, evaluation) == (
        '**86 %** (78-91 %) · 4.5 robots through on average · in task success=passed · '
        '5,529,600 steps · 4,210 s')


def test_the_results_page_and_the_baselines_doc_show_the_comparison_of_the_shipped_models():
    from seqwm_agent.train.report import comparison_table
    table = comparison_table(REPO / 'models')
    for doc in ('docs/results.md', 'docs/baselines.md'):
        assert table in (REPO / doc).read_text(), f'{doc}: regenerate with seqwm-models --compare'


def test_a_figure_in_the_paper_variant_says_so_in_both_tables(tmp_path):
    from seqwm_agent.train.report import comparison_table
    for name, comm, variant in (('gate', 'seq', 'realistic'), ('gate_dec', 'dec', 'realistic'),
                                ('gate_paper', 'seq', 'paper'), ('gate_paper_dec', 'dec', 'paper')):
        d = write_team(tmp_path / name)
        m = load_manifest(d)
        m.training = {'comm': comm, 'task_config': {'name': 'gate', 'variant': variant}}
        write_manifest(d, m)
    rows = model_table(tmp_path).splitlines()      # (write_team's models are PushBox's)
    assert ' (paper) |' in rows[4] and '(paper)' not in rows[2]
    tasks = [r.split(' | ')[0] for r in comparison_table(tmp_path).splitlines()[2:]]
    assert tasks == ['| pushbox', '| pushbox (paper)']
