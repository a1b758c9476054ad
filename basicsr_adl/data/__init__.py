"""Plugin data: every `*_dataset.py` here is imported so its classes register in BasicSR."""
import os

from basicsr_adl._autoimport import import_by_suffix

_modules = import_by_suffix(__name__, os.path.dirname(os.path.abspath(__file__)), '_dataset')
