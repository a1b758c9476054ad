"""basicsr-adl: Adaptive Domain Learning and Learning to Adapt Noise as a BasicSR plugin.

Importing this package applies the basicsr 1.4.2 compatibility fixes and registers the plugin's archs,
datasets and models in BasicSR's registries.
"""
from basicsr_adl import compat  # noqa: F401  (must run before anything imports basicsr)
from basicsr_adl import archs, data, models  # noqa: F401,E402

__version__ = '0.1.0'
