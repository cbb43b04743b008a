from glob import glob

from setuptools import find_packages, setup

package_name = 'seqwm_mocap_bridge'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/config', glob('config/*.yaml')),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='SeqWM maintainers',
    maintainer_email='maintainers@seqwm.dev',
    description='NOKOV motion capture bridge for SeqWM',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'bridge = seqwm_mocap_bridge.bridge_node:main',
        ],
    },
)
