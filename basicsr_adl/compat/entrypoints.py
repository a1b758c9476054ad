"""Options checking and root handling for every entry into BasicSR's pipelines.

``basicsr.utils.options.parse_options`` (and the names ``basicsr.train`` / ``basicsr.test`` imported) is
replaced by a wrapper that

* fails early, naming the file or option, on a missing ``-opt`` file, bad YAML, a key given twice, and
  anything the options schema rejects (:mod:`basicsr_adl.options_schema`: unknown keys, types, ranges,
  missing keys) - on the file as written and again after ``--force_yml`` (``OptionError``; the plugin's CLI
  and BasicSR's own scripts print it as one line, exit 2);
* uses the current directory as root when BasicSR's script computes its root inside ``site-packages``
  (``python -m basicsr.train`` would otherwise write ``experiments/`` into the installation);
* when BasicSR's ``train.py``/``test.py`` runs as ``__main__`` (a second copy of the module that the
  plugin's patches of ``basicsr.train`` do not reach), gives that copy the same resume fixes;
* records the folders a fresh run creates (``experiments/<name>``, ``tb_logger/<name>``, ``results/<name>``),
  so that an error found before the model is built (an option only a model or dataset can check) removes
  them and puts back the folder BasicSR archived to make room (:func:`discard_startup_dirs`): the next run
  then finds the tree as it was. A resumed run creates none, so none is removed.
"""
import argparse
import os
import os.path as osp
import shutil
import sys
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Tuple

import yaml

import basicsr
import basicsr.test as basicsr_test
import basicsr.train as basicsr_train
import basicsr.utils.misc as basicsr_misc
import basicsr.utils.options as basicsr_options
from basicsr.utils.options import ordered_yaml

from basicsr_adl.compat import dist as compat_dist
from basicsr_adl.compat import resume
from basicsr_adl.compat.options_check import OptionError, check_options
from basicsr_adl.errors import DataError
from basicsr_adl.raw.lmdb_store import check_dataset_lmdbs

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


class _DuplicateKey(Exception):
    def __init__(self, key: Any, line: int, first: int) -> None:
        super().__init__(key, line, first)
        self.key, self.line, self.first = key, line, first


class StrictLoader(ordered_yaml()[0]):
    """BasicSR's ordered loader, but a key given twice in one mapping is an error (plain YAML keeps the last
    block silently, so a second ``train:`` would drop the first)."""


def _construct_mapping(loader: yaml.Loader, node: yaml.MappingNode) -> Dict[str, Any]:
    seen: Dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if key in seen:
            raise _DuplicateKey(key, line, seen[key])
        seen[key] = line
    return OrderedDict(loader.construct_pairs(node))


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_options_file(path: str) -> Dict[str, Any]:
    """The options file as BasicSR reads it; a missing file, bad YAML or a duplicate key is an OptionError."""
    if not osp.isfile(path):
        raise OptionError(f"options file not found: '{path}'")
    try:
        with open(path) as f:
            return yaml.load(f, Loader=StrictLoader)
    except _DuplicateKey as dup:
        raise OptionError(f"options file '{path}': duplicate key '{dup.key}' at line {dup.line} "
                          f'(first given at line {dup.first}); the first block would be ignored') from None
    except yaml.YAMLError as err:
        raise OptionError(f"options file '{path}' is not valid YAML: {err}".replace('\n', ' '))


# -- folders of a run that stops before its model is built -------------------------------------------------
_created: List[Tuple[str, Optional[str]]] = []  # (folder this run made, where BasicSR archived the old one)
_created_parents: List[str] = []  # missing parents (experiments/) made for them: removed when left empty
_model_built: List[bool] = [False]
_basicsr_mkdir_and_rename = basicsr_misc.mkdir_and_rename
_basicsr_build_model = {'train': basicsr_train.build_model, 'test': basicsr_test.build_model}


def _archives(path: str) -> set:
    parent, prefix = osp.dirname(path) or '.', osp.basename(path) + '_archived_'
    return {osp.join(parent, n) for n in os.listdir(parent) if n.startswith(prefix)} if osp.isdir(parent) else set()


def recording_mkdir_and_rename(path: str) -> None:
    """BasicSR's ``mkdir_and_rename`` (an existing folder is renamed ``*_archived_<time>``), remembered."""
    existed = osp.exists(path)
    before = _archives(path) if existed else set()
    parent, missing_parents = osp.dirname(osp.abspath(path)), []
    while parent and not osp.exists(parent):
        missing_parents.append(parent)
        parent = osp.dirname(parent)
    _basicsr_mkdir_and_rename(path)
    _created_parents.extend(missing_parents)  # innermost first
    archived = sorted(_archives(path) - before) if existed else []
    _created.append((path, archived[-1] if archived else None))


def _recording_build_model(pipeline: str):
    def build_model(opt):
        model = _basicsr_build_model[pipeline](opt)
        _model_built[0] = True
        return model
    return build_model


def discard_startup_dirs() -> List[str]:
    """Remove the folders this run created and put back what they archived, if the run stopped before its
    model was built (nothing trained or tested yet); returns the removed folders."""
    removed = []
    if _model_built[0]:
        return removed
    while _created:
        path, archived = _created.pop()
        if osp.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
        if archived and osp.isdir(archived) and not osp.exists(path):
            os.rename(archived, path)
    for parent in _created_parents:
        try:
            os.rmdir(parent)  # only if nothing else was put there
        except OSError:
            pass
    _created_parents.clear()
    return removed


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
    _created.clear()
    _created_parents.clear()
    _model_built[0] = False
    try:
        path = _opt_path(sys.argv[1:])
        if path is not None:
            file_opt = load_options_file(path)
            check_options(file_opt, is_train=is_train)
            compat_dist.use_options(file_opt)  # dist_params.timeout: parse_options starts the group without it
        opt, args = _basicsr_parse_options(usable_root(root_path), is_train=is_train)
        check_options(opt, is_train=is_train)  # again, after --force_yml overrides
        check_dataset_lmdbs(opt.get('datasets'))  # truncated data.mdb, listed keys missing: before any write
    except (OptionError, DataError) as err:
        if script is None:
            raise
        print(f'basicsr_adl: error: {err}', file=sys.stderr)
        sys.exit(EXIT_OPTION_ERROR)
    return opt, args


def install() -> None:
    for module in (basicsr_options, basicsr_train, basicsr_test):
        module.parse_options = checked_parse_options
    basicsr_misc.mkdir_and_rename = recording_mkdir_and_rename  # make_exp_dirs calls it through misc
    basicsr_train.mkdir_and_rename = recording_mkdir_and_rename  # tb_logger/<name>
    basicsr_train.build_model = _recording_build_model('train')
    basicsr_test.build_model = _recording_build_model('test')
