"""The plugin's one link to BasicSR: the basicsr 1.4.2 fixes and the registration of every arch, dataset and model.

Entry points (``basicsr_adl/train.py``/``test.py``, the scripts), the autoload hook and the tests import this
module. Nothing else in the package imports BasicSR when it is imported, so the algorithms' cores
(``basicsr_adl.adl``, ``lan``, ``raw``, ``synth``) load without it. ``import basicsr_adl`` alone arranges for this
module to load as soon as ``basicsr`` is imported (or at once, if it already is); see ``basicsr_adl/__init__.py``.
"""
from basicsr_adl import compat  # noqa: F401  (the torchvision alias must precede basicsr; then the fixes)
from basicsr_adl import archs, data, models  # noqa: F401,E402  (their modules register in BasicSR's registries)
