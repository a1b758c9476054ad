"""Shared entry logic for ``basicsr_adl/train.py`` and ``basicsr_adl/test.py``.

They call BasicSR's own ``train_pipeline`` / ``test_pipeline`` with the current directory as root, so
``experiments/``, ``results/`` and ``tb_logger/`` land where the user runs the command, and turn option
mistakes into one line on stderr (exit status 2) instead of a traceback.
"""
import argparse
import os
import sys
from typing import List, Optional

import yaml

import basicsr_adl  # noqa: F401  (compat fixes + registration)
import basicsr.test as basicsr_test
import basicsr.train as basicsr_train
from basicsr.utils.options import ordered_yaml

from basicsr_adl.compat.options_check import OptionError, check_options

EXIT_OPTION_ERROR = 2


def normalise_argv(argv: List[str]) -> List[str]:
    """Accept ``--local-rank`` (torch.distributed.launch >= 2.0) as BasicSR's ``--local_rank``."""
    return [a.replace('--local-rank', '--local_rank', 1) if a.startswith('--local-rank') else a for a in argv]


def _opt_path(argv: List[str]) -> Optional[str]:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument('-opt', type=str)
    known, _ = parser.parse_known_args(argv)
    return known.opt


def precheck(argv: List[str], is_train: bool) -> None:
    """Fail early, naming the file or option, before BasicSR creates directories or process groups."""
    path = _opt_path(argv)
    if path is None:
        return  # BasicSR's own argparse prints the usage
    if not os.path.isfile(path):
        raise OptionError(f"options file not found: '{path}'")
    try:
        with open(path) as f:
            opt = yaml.load(f, Loader=ordered_yaml()[0])
    except yaml.YAMLError as err:
        raise OptionError(f"options file '{path}' is not valid YAML: {err}".replace('\n', ' '))
    check_options(opt, is_train=is_train)


def _checked_parse_options(original, is_train):
    def parse(root_path, is_train=is_train):
        opt, args = original(root_path, is_train=is_train)
        check_options(opt, is_train=is_train)  # after --force_yml overrides
        return opt, args
    return parse


def main(is_train: bool, argv: Optional[List[str]] = None) -> None:
    argv = normalise_argv(sys.argv[1:] if argv is None else argv)
    sys.argv[1:] = argv
    module = basicsr_train if is_train else basicsr_test
    original = module.parse_options
    module.parse_options = _checked_parse_options(original, is_train)
    root = os.getcwd()
    try:
        precheck(argv, is_train)
        if is_train:
            basicsr_train.train_pipeline(root)
        else:
            basicsr_test.test_pipeline(root)
    except OptionError as err:
        print(f'basicsr_adl: error: {err}', file=sys.stderr)
        sys.exit(EXIT_OPTION_ERROR)
    finally:
        module.parse_options = original
