"""Import every ``*<suffix>.py`` module of a sub-package so its decorators register classes.

This mirrors BasicSR's own scan of ``*_arch.py`` / ``*_dataset.py`` / ``*_model.py`` files, so a new
module is picked up just by naming it by the convention.
"""
import importlib
import os
from types import ModuleType
from typing import List


def import_by_suffix(package: str, folder: str, suffix: str) -> List[ModuleType]:
    names = sorted(f[:-3] for f in os.listdir(folder) if f.endswith(suffix + '.py'))
    return [importlib.import_module(f'{package}.{name}') for name in names]
