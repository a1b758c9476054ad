"""The ``adl:`` options as typed, frozen records.

The options schema (:data:`basicsr_adl.options_schema.ADL_SECTION`) stays the one home of every default and
check, cross-field rules included; this module only gives its checked, filled result attribute access and
types, so ``ADLModel`` and :mod:`basicsr_adl.adl.recipes` read ``config.gate.every`` instead of dict keys with
their own fallbacks. A test keeps the field names equal to the schema's keys. Plain Python.
"""
from dataclasses import asdict, dataclass, fields
from typing import Any, Dict, Optional, Tuple, Union

from basicsr_adl.options_schema import ADL_SECTION, adl_options, adl_stage_lengths, defaults


@dataclass(frozen=True)
class GateConfig:
    criterion: str
    tolerance: float
    queue_size: int
    every: int
    refresh_every: int
    check_every: int
    revert_optimizer: bool
    on_reject: str


@dataclass(frozen=True)
class ValidationConfig:
    dynamic: bool
    start_fraction: float
    end_fraction: float
    iso_diverse_below: int


@dataclass(frozen=True)
class ADLConfig:
    mode: str
    pretrain_iters: Optional[int]
    adapt_iters: Optional[int]
    finetune_iters: Optional[int]
    target_batch: Optional[int]
    val_crop: Optional[int]
    gate: GateConfig
    validation: ValidationConfig
    use_metadata: Union[bool, str]
    clamp_iso: bool
    heatmap_epochs: int
    seed_offset: int
    write_rank_decisions: bool

    @classmethod
    def from_section(cls, adl: Dict[str, Any]) -> 'ADLConfig':
        """From a checked, filled ``adl:`` section."""
        plain = {k: v for k, v in adl.items() if k not in ('gate', 'validation')}
        return cls(gate=GateConfig(**adl['gate']), validation=ValidationConfig(**adl['validation']), **plain)

    @classmethod
    def from_options(cls, opt: Dict[str, Any]) -> 'ADLConfig':
        """``opt['adl']`` checked and filled by the schema (an error names the dotted option)."""
        return cls.from_section(adl_options(opt))

    @classmethod
    def defaults(cls, root: Optional[Dict[str, Any]] = None) -> 'ADLConfig':
        """The schema's defaults for an empty ``adl:`` (``root``: the options tree some defaults depend on)."""
        return cls.from_section(defaults(ADL_SECTION, root))

    @property
    def explicit_stages(self) -> bool:
        return self.pretrain_iters is not None

    def stage_lengths(self, total_iter: int) -> Tuple[int, int, int]:
        """(pretrain, adapt, finetune): the explicit lengths, or the schema's 10 % / 80 % / 10 % split."""
        return adl_stage_lengths(asdict(self), total_iter)


def field_names(record: type) -> Tuple[str, ...]:
    return tuple(f.name for f in fields(record))
