from setuptools import find_packages, setup

package_name = 'seqwm_common'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='SeqWM maintainers',
    maintainer_email='maintainers@seqwm.dev',
    description='Shared helpers of the SeqWM nodes',
    license='Apache-2.0',
)
