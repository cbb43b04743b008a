import os
from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

package_name = 'seqwm_agent'

# The shipped models (<workspace>/models/<name>/) go to share/seqwm_agent/models/<name>/, where
# seqwm_agent.paths finds them from any working directory. Only what a robot loads or a user
# checks travels: the manifest, the agent files and the evaluation records (not the trainer's
# state for continuing a run).
# (colcon wants data_files relative to this directory.)
HERE = Path(__file__).resolve().parent
MODELS = HERE.parent.parent / 'models'
model_files = [
    (f'share/{package_name}/models/{d.name}',
     sorted(os.path.relpath(f, HERE) for f in d.iterdir()
            if f.suffix in ('.yaml', '.pt', '.json') and f.name != 'trainer_state.pt'))
    for d in sorted(MODELS.glob('*')) if (d / 'manifest.yaml').is_file()
]

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/config', glob('config/*.yaml')),
        *model_files,
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='SeqWM maintainers',
    maintainer_email='maintainers@seqwm.dev',
    description='SeqWM per-robot agent, simulator and trainer',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'agent = seqwm_agent.agent_node:main',
            'arena = seqwm_agent.arena_node:main',
            'sport_standin = seqwm_agent.backends.sport_standin:main',
            'seqwm-train = seqwm_agent.train.cli:main',
            'seqwm-eval = seqwm_agent.train.evaluate:main',
            'seqwm-curves = seqwm_agent.train.curves:main',
            'seqwm-models = seqwm_agent.train.report:main',
            'seqwm-budget = seqwm_agent.train.budget:main',
            'seqwm-replay = seqwm_agent.replay:main',
            'seqwm-baseline = seqwm_agent.baselines.cli:main',
        ],
    },
)
