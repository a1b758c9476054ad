"""Shared entry logic for ``basicsr_adl/train.py`` and ``basicsr_adl/test.py``.

They call BasicSR's own ``train_pipeline`` / ``test_pipeline`` with the current directory as root, so
``experiments/``, ``results/`` and ``tb_logger/`` land where the user runs the command. Option mistakes
(checked in ``basicsr_adl.compat.entrypoints``) become one line on stderr and exit status 2.
"""
import os
import sys
from typing import List, Optional

import basicsr_adl  # noqa: F401  (compat fixes + registration)
import basicsr.test as basicsr_test
import basicsr.train as basicsr_train

from basicsr_adl.compat.entrypoints import EXIT_OPTION_ERROR
from basicsr_adl.compat.options_check import OptionError


def normalise_argv(argv: List[str]) -> List[str]:
    """Accept ``--local-rank`` (torch.distributed.launch >= 2.0) as BasicSR's ``--local_rank``."""
    return [a.replace('--local-rank', '--local_rank', 1) if a.startswith('--local-rank') else a for a in argv]


def main(is_train: bool, argv: Optional[List[str]] = None) -> None:
    sys.argv[1:] = normalise_argv(sys.argv[1:] if argv is None else argv)
    try:
        if is_train:
            basicsr_train.train_pipeline(os.getcwd())
        else:
            basicsr_test.test_pipeline(os.getcwd())
    except OptionError as err:
        print(f'basicsr_adl: error: {err}', file=sys.stderr)
        sys.exit(EXIT_OPTION_ERROR)
