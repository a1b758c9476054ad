"""Shared entry logic for ``basicsr_adl/train.py`` and ``basicsr_adl/test.py``.

They call BasicSR's own ``train_pipeline`` / ``test_pipeline`` with the current directory as root, so
``experiments/``, ``results/`` and ``tb_logger/`` land where the user runs the command. Option mistakes
(checked in ``basicsr_adl.compat.entrypoints``) become one line on stderr and exit status 2; data errors
found while the datasets are built (``basicsr_adl.errors.DataError``: a truncated LMDB, listed keys missing)
one line and exit status 1; a rank that waited longer than ``dist_params.timeout`` for another one, one line
naming that rank and exit status 3.
"""
import os
import sys
from typing import List, Optional

import basicsr_adl.plugin  # noqa: F401  (compat fixes + registration)
import basicsr.test as basicsr_test
import basicsr.train as basicsr_train

from basicsr_adl.compat.dist import exit_if_rank_timeout
from basicsr_adl.compat.entrypoints import EXIT_OPTION_ERROR, discard_startup_dirs
from basicsr_adl.compat.options_check import OptionError
from basicsr_adl.errors import DataError

EXIT_DATA_ERROR = 1


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
        discard_startup_dirs()  # found while building the datasets or the model: leave no experiments/<name>
        print(f'basicsr_adl: error: {err}', file=sys.stderr)
        sys.exit(EXIT_OPTION_ERROR)
    except DataError as err:  # a truncated or inconsistent data file found while building the datasets
        discard_startup_dirs()
        print(f'basicsr_adl: error: {err}', file=sys.stderr)
        sys.exit(EXIT_DATA_ERROR)
    except RuntimeError as err:  # a collective that timed out (dist_params.timeout): one line, exit 3
        exit_if_rank_timeout(err)
        raise
