from glob import glob

from setuptools import find_packages, setup

package_name = 'seqwm_bringup'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/launch', glob('launch/*.launch.py')),
        ('share/' + package_name + '/config', glob('config/*.yaml')),
        ('share/' + package_name + '/security', glob('security/*.xml')),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='SeqWM maintainers',
    maintainer_email='maintainers@seqwm.dev',
    description='Launch files, configs and the node-graph builder for SeqWM',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'run_team = seqwm_bringup.runner:main',
        ],
    },
)
