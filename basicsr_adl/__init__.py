"""basicsr-adl: Adaptive Domain Learning and Learning to Adapt Noise as a BasicSR plugin.

Importing the package imports no BasicSR, so ``import basicsr_adl.adl.gate`` (or any core of ``adl``, ``lan``,
``raw``, ``synth``) works without it. The BasicSR side lives in :mod:`basicsr_adl.plugin` (the basicsr 1.4.2 fixes
and the registration of the plugin's archs, datasets and models): it is loaded now if ``basicsr`` is already
imported, else the moment ``basicsr`` is, so ``import basicsr_adl`` followed by BasicSR's own entry points works
as before, even with the autoload hook switched off (``BASICSR_ADL_AUTOLOAD=0``).
"""
import sys

__version__ = '0.1.0'


def _register_with_basicsr() -> None:
    if 'basicsr' in sys.modules:
        import basicsr_adl.plugin  # noqa: F401
        return
    try:
        import basicsr_adl_autoload
    except ImportError:  # the top-level hook module is missing (an unusual copy of the package): load eagerly
        import basicsr_adl.plugin  # noqa: F401
        return
    basicsr_adl_autoload.request_plugin()


_register_with_basicsr()
