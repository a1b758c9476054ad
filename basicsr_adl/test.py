"""BasicSR-style test entry: `python basicsr_adl/test.py -opt options/....yml` or `python -m basicsr_adl.test`."""
import os
import sys

if __package__ in (None, ''):  # run as a file: make the repository root importable, not this folder
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or '.') != _here]
    sys.path.insert(0, os.path.dirname(_here))

from basicsr_adl.cli import main  # noqa: E402

if __name__ == '__main__':
    main(is_train=False)
