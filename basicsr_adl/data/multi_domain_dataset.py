"""MultiDomainDataset: ADL's source domains and small target set inside BasicSR's single ``train`` phase.

BasicSR builds one training dataset and feeds its batches to ``model.feed_data``. ADL needs more control:
each iteration it chooses a source domain, draws a batch from it, draws patches from the target pairs outside
the current validation subset, and scores whole target images. So this dataset is two things:

* for BasicSR's dataloader it is a cheap *tick* dataset (``__getitem__`` returns ``{'tick': i}``; length
  ``ticks_per_epoch`` iterations per BasicSR epoch) that only paces the loop - keep ``num_worker_per_gpu: 0``;
* for :class:`~basicsr_adl.models.adl_model.ADLModel`, which takes the same instance
  (:meth:`MultiDomainDataset.from_options`: the one built from equal options in this process), it holds one
  sub-dataset per domain (any registered type: the RAW LMDB datasets, BasicSR's
  ``PairedImageDataset``, ...) and serves single items with sensor/ISO metadata filled in.

Options (under ``datasets.train``)::

    type: MultiDomainDataset
    target: <domain name>          # the small target set
    sources: [<name>, ...]         # optional; default: every other domain
    target_pairs: 20               # optional; a seeded random subset of the target's pairs (target_seed)
    domains:
      <name>: {type: <registered dataset>, ...its own options...,
               sensor_index: <int>, iso: <float>}   # optional metadata for datasets that have none

Metadata: ``sensor`` is ``sensor_index`` if given, else the item's own ``sensor``, else the domain's position
in ``domains``; ``iso`` is the item's own ``iso``, else the domain's ``iso`` option, else NaN (a net that uses
ISO then stops with an error naming the option).
"""
import json
import math
import os
from copy import deepcopy
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch.utils import data

from basicsr.utils.dist_util import get_dist_info
from basicsr.utils.registry import DATASET_REGISTRY

from basicsr_adl.compat.options_check import OptionError

META_KEYS = ('sensor_index', 'iso')
_BUILT: Dict[str, 'MultiDomainDataset'] = {}  # options fingerprint -> the last instance built in this process


def _fingerprint(opt: Dict[str, Any]) -> str:
    return json.dumps(opt, sort_keys=True, default=str)


@DATASET_REGISTRY.register()
class MultiDomainDataset(data.Dataset):
    def __init__(self, opt: Dict[str, Any]) -> None:
        super().__init__()
        key = _fingerprint(opt)
        self.opt = opt
        where = 'datasets.train'
        domains = opt.get('domains')
        if not isinstance(domains, dict) or not domains:
            raise OptionError(f"option '{where}.domains' must map domain names to dataset options")
        self.domain_names: List[str] = [str(k) for k in domains]
        target = opt.get('target')
        if target not in domains:
            raise OptionError(f"option '{where}.target': '{target}' is not a configured domain; "
                              f"domains: {', '.join(self.domain_names)}")
        self.target: str = str(target)
        sources = opt.get('sources')
        if sources is None:
            sources = [d for d in self.domain_names if d != self.target]
        for s in sources:
            if s not in domains:
                raise OptionError(f"option '{where}.sources': unknown domain '{s}'; "
                                  f"domains: {', '.join(self.domain_names)}")
            if s == self.target:
                raise OptionError(f"option '{where}.sources': '{s}' is the target domain")
        self.sources: List[str] = list(sources)

        self._domain_opts: Dict[str, Dict[str, Any]] = {}
        self._train_sets: Dict[str, data.Dataset] = {}
        self._eval_set: Optional[data.Dataset] = None
        for name in [self.target] + self.sources:
            self._domain_opts[name] = self._sub_options(name, domains[name], opt.get('phase', 'train'))
            self._train_sets[name] = self._build(name, self._domain_opts[name])
            if len(self._train_sets[name]) == 0:
                raise OptionError(f"option '{where}.domains.{name}': the domain has no samples "
                                  '(check its data paths)')

        n_target = len(self._train_sets[self.target])
        pairs = opt.get('target_pairs')
        if pairs is None:
            self.target_indices = list(range(n_target))
        else:
            if not isinstance(pairs, int) or pairs < 1 or pairs > n_target:
                raise OptionError(f"option '{where}.target_pairs': {pairs!r} must be an integer in 1..{n_target} "
                                  f"(domain '{self.target}' has {n_target} pairs)")
            gen = torch.Generator().manual_seed(int(opt.get('target_seed', 0)))
            self.target_indices = sorted(torch.randperm(n_target, generator=gen)[:pairs].tolist())
        ticks = opt.get('ticks_per_epoch', 1000)
        if not isinstance(ticks, int) or ticks < 1:
            raise OptionError(f"option '{where}.ticks_per_epoch' must be an integer >= 1, got {ticks!r}")
        # BasicSR counts ceil(len / (batch * world)) iterations per epoch but drops the last partial batch;
        # a length that is an exact multiple keeps both counts equal (ticks_per_epoch iterations per epoch).
        _, world = get_dist_info()
        self.ticks = ticks * int(opt.get('batch_size_per_gpu', 1)) * world
        _BUILT.clear()  # one slot: the loader's instance until the model has taken it
        _BUILT[key] = self

    @classmethod
    def from_options(cls, opt: Dict[str, Any]) -> 'MultiDomainDataset':
        """The instance built from equal options in this process (BasicSR's loader builds it first, and the model
        takes the same one, so every sub-dataset is opened once), else a new one."""
        found = _BUILT.get(_fingerprint(opt))
        return found if found is not None else cls(deepcopy(opt))

    # -- construction -----------------------------------------------------------------------------------------
    def _sub_options(self, name: str, dopt: Any, phase: str) -> Dict[str, Any]:
        if not isinstance(dopt, dict) or 'type' not in dopt:
            raise OptionError(f"missing required option 'datasets.train.domains.{name}.type'")
        if dopt['type'] not in DATASET_REGISTRY or dopt['type'] == type(self).__name__:
            choices = ', '.join(sorted(k for k in DATASET_REGISTRY.keys() if k != type(self).__name__))
            raise OptionError(f"option 'datasets.train.domains.{name}.type': '{dopt['type']}' is not a registered "
                              f'dataset; choices: {choices}')
        sub = deepcopy(dict(dopt))
        sub.setdefault('name', name)
        sub.setdefault('phase', phase)
        for key in ('scale', 'io_backend'):
            if key in self.opt and key not in sub:
                sub[key] = deepcopy(self.opt[key])
        sub.setdefault('scale', 1)
        return sub

    def _build(self, name: str, sub: Dict[str, Any]) -> data.Dataset:
        cls = DATASET_REGISTRY.get(sub['type'])
        kwargs = deepcopy({k: v for k, v in sub.items() if k not in META_KEYS})
        try:
            return cls(kwargs)
        except OptionError:
            raise
        except (KeyError, ValueError, FileNotFoundError, OSError, AssertionError) as err:
            raise OptionError(f"option 'datasets.train.domains.{name}': building {sub['type']} failed: "
                              f'{type(err).__name__}: {err}') from err

    # -- BasicSR dataloader side: ticks -------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.ticks

    def __getitem__(self, index: int) -> Dict[str, Any]:
        return {'tick': index}

    # -- ADLModel side -----------------------------------------------------------------------------------------
    def domain_size(self, name: str) -> int:
        return len(self.target_indices) if name == self.target else len(self._train_sets[name])

    def sensor_index(self, name: str) -> Optional[int]:
        dopt = self._domain_opts[name]
        return int(dopt['sensor_index']) if dopt.get('sensor_index') is not None else None

    def _with_metadata(self, name: str, item: Dict[str, Any]) -> Dict[str, Any]:
        dopt = self._domain_opts[name]
        sensor = self.sensor_index(name)
        if sensor is None:
            sensor = int(item['sensor']) if item.get('sensor') is not None else self.domain_names.index(name)
        iso = item.get('iso')
        if iso is None or not math.isfinite(float(iso)):  # the item has none: the domain's option, if any
            iso = dopt.get('iso', iso)
        iso = float('nan') if iso is None else float(iso)
        out = {'lq': item['lq'], 'gt': item['gt'], 'sensor': torch.tensor(sensor, dtype=torch.long),
               'iso': torch.tensor(iso, dtype=torch.float32), 'domain': name}
        for key in ('lq_path', 'gt_path'):  # where the pair comes from, to name it in messages
            if item.get(key) is not None:
                out[key] = item[key]
        return out

    def domain_isos(self, name: str) -> List[float]:
        """The finite ISOs of domain ``name``'s training pairs (the target: its configured pairs), as items carry
        them: the sub-dataset's ``item_isos()`` when it has one (metadata only), else by loading every item (only
        when its first item carries an ISO; otherwise every item takes the domain's ``iso`` option)."""
        sub = self._train_sets[name]
        if hasattr(sub, 'item_isos'):
            raw = sub.item_isos()
        elif sub[0].get('iso') is None:  # items without ISO (BasicSR's datasets): do not read every image for it
            raw = [None] * len(sub)
        else:
            raw = [sub[i].get('iso') for i in range(len(sub))]
        if name == self.target:
            raw = [raw[i] for i in self.target_indices]
        fallback = self._domain_opts[name].get('iso')
        isos = []
        for iso in raw:
            if iso is None or not math.isfinite(float(iso)):
                iso = fallback
            if iso is not None and math.isfinite(float(iso)):
                isos.append(float(iso))
        return isos

    def source_of(self, name: str, item: Dict[str, Any], part: str) -> str:
        """Where the noisy (``part`` 'lq') or clean ('gt') image of ``item`` comes from, for a message: its
        file, or its key in the LMDB named by the domain's ``dataroot_<part>``."""
        where = item.get(f'{part}_path')
        if where is None:
            return f"(no {part}_path given by {self._domain_opts[name]['type']})"
        root = self._domain_opts[name].get(f'dataroot_{part}')
        if os.path.isfile(str(where)) or not root:
            return f"'{where}'"
        return f"key '{where}' in '{root}'"

    def train_item(self, name: str, index: int) -> Dict[str, Any]:
        """One training sample (the sub-dataset's own random crop/augmentation) of domain ``name``.

        For the target, ``index`` counts within the configured target pairs."""
        real = self.target_indices[index] if name == self.target else index
        return self._with_metadata(name, self._train_sets[name][real])

    def train_batch(self, parts: Sequence[Tuple[str, Sequence[int]]]) -> Dict[str, torch.Tensor]:
        """One batch from (domain, indices) parts, in order (ADL: the source part, then the target part)."""
        try:
            return collate_items([self.train_item(name, i) for name, indices in parts for i in indices])
        except RuntimeError as err:
            raise OptionError('option datasets.train.domains.*.gt_size: source and target patches must have the '
                              f'same size to form one batch ({err})') from err

    def target_eval_item(self, index: int) -> Dict[str, Any]:
        """A whole target pair without augmentation (the sub-dataset built with phase 'val')."""
        if self._eval_set is None:
            sub = dict(self._domain_opts[self.target], phase='val')
            self._eval_set = self._build(self.target, sub)
        return self._with_metadata(self.target, self._eval_set[self.target_indices[index]])


def collate_items(items: Sequence[Dict[str, Any]]) -> Dict[str, torch.Tensor]:
    """Stack items of equal patch size into a batch (lq, gt, sensor, iso)."""
    return {
        'lq': torch.stack([torch.as_tensor(it['lq']) for it in items]),
        'gt': torch.stack([torch.as_tensor(it['gt']) for it in items]),
        'sensor': torch.stack([it['sensor'] for it in items]),
        'iso': torch.stack([it['iso'] for it in items]),
    }


__all__ = ['MultiDomainDataset', 'collate_items']
