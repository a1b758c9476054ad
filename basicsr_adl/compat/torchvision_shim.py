"""Make ``torchvision.transforms.functional_tensor`` importable again.

basicsr 1.4.2 (``basicsr/data/degradations.py``) imports ``rgb_to_grayscale`` from that module, which
torchvision 0.17 renamed to ``_functional_tensor``. We alias the new module under the old name in
``sys.modules`` before ``basicsr`` is imported; no installed file is edited.
"""
import importlib
import sys

OLD_NAME = 'torchvision.transforms.functional_tensor'
NEW_NAME = 'torchvision.transforms._functional_tensor'


def install() -> None:
    if OLD_NAME in sys.modules:
        return
    try:
        importlib.import_module(OLD_NAME)
        return
    except ImportError:
        pass
    sys.modules[OLD_NAME] = importlib.import_module(NEW_NAME)
