"""Compatibility fixes for basicsr 1.4.2, applied from ``import basicsr_adl`` (see each module's docstring).

Nothing installed is edited: we alias a renamed torchvision module before ``basicsr`` is imported and
replace a few BasicSR functions/methods at import time.
"""
from basicsr_adl.compat import torchvision_shim

torchvision_shim.install()

import basicsr  # noqa: E402  (must come after the shim)

from basicsr_adl.compat import dist, entrypoints, optim, resume  # noqa: E402
from basicsr_adl.compat import lmdb_check  # noqa: E402

_installed = False


def install() -> None:
    global _installed
    if _installed:
        return
    optim.install()
    dist.install()
    resume.install()
    entrypoints.install()
    lmdb_check.install()
    _installed = True


install()
