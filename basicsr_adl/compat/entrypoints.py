"""Options checking and root handling for every entry into BasicSR's pipelines.

``basicsr.utils.options.parse_options`` (and the names ``basicsr.train`` / ``basicsr.test`` imported) is
replaced by a wrapper that

* fails early, naming the file or option, on a missing ``-opt`` file, bad YAML, a missing key or an
  unknown type (``OptionError``; the plugin's CLI and BasicSR's own scripts print it as one line, exit 2);
* uses the current directory as root when BasicSR's script computes its root inside ``site-packages``
  (``python -m basicsr.train`` would otherwise write ``experiments/`` into the installation);
* when BasicSR's ``train.py``/``test.py`` runs as ``__main__`` (a second copy of the module that the
  plugin's patches of ``basicsr.train`` do not reach), gives that copy the same resume fixes.
"""
import argparse
import os
import os.path as osp
import sys
from typing import Any, Dict, List, Optional

import yaml

import basicsr
import basicsr.test as basicsr_test
import basicsr.train as basicsr_train
import basicsr.utils.options as basicsr_options
from basicsr.utils.options import ordered_yaml

from basicsr_adl.compat import resume
from basicsr_adl.compat.options_check import OptionError, check_options

EXIT_OPTION_ERROR = 2
_basicsr_parse_options = basicsr_options.parse_options


def usable_root(root_path: str) -> str:
    """``root_path`` unless it is the folder holding the installed ``basicsr`` (site-packages): then cwd."""
    install_dir = osp.dirname(osp.dirname(osp.abspath(basicsr.__file__)))
    if osp.abspath(root_path) == install_dir and osp.basename(install_dir) in ('site-packages', 'dist-packages'):
        return os.getcwd()
    return root_path


def _opt_path(argv: List[str]) -> Optional[str]:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument('-opt', type=str)
    known, _ = parser.parse_known_args(argv)
    return known.opt


def load_options_file(path: str) -> Dict[str, Any]:
    if not osp.isfile(path):
        raise OptionError(f"options file not found: '{path}'")
    try:
        with open(path) as f:
            return yaml.load(f, Loader=ordered_yaml()[0])
    except yaml.YAMLError as err:
        raise OptionError(f"options file '{path}' is not valid YAML: {err}".replace('\n', ' '))


def _basicsr_script(caller_globals: Dict[str, Any]) -> Optional[str]:
    """'train' / 'test' when the caller is BasicSR's own script running as ``__main__``."""
    if caller_globals.get('__name__') != '__main__' or not caller_globals.get('__file__'):
        return None
    here = osp.realpath(caller_globals['__file__'])
    for name, module in (('train', basicsr_train), ('test', basicsr_test)):
        if here == osp.realpath(module.__file__):
            return name
    return None


def checked_parse_options(root_path: str, is_train: bool = True):
    caller = sys._getframe(1).f_globals
    script = _basicsr_script(caller)
    if script == 'train':
        caller['load_resume_state'] = resume.load_resume_state
        caller['CPUPrefetcher'] = resume.ResumableCPUPrefetcher
    try:
        path = _opt_path(sys.argv[1:])
        if path is not None:
            check_options(load_options_file(path), is_train=is_train)
        opt, args = _basicsr_parse_options(usable_root(root_path), is_train=is_train)
        check_options(opt, is_train=is_train)  # again, after --force_yml overrides
    except OptionError as err:
        if script is None:
            raise
        print(f'basicsr_adl: error: {err}', file=sys.stderr)
        sys.exit(EXIT_OPTION_ERROR)
    return opt, args


def install() -> None:
    for module in (basicsr_options, basicsr_train, basicsr_test):
        module.parse_options = checked_parse_options
