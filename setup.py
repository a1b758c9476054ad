"""basicsr-adl: a BasicSR plugin for Adaptive Domain Learning (ADL) and Learning to Adapt Noise (LAN)."""
import os

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def requirements():
    with open(os.path.join(HERE, 'requirements.txt')) as f:
        reqs = [line.strip() for line in f if line.strip() and not line.startswith('#')]
    return reqs + ['basicsr==1.4.2']


setup(
    name='basicsr-adl',
    version='0.1.0',
    description='Adaptive Domain Learning and Learning to Adapt Noise as a BasicSR plugin',
    long_description=open(os.path.join(HERE, 'README.md')).read(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['basicsr_adl', 'basicsr_adl.*']),
    python_requires='>=3.9',
    install_requires=requirements(),
    extras_require={'test': ['pytest==9.2.0']},
)
