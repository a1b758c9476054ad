"""One schema for the whole options tree: known keys, types, ranges, required keys and the plugin's defaults.

BasicSR reads options with ``opt['key']`` / ``opt.get('key', default)`` wherever it needs them, so a misspelt
key is silently ignored, a number that YAML read as text reaches torch, and a missing key is a ``KeyError``
deep in a builder. The tree below is checked once, before anything is written to disk:

* every section names its known keys; an unknown key is an error with the closest known key (difflib);
* leaves have a type (numbers that YAML 1.1 reads as text, ``lr: 1e-3``, are converted in place, as BasicSR
  users expect), a range or choices, and may be required;
* sections that depend on a ``type`` (datasets, nets, losses, metrics, optimizers, schedulers, the model)
  are resolved through ``Context.registries`` (given by ``basicsr_adl.compat.options_check``): BasicSR's own
  datasets and models are described by the tables below (written from BasicSR 1.4.2's code), nets, losses,
  metrics and optimizers by their constructor's parameters (``inspect.signature``);
* a type the tables do not know (another plugin's) is checked only for what its class declares in an
  ``option_schema`` attribute (a dict of key -> :class:`Field` / :class:`Section`; for a model, a dict with
  any of ``top``, ``train``, ``val``), otherwise only for ``type``.

It is also the one home of the plugin's defaults (``adl.*``, ``lan.*``, ``dist_params.timeout``): the models
read their sections through :func:`adl_options` / :func:`lan_options`, which check and fill them, and the
option tables in ``docs/adl.md`` and ``docs/lan.md`` are generated from here (:func:`option_table`).

Plain Python (stdlib only): no BasicSR or torch import.
"""
import copy
import difflib
import inspect
import re
from dataclasses import dataclass, replace
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union


class OptionError(ValueError):
    """A user error in the options file; the CLI prints it as one line and exits with status 2."""


class _Missing:
    def __repr__(self) -> str:
        return 'MISSING'


MISSING = _Missing()  # no default: an absent key stays absent
_INT_TEXT = re.compile(r'^[+-]?\d+$')


@dataclass(frozen=True)
class Context:
    """What a check may depend on besides the value: the whole tree, train or test, the registries."""
    root: Dict[str, Any]
    is_train: bool
    registries: Any = None   # lookup(kind, name) -> object or None; choices(kind) -> names
    fill: bool = False       # fill defaults into the checked sections (the readers), or only check
    phase: Optional[str] = None  # the dataset phase being checked ('train', 'val', 'test')


def join(path: str, key: Any) -> str:
    return f'{path}.{key}' if path else str(key)


def _show(value: Any) -> str:
    return repr(value) if not isinstance(value, bool) else ('true' if value else 'false')


def _to_number(value: Any) -> Optional[Union[int, float]]:
    """int/float as is; text such as '1e-3' (PyYAML reads exponents without a dot as str) converted; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        text = value.strip()
        if _INT_TEXT.match(text):
            return int(text)
        try:
            number = float(text)
        except ValueError:
            return None
        return number if number == number else None  # NaN is not a usable option value
    return None


class Field:
    """One leaf option.

    ``kind``: 'int', 'number', 'bool', 'str', 'list', 'dict', 'any', or a tuple of them (first match wins);
    'int' and 'number' convert numeric text. ``literals`` are also accepted as they are (``num_gpu: auto``).
    ``required`` may be a callable of the :class:`Context` (e.g. only when training). ``default`` may be a
    callable ``(section, ctx)`` evaluated after the static defaults (``lan.lr`` depends on ``lan.mode``).
    """

    def __init__(self, kind: Union[str, Tuple[str, ...]] = 'any', default: Any = MISSING, *,
                 required: Union[bool, Callable[[Context], bool]] = False, choices: Optional[Sequence[Any]] = None,
                 what: str = 'value', literals: Sequence[Any] = (), min: Optional[float] = None,
                 max: Optional[float] = None, above: Optional[float] = None, below: Optional[float] = None,
                 nullable: Optional[bool] = None, items: Optional['Field'] = None, doc: str = '',
                 default_doc: Optional[str] = None, why: str = '') -> None:
        self.kinds = (kind,) if isinstance(kind, str) else tuple(kind)
        self.default, self.required, self.choices, self.what = default, required, choices, what
        self.literals, self.items, self.doc, self.default_doc, self.why = tuple(literals), items, doc, default_doc, why
        self.min, self.max, self.above, self.below = min, max, above, below
        if nullable is None:  # None is "not set" for BasicSR keys; a plugin key with a real default needs a value
            nullable = default is None or (default is MISSING and not required and not choices)
        self.nullable = nullable

    def expected(self) -> str:
        names = {'int': 'an integer', 'number': 'a number', 'bool': 'true or false', 'str': 'a string',
                 'list': 'a list', 'dict': 'a mapping', 'any': 'a value', 'lenient_number': 'a number'}
        parts = [_show(v) if not isinstance(v, str) else v for v in self.literals] + [names[k] for k in self.kinds]
        return ' or '.join(parts)

    def _convert(self, value: Any) -> Tuple[bool, Any]:
        for kind in self.kinds:
            if kind == 'any':
                return True, value
            if kind in ('number', 'lenient_number'):
                number = _to_number(value)
                if number is not None:
                    return True, number
                if kind == 'lenient_number' and not isinstance(value, str):
                    return True, value  # taken from a signature default: only text is held to be a number
            elif kind == 'int':
                number = _to_number(value)
                if number is not None and float(number).is_integer():
                    return True, int(number)
            elif kind == 'bool' and isinstance(value, bool):
                return True, value
            elif kind == 'str' and isinstance(value, str):
                return True, value
            elif kind == 'list' and isinstance(value, (list, tuple)):
                return True, value
            elif kind == 'dict' and isinstance(value, dict):
                return True, value
        return False, value

    def check(self, value: Any, path: str, ctx: Context) -> Any:
        if value is None:
            if self.nullable or None in self.literals:
                return None
            raise OptionError(f"option '{path}': expected {self.expected()}, got null")
        if any(value == lit and type(value) is type(lit) for lit in self.literals):
            return value
        ok, value = self._convert(value)
        if not ok:
            raise OptionError(f"option '{path}': expected {self.expected()}, got {_show(value)}")
        if self.choices is not None and value not in self.choices:
            raise OptionError(f"option '{path}': unknown {self.what} {_show(value)}; "
                              f"choices: {', '.join(str(c) for c in self.choices)}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            for bound, ok_, sign in ((self.min, lambda b: value >= b, '>='), (self.max, lambda b: value <= b, '<='),
                                     (self.above, lambda b: value > b, '>'), (self.below, lambda b: value < b, '<')):
                if bound is not None and not ok_(bound):
                    raise OptionError(f"option '{path}' must be {sign} {bound}, got {_show(value)}")
        if self.items is not None and isinstance(value, (list, tuple)):
            converted = [self.items.check(v, f'{path}[{i}]', ctx) for i, v in enumerate(value)]
            if isinstance(value, list):
                value[:] = converted
            else:
                value = tuple(converted)
        return value


class Section:
    """A mapping of known keys (``fields``), plus keys matching ``patterns`` (regex -> spec).

    ``open``: extra keys are allowed (checked elsewhere, or another plugin's). ``checks``: cross-field
    functions ``(section, path, ctx)`` run on the section with its defaults filled; ``prechecks`` run first,
    on the section as written (a model's rules on the tree, whose breach explains the errors below it).
    ``owner`` names what reads the keys (shown when an unknown key has no close match).
    """

    def __init__(self, fields: Optional[Dict[str, Any]] = None, *, patterns: Sequence[Tuple[str, Any, str]] = (),
                 open: bool = False, required: Union[bool, Callable[[Context], bool]] = False,
                 nullable: bool = False, checks: Sequence[Callable] = (), prechecks: Sequence[Callable] = (),
                 owner: str = '', doc: str = '', phase: Optional[str] = None, why: str = '') -> None:
        self.fields = dict(fields or {})
        self.patterns = [(re.compile(p), spec, example) for p, spec, example in patterns]
        self.open, self.required, self.nullable, self.checks = open, required, nullable, list(checks)
        self.prechecks = list(prechecks)
        self.owner, self.doc, self.phase, self.why = owner, doc, phase, why

    def spec_for(self, key: Any) -> Any:
        if key in self.fields:
            return self.fields[key]
        for pattern, spec, _ in self.patterns:
            if isinstance(key, str) and pattern.fullmatch(key):
                return spec
        return None

    def known(self) -> List[str]:
        return list(self.fields) + [example for _, _, example in self.patterns]

    def unknown(self, key: Any, path: str) -> OptionError:
        close = difflib.get_close_matches(str(key), [str(k) for k in self.known()], n=1, cutoff=0.6)
        parent = path.rsplit('.', 1)[0] if '.' in path else ''
        if close:
            return OptionError(f"unknown option '{path}'; did you mean '{join(parent, close[0])}'?")
        who = f' ({self.owner} reads: ' if self.owner else ' (known: '
        return OptionError(f"unknown option '{path}'{who}{', '.join(sorted(map(str, self.known()))) or 'nothing'})")

    def check(self, value: Any, path: str, ctx: Context) -> Any:
        if value is None and self.nullable:
            return None
        if not isinstance(value, dict):
            raise OptionError(f"option '{path}' must be a mapping of options, got {_show(value)}")
        if self.phase is not None:
            ctx = replace(ctx, phase=self.phase)
        for check in self.prechecks:
            check(value, path, ctx)
        for key in list(value):
            spec = self.spec_for(key)
            if spec is None:
                if self.open:
                    continue
                raise self.unknown(key, join(path, key))
            value[key] = check_value(value[key], spec, join(path, key), ctx)
        for key, spec in self.fields.items():
            if is_required(spec, ctx) and value.get(key) is None:
                raise missing(join(path, key), spec)
        if ctx.fill:
            fill_defaults(value, self, ctx)
        if self.checks:
            view = value if ctx.fill else fill_defaults(copy.deepcopy(value), self, ctx)
            for check in self.checks:
                check(view, path, ctx)
        return value


class MapOf:
    """A mapping of free names (dataset phases, metric names, domains) whose values follow ``spec_for(key)``."""

    def __init__(self, spec_for: Callable[[str], Any], *, required: Union[bool, Callable] = False,
                 nonempty: str = '', nullable: bool = False, why: str = '') -> None:
        self.spec_for, self.required, self.nonempty = spec_for, required, nonempty
        self.nullable, self.why = nullable, why

    def check(self, value: Any, path: str, ctx: Context) -> Any:
        if value is None and self.nullable:
            return None
        if not isinstance(value, dict) or (self.nonempty and not value):
            raise OptionError(f"option '{path}' must {self.nonempty or 'be a mapping'}, got {_show(value)}")
        for key in list(value):
            value[key] = check_value(value[key], self.spec_for(key), join(path, key), ctx)
        return value


class Dynamic:
    """A spec chosen from the value itself (usually by its ``type``): ``resolve(value, path, ctx) -> spec``."""

    def __init__(self, resolve: Callable[[Any, str, Context], Any], *, required: Union[bool, Callable] = False,
                 why: str = '', nullable: bool = False) -> None:
        self.resolve, self.required, self.why, self.nullable = resolve, required, why, nullable

    def check(self, value: Any, path: str, ctx: Context) -> Any:
        if value is None and self.nullable:
            return None
        spec = self.resolve(value, path, ctx)
        return value if spec is None else check_value(value, spec, path, ctx)


def check_value(value: Any, spec: Any, path: str, ctx: Context) -> Any:
    return spec.check(value, path, ctx)


def is_required(spec: Any, ctx: Context) -> bool:
    required = getattr(spec, 'required', False)
    return bool(required(ctx) if callable(required) else required)


def missing(path: str, spec: Any = None) -> OptionError:
    why = getattr(spec, 'why', '')
    return OptionError(f"missing required option '{path}'" + (f' ({why})' if why else ''))


def fill_defaults(value: Dict[str, Any], section: Section, ctx: Context) -> Dict[str, Any]:
    """Put every absent default of ``section`` (and of its nested sections) into ``value``; returns it."""
    computed = []
    for key, spec in section.fields.items():
        if isinstance(spec, Section):
            if value.get(key) is None and not spec.nullable:
                value[key] = {}
            if isinstance(value.get(key), dict):
                fill_defaults(value[key], spec, ctx)
        elif isinstance(spec, Field) and key not in value and spec.default is not MISSING:
            if callable(spec.default):
                computed.append((key, spec))
            else:
                value[key] = copy.deepcopy(spec.default)
    for key, spec in computed:
        value[key] = spec.default(value, ctx)
    return value


TRAINING = lambda ctx: ctx.is_train  # noqa: E731  (required only when training)
TESTING = lambda ctx: not ctx.is_train  # noqa: E731
TRAIN_PHASE = lambda ctx: ctx.phase == 'train'  # noqa: E731  (a dataset key BasicSR reads when training only)


# ------------------------------------------------------------------------------------------ signatures
DATA_ARGS = ('img', 'img2')  # what BasicSR's calculate_metric passes as data, not options


def _field_from_parameter(param: inspect.Parameter) -> Field:
    """A Field for one constructor parameter; only text given for a numeric default is held to be a number."""
    required = param.default is inspect.Parameter.empty
    default = None if required else param.default
    if isinstance(default, (int, float)) and not isinstance(default, bool):
        return Field('lenient_number', required=required, nullable=True)
    if isinstance(default, (list, tuple)) and default and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in default):
        return Field('any', required=required, nullable=True, items=Field('lenient_number', nullable=True))
    return Field('any', required=required, nullable=not required)


def signature_section(fn: Callable, owner: str, skip: Iterable[str] = (), kwargs_sink: bool = False,
                      extra: Optional[Dict[str, Any]] = None) -> Section:
    """``type`` plus the parameters of ``fn`` (a class: its constructor). A ``**kwargs`` parameter accepts any
    key, unless ``kwargs_sink`` says it only swallows keys named in ``extra`` (BasicSR's metrics and ``better``)."""
    fields: Dict[str, Any] = {'type': Field('str', required=True)}
    open_ = False
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return Section(fields, open=True, owner=owner)
    skip = set(skip) | {'self'}
    for name, param in params.items():
        if name in skip or param.kind is inspect.Parameter.VAR_POSITIONAL:
            continue
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            open_ = not kwargs_sink
            continue
        fields[name] = _field_from_parameter(param)
    fields.update(extra or {})
    return Section(fields, open=open_, owner=owner)


def declared_section(obj: Any, owner: str, base: Dict[str, Any]) -> Optional[Section]:
    """The class's own ``option_schema`` (key -> Field/Section) added to ``base``, or None if it declares none."""
    declared = getattr(obj, 'option_schema', None)
    if not isinstance(declared, dict):
        return None
    return Section({**base, **declared}, owner=owner)


def _registered(kind: str, what: str, path: str, value: Any, ctx: Context) -> Any:
    """The registered object for ``value`` (a type name) or an error listing the choices."""
    reg = ctx.registries
    found = reg.lookup(kind, value) if reg is not None and isinstance(value, str) else None
    if found is None and reg is not None:
        choices = sorted(reg.choices(kind))
        close = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else ''
        raise OptionError(f"option '{path}': '{value}' is not {what}{hint}; choices: {', '.join(choices)}")
    return found


def _typed(kind: str, what: str, build: Callable[[Any, str, Dict[str, Any], str], Section], required=False,
           why: str = '', nullable: bool = False) -> Dynamic:
    """A section resolved by its ``type`` key through the registries."""
    def resolve(value: Any, path: str, ctx: Context) -> Any:
        if not isinstance(value, dict):
            raise OptionError(f"option '{path}' must be a mapping with a 'type', got {_show(value)}")
        if value.get('type') is None:
            raise missing(join(path, 'type'))
        obj = _registered(kind, what, join(path, 'type'), value['type'], ctx)
        if obj is None:  # no registries given: keys are not checked
            return Section(open=True)
        return build(obj, value['type'], value, path)
    return Dynamic(resolve, required=required, why=why, nullable=nullable)


def _arch_section(obj: Any, name: str, value: Dict[str, Any], path: str) -> Section:
    return declared_section(obj, f'arch {name}', {'type': Field('str', required=True)}) or \
        signature_section(obj, f'arch {name}')


def _loss_section(obj: Any, name: str, value: Dict[str, Any], path: str) -> Section:
    return declared_section(obj, f'loss {name}', {'type': Field('str', required=True)}) or \
        signature_section(obj, f'loss {name}')


def _metric_section(obj: Any, name: str, value: Dict[str, Any], path: str) -> Section:
    better = {'better': Field('str', choices=('higher', 'lower'))}  # read by BaseModel for the best-metric log
    declared = declared_section(obj, f'metric {name}', {'type': Field('str', required=True), **better})
    if declared is not None:
        return declared
    own = getattr(obj, '__module__', '').startswith('basicsr.')  # their **kwargs only swallow 'better'
    return signature_section(obj, f'metric {name}', skip=DATA_ARGS, kwargs_sink=own, extra=better)


def _optimizer_section(obj: Any, name: str, value: Dict[str, Any], path: str) -> Section:
    lr = Field('number', required=True, above=0)  # BasicSR passes it on positionally
    return signature_section(obj, f'optimizer {name}', skip=('params',), extra={'lr': lr})


def _scheduler_section(obj: Any, name: str, value: Dict[str, Any], path: str) -> Section:
    return signature_section(obj, f'scheduler {name}', skip=('optimizer',))


ARCH = lambda **kw: _typed('arch', 'a registered arch', _arch_section, **kw)  # noqa: E731
LOSS = lambda **kw: _typed('loss', 'a registered loss', _loss_section, **kw)  # noqa: E731
METRIC = lambda **kw: _typed('metric', 'a registered metric', _metric_section, **kw)  # noqa: E731
OPTIMIZER = lambda **kw: _typed('optimizer', 'a torch.optim optimizer', _optimizer_section, **kw)  # noqa: E731
SCHEDULER = lambda **kw: _typed('scheduler', 'a supported scheduler', _scheduler_section, **kw)  # noqa: E731


# ------------------------------------------------------------------------------------------ datasets
def _s(**kw) -> Field:
    return Field('str', **kw)


def _b(**kw) -> Field:
    return Field('bool', **kw)


def _i(**kw) -> Field:
    return Field('int', **kw)


def _n(**kw) -> Field:
    return Field('number', **kw)


def _l(**kw) -> Field:
    return Field('list', **kw)


def _a(**kw) -> Field:
    return Field('any', **kw)


IO_BACKEND = Section({'type': _s(required=True, choices=('disk', 'lmdb', 'memcached'), what='io backend')},
                     open=True, owner="BasicSR's FileClient")  # the rest goes to the backend's constructor
CROP = {'gt_size': _i(min=1, required=TRAIN_PHASE, why='BasicSR crops training patches of this size'),
        'use_hflip': _b(required=TRAIN_PHASE, why='BasicSR reads it for training augmentation'),
        'use_rot': _b(required=TRAIN_PHASE, why='BasicSR reads it for training augmentation')}
OPT_CROP = {'gt_size': _i(min=1), 'use_hflip': _b(), 'use_rot': _b()}  # the plugin's datasets: optional
MEAN_STD = {'mean': _l(), 'std': _l()}
VIDEO = {'dataroot_gt': _s(required=True), 'dataroot_lq': _s(required=True), 'io_backend': IO_BACKEND,
         'meta_info_file': _s(), 'num_frame': _i(min=1)}
REALESRGAN_KERNELS = {k: _a() for k in (
    'blur_kernel_size', 'kernel_list', 'kernel_prob', 'blur_sigma', 'betag_range', 'betap_range', 'sinc_prob',
    'blur_kernel_size2', 'kernel_list2', 'kernel_prob2', 'blur_sigma2', 'betag_range2', 'betap_range2',
    'sinc_prob2', 'final_sinc_prob')}
NOISE_KEYS = ('sigma_range', 'shot_range', 'shot_prob', 'correlation_prob', 'correlation_sigma_range', 'jpeg_prob',
              'jpeg_quality_range', 'quantize')  # basicsr_adl.lan.synthetic_noise.NoiseConfig (tested equal)
RAW_WINDOW = {**OPT_CROP, 'center_crop': _i(min=1), 'keep_negative': _b(), 'sensors': _l()}

PAIR_NAMINGS = ('subfolders', 'polyu')  # MixedNoisePairsDataset's folder layouts (its PAIR_NAMINGS, tested equal)


def _image_source(namings: Tuple[str, ...], key: str) -> Section:
    """One entry of MixedNoisePairsDataset's ``real_pairs`` / ``clean_images``: a folder and how it is named."""
    return Section({'dataroot': _s(required=True), 'naming': _s(choices=namings, what='naming'),
                    'filename_tmpl': _s(doc='noisy stem = filename_tmpl.format(clean stem); naming: subfolders')},
                   owner=f'MixedNoisePairsDataset.{key}[i]')


# Keys each dataset class reads besides name/type/phase/scale (BasicSR 1.4.2's code and the plugin's own);
# a class inherits the keys of the classes above it.
DATASET_KEYS: Dict[str, Dict[str, Any]] = {
    'PairedImageDataset': {'dataroot_gt': _s(required=True), 'dataroot_lq': _s(required=True),
                           'io_backend': IO_BACKEND, 'filename_tmpl': _s(), 'meta_info_file': _s(), 'color': _s(),
                           **MEAN_STD, **CROP},
    'SingleImageDataset': {'dataroot_lq': _s(required=True), 'io_backend': IO_BACKEND, 'meta_info_file': _s(),
                           'color': _s(), **MEAN_STD},
    'FFHQDataset': {'dataroot_gt': _s(required=True), 'io_backend': IO_BACKEND, 'use_hflip': _b(), **MEAN_STD},
    'RealESRGANDataset': {'dataroot_gt': _s(required=True), 'io_backend': IO_BACKEND, 'meta_info': _s(),
                          'use_hflip': _b(), 'use_rot': _b(), **REALESRGAN_KERNELS},
    'RealESRGANPairedDataset': {'dataroot_gt': _s(required=True), 'dataroot_lq': _s(required=True),
                                'io_backend': IO_BACKEND, 'filename_tmpl': _s(), 'meta_info': _s(), **MEAN_STD, **CROP},
    'REDSDataset': {**VIDEO, 'dataroot_flow': _s(), 'val_partition': _s(), 'interval_list': _l(),
                    'random_reverse': _b(), **CROP},
    'REDSRecurrentDataset': {**VIDEO, 'val_partition': _s(), 'test_mode': _b(), 'interval_list': _l(),
                             'random_reverse': _b(), **CROP},
    'Vimeo90KDataset': {**VIDEO, 'random_reverse': _b(), **CROP},
    'Vimeo90KRecurrentDataset': {'flip_sequence': _b()},
    'VideoTestDataset': {**VIDEO, 'cache_data': _b(), 'padding': _s()},
    'VideoTestVimeo90KDataset': {**VIDEO, 'cache_data': _b(), 'padding': _s()},
    'VideoTestDUFDataset': {'use_duf_downsampling': _b()},
    'VideoRecurrentTestDataset': {},
    # the plugin's datasets
    'MultiDomainDataset': {
        'target': _s(required=True, why='the name of the target domain'), 'sources': _l(),
        'target_pairs': _i(min=1), 'target_seed': _i(), 'ticks_per_epoch': _i(min=1), 'io_backend': IO_BACKEND,
        'domains': MapOf(lambda name: _domain_spec(name), required=True,
                         nonempty='map domain names to dataset options')},
    'RawPairedLMDBDataset': {'dataroot_lq': _s(required=True), 'dataroot_gt': _s(required=True), **RAW_WINDOW,
                             'sensor': _s(), 'default_iso': _n(above=0), 'exposure_ratio': _b(),
                             'ratio_cap': _n(above=0), 'clip_after_ratio': _b()},
    'SyntheticRawDataset': {'dataroot_gt': _s(required=True), **RAW_WINDOW, 'noise_sensors': Field(('list', 'str')),
                            'iso_from_metadata': _b(), 'iso_range': _l(), 'ratio_range': _l(), 'seed': _i()},
    'RealNoisyPairsDataset': {'dataroot': _s(required=True), 'naming': _s(), 'filename_tmpl': _s(),
                              'cameras': _l(), 'camera': _s(), 'iso': _n(above=0),
                              'split': _s(choices=('all', 'train', 'test'), what='split'), 'test_scenes': _l(),
                              'test_fraction': _n(above=0, below=1), 'split_seed': _i(), 'max_pairs': _i(min=1),
                              'cache': _b(), 'sensors': _l(), **OPT_CROP},
    'MixedNoisePairsDataset': {'real_pairs': _l(items=_image_source(PAIR_NAMINGS, 'real_pairs')),
                               'clean_images': _l(items=_image_source(('folder',) + PAIR_NAMINGS, 'clean_images')),
                               'clean_from_real': _b(), 'synthetic_prob': _n(min=0, max=1),
                               'noise': Section({k: _a() for k in NOISE_KEYS}, nullable=True,
                                                owner='MixedNoisePairsDataset.noise'),
                               'cache': _b(), **OPT_CROP},
    'CorruptedPairsDataset': {'base': Dynamic(lambda v, p, c: _dataset_spec(v, p, c, {}), required=True,
                                              why='the options of the dataset to corrupt'),
                              'corruption': _s(required=True, choices=('noisy_gt', 'misaligned', 'black_gt',
                                                                       'blurred_gt'), what='corruption'),
                              'sigma': _n(min=0), 'shift': _i(), 'blur': _i(min=1)},
    'CameraRawDataset': {'dataroot_lq': _s(required=True, why='a folder of camera RAW files, or one file'),
                         'files': _l(doc='only these file names of the folder'), 'sensors': _l(),
                         'sensor': _s(doc="these files' sensor, a name in 'sensors'"),
                         'iso': _n(above=0, doc='ISO for files that carry none')},
    'LayoutPairedDataset': {'layout': _s(required=True), 'dataroot': _s(required=True), 'max_pairs': _i(min=1),
                            **OPT_CROP},
    'SyntheticDegradationDataset': {'degradation': _s(required=True, choices=('blur', 'haze'), what='degradation'),
                                    'dataroot_gt': _s(required=True), 'kernel_sizes': _l(), 'noise_sigma': _n(min=0),
                                    'beta_range': _l(), 'airlight_range': _l(), **OPT_CROP},
}
DATASET_COMMON = {'name': _s(), 'type': _s(required=True), 'phase': _s(), 'scale': _i(min=1)}
# read by build_dataloader / train_pipeline for each phase (use_shuffle: in BasicSR's example files, unused by 1.4.2)
LOADER_KEYS = {
    'name': _s(required=True),
    'batch_size_per_gpu': _i(min=1, required=TRAIN_PHASE, nullable=False),
    'num_worker_per_gpu': _i(min=0, required=TRAIN_PHASE, nullable=False),
    'dataset_enlarge_ratio': _n(above=0), 'prefetch_mode': Field('str', literals=(None,), choices=('cpu', 'cuda'),
                                                                  what='prefetch mode'),
    'pin_memory': _b(), 'persistent_workers': _b(), 'num_prefetch_queue': _i(min=1), 'use_shuffle': _b()}
DOMAIN_META = {'sensor_index': _i(min=0), 'iso': _n(above=0)}  # MultiDomainDataset's per-domain metadata


def _mro_names(obj: Any) -> List[str]:
    return [c.__name__ for c in getattr(obj, '__mro__', ())]


def _dataset_spec(value: Any, path: str, ctx: Context, extra: Dict[str, Any], phase: Optional[str] = None) -> Any:
    """The section of one dataset by its type: the table's keys over its class hierarchy, or what the class
    declares in ``option_schema``, or (a type nobody describes) only ``type``."""
    if not isinstance(value, dict):
        raise OptionError(f"option '{path}' must be a mapping with a 'type', got {_show(value)}")
    if value.get('type') is None:
        raise missing(join(path, 'type'))
    cls = _registered('dataset', 'a registered dataset', join(path, 'type'), value['type'], ctx)
    names = _mro_names(cls) if cls is not None else [value['type']]
    fields = {**DATASET_COMMON, **extra}
    for name in reversed(names):
        fields.update(DATASET_KEYS.get(name, {}))
    described = names[0] in DATASET_KEYS
    declared = getattr(cls, 'option_schema', None)
    if isinstance(declared, dict):
        fields.update(declared)
        described = True
    return Section(fields, open=not described, owner=value['type'], phase=phase)


def _domain_spec(name: str) -> Dynamic:
    def resolve(value: Any, path: str, ctx: Context) -> Any:
        if isinstance(value, dict) and value.get('type') == 'MultiDomainDataset':
            raise OptionError(f"option '{join(path, 'type')}': a domain cannot be a MultiDomainDataset")
        return _dataset_spec(value, path, ctx, DOMAIN_META, phase=ctx.phase or 'train')
    return Dynamic(resolve)


# val/test sets of any type: the metadata a modulated net needs when the items carry none (sRGB folders)
EVAL_META = {'sensor': _s(doc="the items' sensor: a name in the top-level 'sensors' list"),
             'iso': _n(above=0, doc="the items' ISO when they carry none")}


def _phase_spec(phase_key: str) -> Dynamic:
    phase = phase_key.split('_')[0]  # BasicSR: val_1 -> val
    extra = LOADER_KEYS if phase == 'train' else {**LOADER_KEYS, **EVAL_META}
    return Dynamic(lambda v, p, c: _dataset_spec(v, p, c, extra, phase=phase))


def _datasets_check(datasets: Dict[str, Any], path: str, ctx: Context) -> None:
    allowed = ('train', 'val') if ctx.is_train else ('test', 'val')
    for phase in datasets:
        if str(phase).split('_')[0] not in allowed or (phase == 'train') != (str(phase).split('_')[0] == 'train'):
            kinds = "'train' and 'val*'" if ctx.is_train else "'test*' and 'val*'"
            raise OptionError(f"option 'datasets.{phase}': {'training' if ctx.is_train else 'test'} phases are {kinds}")
    if ctx.is_train and 'train' not in datasets:
        raise missing('datasets.train')


class _Datasets(MapOf):
    def check(self, value: Any, path: str, ctx: Context) -> Any:
        if not isinstance(value, dict) or not value:
            raise OptionError("option 'datasets' must map phases (train, val*, test*) to dataset options")
        _datasets_check(value, path, ctx)
        return super().check(value, path, ctx)


# ------------------------------------------------------------------------------------------ plugin sections
ADL_MODES = ('adl', 'finetune', 'target_only')
GATE_CRITERIA = ('paper', 'paired', 'paired_target', 'paired_target_linear', 'paired_queue', 'always')  # basicsr_adl.adl.gate (tested equal)
TARGET_STEP_CRITERIA = ('paired_target', 'paired_target_linear')  # gates that compare against the target-only step
ON_REJECT = ('revert', 'target_step')
STAGE_KEYS = ('pretrain_iters', 'adapt_iters', 'finetune_iters')
LAN_MODES = ('offset', 'full', 'first_layer', 'last_layer', 'meta')  # basicsr_adl.lan.MODES (tested equal)
LAN_LOSSES = ('zsn2n', 'nbr2nbr')  # basicsr_adl.lan.losses.LOSS_NAMES
LAN_DEFAULT_LR = {'offset': 5e-4, 'full': 5e-6, 'first_layer': 5e-6, 'last_layer': 5e-6,  # paper / official code
                  'meta': 5e-6}  # full fine-tuning from the meta-trained weights
LAN_REPORT_ITERS = (0, 5, 10, 20)


def _train_batch(section: Dict[str, Any], ctx: Context) -> Optional[int]:
    train = ((ctx.root.get('datasets') or {}).get('train') or {}) if isinstance(ctx.root, dict) else {}
    value = train.get('batch_size_per_gpu') if isinstance(train, dict) else None
    return int(value) if isinstance(_to_number(value), (int, float)) else None


def adl_stage_lengths(adl: Dict[str, Any], total_iter: int) -> Tuple[int, int, int]:
    """(pretrain, adapt, finetune): the explicit lengths, or 10 % / 80 % / 10 % of ``total_iter``."""
    if adl.get('pretrain_iters') is not None:
        return int(adl['pretrain_iters']), int(adl['adapt_iters']), int(adl['finetune_iters'])
    p = f = int(round(0.1 * total_iter))
    return p, total_iter - p - f, f


def _adl_checks(adl: Dict[str, Any], path: str, ctx: Context) -> None:
    """Cross-field rules of the ADL options (the gate's rules only where a gate runs: mode adl with stage 2)."""
    given = [k for k in STAGE_KEYS if adl.get(k) is not None]
    if given and len(given) < 3:
        absent = [k for k in STAGE_KEYS if k not in given]
        raise OptionError(f"option 'adl.{absent[0]}' is missing: give all three stage lengths or none "
                          '(default 10 % / 80 % / 10 % of train.total_iter)')
    if not ctx.is_train:
        return
    total = _to_number(((ctx.root.get('train') or {}) if isinstance(ctx.root, dict) else {}).get('total_iter'))
    adapt = adl_stage_lengths(adl, int(total or 0))[1]
    gate = adl['gate']
    if adl['mode'] != 'adl' or adapt <= 0:
        return  # the baselines never gate: no checks
    paired_target = gate['criterion'] in TARGET_STEP_CRITERIA
    if paired_target and not gate['revert_optimizer']:
        raise OptionError("option 'adl.gate.revert_optimizer': the paired_target gate compares two steps from "
                          'the same optimizer state and needs the exact revert; set it to true')
    if paired_target and gate['on_reject'] != 'target_step':
        raise OptionError(f"option 'adl.gate.on_reject': the {gate['criterion']} gate keeps the target-only step "
                          f"of a rejected batch; on_reject must be target_step, got '{gate['on_reject']}'")
    if gate['on_reject'] == 'target_step' and (adl['target_batch'] is not None and adl['target_batch'] < 1):
        raise OptionError("option 'adl.gate.on_reject: target_step' needs adl.target_batch >= 1 (it replays "
                          'the target part of the rejected steps)')


def _validation_checks(val: Dict[str, Any], path: str, ctx: Context) -> None:
    if val['start_fraction'] > val['end_fraction']:
        raise OptionError(f"option '{path}.start_fraction' ({val['start_fraction']}) must be <= "
                          f"{path}.end_fraction ({val['end_fraction']})")


ADL_SECTION = Section({
    'mode': _s(default='adl', choices=ADL_MODES, what='mode',
               doc='`adl`; `finetune` = the paper\'s fine-tuning baseline: source batches (random domain, ungated) '
                   'for stages 1 and 2, then target; `target_only` = target batches throughout'),
    'pretrain_iters': _i(default=None, min=0, default_doc='10 % of `train.total_iter`',
                         doc='stage 1 (target pretraining) length; give all three stage lengths or none'),
    'adapt_iters': _i(default=None, min=0, default_doc='80 % of `train.total_iter`',
                      doc='stage 2 (gated source steps) length'),
    'finetune_iters': _i(default=None, min=0, default_doc='10 % of `train.total_iter`',
                         doc='stage 3 (target fine-tuning) length; stage 3 runs until `total_iter`'),
    'target_batch': _i(default=_train_batch, min=0, nullable=True, default_doc='`batch_size_per_gpu`',
                       doc='target patches joined to each source batch in stage 2'),
    'val_crop': _i(default=128, min=1, nullable=True,
                   doc="V' is scored on centre crops of this size (null: whole images)"),
    'gate': Section({
        'criterion': _s(default='paired_target', choices=GATE_CRITERIA, what='criterion',
                        doc='which gate decides (see above)'),
        'tolerance': _n(default=0.0, min=0, doc='dB a paired gate forgives (paired, paired_target, paired_queue)'),
        'queue_size': _i(default=10, min=1, doc='PSNR queue length (paper, paired_queue)'),
        'every': _i(default=1, min=1, doc='source steps per gate decision (a chunk)'),
        'refresh_every': _i(default=10, min=1, doc="paired_target_linear: chunks between refreshes of the V' "
                                                    'score gradient (one forward and backward pass over V\')'),
        'check_every': _i(default=25, min=0, doc='paired_target_linear: every n-th decision is also scored '
                                                 'exactly and the agreement logged (`adl_linear_agreement`); 0: never'),
        'revert_optimizer': _b(default=True, doc='a rejected chunk also restores the optimizer state (false: '
                                                 'weights only; paired_target needs true)'),
        'on_reject': _s(default=lambda g, ctx: 'target_step' if g.get('criterion') in TARGET_STEP_CRITERIA
                        else 'revert', choices=ON_REJECT, what='on_reject',
                        default_doc='`revert` (`target_step` for `paired_target`)',
                        doc='`revert`: a rejected step is undone whole (the paper); `target_step`: undone, then the '
                            'step on its target patches alone is taken'),
    }, owner='adl.gate'),
    'validation': Section({
        'dynamic': _b(default=True, doc="false = one V' drawn at the start of stage 2 and kept (ablation)"),
        'start_fraction': _n(default=0.2, above=0, below=1, doc="V' size at the start of stage 2 (fraction of "
                                                                 'the target pairs)'),
        'end_fraction': _n(default=0.5, above=0, below=1, doc="V' size at the end of stage 2"),
        'iso_diverse_below': _i(default=10, min=0, doc="V' sizes below this pick pairs of different ISO (div-ISO)"),
    }, owner='adl.validation', checks=[_validation_checks]),
    'use_metadata': _b(default='auto', literals=('auto',),
                       doc='auto: sensor/ISO go to the net only if its `forward` has `sensor` / `iso` parameters; '
                           'true: error if it has none; false: never'),
    'clamp_iso': _b(default=True, doc="the net's ISO input is clamped to the training pairs' ISO range (the domains "
                                     'the mode trains on), so an unseen ISO is treated as the nearest trained one; '
                                     'for nets with `set_iso_range` (ModulatedUNet)'),
    'heatmap_epochs': _i(default=10, min=1, doc='columns of the heatmap'),
    'seed_offset': _i(default=0, doc='added to `manual_seed` for the shared generator'),
    'write_rank_decisions': _b(default=False, doc="each rank writes `adl_decisions_rank<r>.json` (decisions, V' "
                                                  'scores, weight checksum) at checkpoints: a DDP check'),
}, owner='ADLModel', checks=[_adl_checks], nullable=True)


DEFAULT_TILE, DEFAULT_OVERLAP = 512, 32  # packed pixels; scripts/benchmarks/bench_denoise_raw.py measures them
RAW_OUTPUT = Section({
    'tile': _i(min=0, default=DEFAULT_TILE, doc='tile size in packed pixels for camera RAW test sets; 0: whole image'),
    'overlap': _i(min=0, default=DEFAULT_OVERLAP, doc='tile overlap in packed pixels')},
    owner='ADLModel (val.raw_output: DNG + PNG outputs for CameraRawDataset items)')


def _lan_report_default(lan: Dict[str, Any], ctx: Context) -> List[int]:
    return [k for k in LAN_REPORT_ITERS if k <= lan['iters']]


def _lan_checks(lan: Dict[str, Any], path: str, ctx: Context) -> None:
    report = lan['report_iters']
    if any(not isinstance(k, int) or isinstance(k, bool) or not 0 <= k <= lan['iters'] for k in report):
        raise OptionError(f"option 'lan.report_iters': expected integers in 0..lan.iters={lan['iters']}, "
                          f'got {report!r}')


def _meta_checks(meta: Dict[str, Any], path: str, ctx: Context) -> None:
    if meta['crop'] % 2:
        raise OptionError(f"option '{path}.crop': must be even (the self-supervised losses use 2x2 cells), "
                          f"got {meta['crop']}")
    sigma = meta['noise_sigma']
    if sigma is not None and (len(sigma) != 2 or not all(isinstance(_to_number(v), (int, float)) for v in sigma)
                              or not 0 <= sigma[0] <= sigma[1] <= 255):
        raise OptionError(f"option '{path}.noise_sigma': expected [low, high] with 0 <= low <= high <= 255 "
                          f'(8-bit levels), got {sigma!r}')


def _manual_seed(lan: Dict[str, Any], ctx: Context) -> int:
    seed = ctx.root.get('manual_seed') if isinstance(ctx.root, dict) else None
    return int(seed) if isinstance(_to_number(seed), int) else 0


LAN_SECTION = Section({
    'mode': _s(default='offset', choices=LAN_MODES, what='mode',
               doc='`offset` = LAN; `full`, `first_layer`, `last_layer` = fine-tuning baselines'),
    'loss': _s(default='zsn2n', choices=LAN_LOSSES, what='loss',
               doc='`zsn2n` (Zero-Shot Noise2Noise) or `nbr2nbr` (Neighbor2Neighbor, LAN\'s variant)'),
    'iters': _i(default=20, min=0, doc='adaptation steps per image (paper: 5 / 10 / 20)'),
    'lr': _n(default=lambda lan, ctx: LAN_DEFAULT_LR[lan['mode']], above=0,
             default_doc='`5e-4` for `offset`, `5e-6` otherwise', doc='Adam learning rate (paper / official code)'),
    'report_iters': _l(default=_lan_report_default, items=_i(min=0), default_doc='`[0, 5, 10, 20]` (those <= `iters`)',
                       doc='iterations scored; `iters` is always added'),
    'seed': _i(default=_manual_seed, default_doc='`manual_seed` or 0',
               doc='Nbr2Nbr sampler seed; image i uses `seed + i`'),
    'lean_backward': _b(default=True,
                        doc='differentiate through the lean copy of the net (same result, cheaper; below)'),
    'odd_size': _s(default='pad', choices=('pad', 'crop'), what='odd_size',
                   doc='H or W odd: `pad` reflects one row/column at the bottom/right and crops the output back '
                       '(output keeps the input size); `crop` drops the last row/column (output and scored GT are '
                       'one smaller)'),
    'nbr_max_weight': _n(default=0.1, min=0, doc='Nbr2Nbr regulariser weight at the last step'),
    'meta': Section({
        'steps': _i(default=100, min=1, doc='mode `meta`: first-order MAML steps (one source task each)'),
        'inner_iters': _i(default=5, min=1, doc='self-supervised updates per task (same loss and lr as at test time)'),
        'outer_lr': _n(default=1e-6, above=0, doc='Adam learning rate on the meta weights'),
        'crop': _i(default=64, min=8, doc='task crop size (even)'),
        'noise_sigma': _l(default=None, items=_n(min=0, max=255), default_doc='`network_g.sigma` twice',
                          doc='`[low, high]`: Gaussian source-noise levels of the tasks (8-bit levels)'),
        'clean_dir': _s(default=None, default_doc='scikit-image\'s photos',
                        doc='folder of clean images the tasks are cut from'),
        'init': _s(default=None, doc='a meta-trained checkpoint (`params`) to start from instead of meta-training'),
    }, owner='lan.meta', checks=[_meta_checks]),
}, owner='LANModel', checks=[_lan_checks], nullable=True)

DIST_PARAMS = Section({
    'backend': _s(), 'port': _i(min=1, max=65535),
    'timeout': _n(default=300, above=0, doc='seconds a collective waits for a rank before the run stops with an '
                                            "error naming it (torch's own default for gloo: 30 minutes)"),
}, owner='dist_params', nullable=True)


# ------------------------------------------------------------------------------------------ models
def _adl_model_checks(opt: Dict[str, Any], path: str, ctx: Context) -> None:
    train = (opt.get('datasets') or {}).get('train')
    if ctx.is_train and isinstance(train, dict) and train.get('type') != 'MultiDomainDataset':
        raise OptionError(f"option 'datasets.train.type': ADLModel needs MultiDomainDataset, got '{train.get('type')}'")


def _lan_model_checks(opt: Dict[str, Any], path: str, ctx: Context) -> None:
    if ctx.is_train:
        raise OptionError("LANModel is test-time only; pretrain with model_type 'SRModel' and basicsr_adl/train.py")
    paths = opt.get('path') or {}
    own_weights = isinstance(opt.get('network_g'), dict) and opt['network_g'].get('weights')  # FFDNet's published
    if not paths.get('pretrain_network_g') and not own_weights:
        raise OptionError("missing required option 'path.pretrain_network_g' (LAN adapts a pretrained network; "
                          "an FFDNet can take the published weights with network_g.weights instead)")
    lan = opt.get('lan') or {}
    meta = (lan.get('meta') or {}) if isinstance(lan, dict) else {}
    net_sigma = opt['network_g'].get('sigma') if isinstance(opt.get('network_g'), dict) else None
    if isinstance(opt.get('network_g'), dict) and opt['network_g'].get('type') == 'FFDNet' and net_sigma is None:
        raise OptionError("option 'network_g.sigma' is needed for FFDNet under LANModel: the net is called with the "
                          'image alone, so it must know the noise level it is told (8-bit levels, e.g. 15)')
    if isinstance(lan, dict) and lan.get('mode') == 'meta' and isinstance(meta, dict) and not meta.get('init') \
            and meta.get('noise_sigma') is None and net_sigma is None:
        raise OptionError("option 'lan.meta.noise_sigma' is needed for lan.mode 'meta': network_g has no 'sigma' "
                          'to take the source-noise level from')
    if paths.get('strict_load_g', True) is not True:
        raise OptionError("option 'path.strict_load_g': LANModel always loads the checkpoint strictly; remove it")


def _sr_losses(train: Dict[str, Any], path: str, ctx: Context) -> None:
    if ctx.is_train and not train.get('pixel_opt') and not train.get('perceptual_opt'):
        raise OptionError("missing required option 'train.pixel_opt' (or train.perceptual_opt): "
                          'SRModel needs at least one of the two losses')


GAN_TRAIN = {'optim_d': OPTIMIZER(required=TRAINING), 'gan_opt': LOSS(), 'net_d_iters': _i(min=1),
             'net_d_init_iters': _i(min=0)}
DEGRADATIONS = {k: _a() for k in (
    'resize_prob', 'resize_range', 'gray_noise_prob', 'gaussian_noise_prob', 'noise_range', 'poisson_scale_range',
    'jpeg_range', 'second_blur_prob', 'resize_prob2', 'resize_range2', 'gray_noise_prob2', 'gaussian_noise_prob2',
    'noise_range2', 'poisson_scale_range2', 'jpeg_range2')}
REAL_ESR = {'queue_size': _i(min=1), 'high_order_degradation': _b(), 'gt_size': _i(min=1), **DEGRADATIONS}

# What each BasicSR 1.4.2 model (and the plugin's) reads: extra top-level keys, train.* and val.* keys, and
# cross-field checks; a model inherits the entries of the classes above it.
MODEL_KEYS: Dict[str, Dict[str, Any]] = {
    'BaseModel': {'train': {'scheduler': SCHEDULER(required=TRAINING, why='BaseModel.setup_schedulers reads it')}},
    'SRModel': {'top': {'network_g': ARCH(required=True)},
                'train': {'optim_g': OPTIMIZER(required=TRAINING), 'ema_decay': _n(min=0, max=1), 'pixel_opt': LOSS(),
                          'perceptual_opt': LOSS()},
                'train_checks': [_sr_losses]},
    'SRGANModel': {'top': {'network_d': ARCH(required=TRAINING)}, 'train': {**GAN_TRAIN, 'ldl_opt': LOSS()}},
    'ESRGANModel': {},
    'RealESRNetModel': {'top': {**REAL_ESR, 'gt_usm': _b()}},
    'RealESRGANModel': {'top': {**REAL_ESR, 'l1_gt_usm': _b(), 'percep_gt_usm': _b(), 'gan_gt_usm': _b()}},
    'SwinIRModel': {},
    'VideoBaseModel': {},
    'VideoGANModel': {},
    'EDVRModel': {'train': {'tsa_iter': _i(min=0), 'dcn_lr_mul': _n()}},
    'VideoRecurrentModel': {'train': {'fix_flow': _i(min=0), 'flow_lr_mul': _n()},
                            'val': {'flip_seq': _b(), 'center_frame_only': _b()}},
    'VideoRecurrentGANModel': {'top': {'network_d': ARCH(required=TRAINING)},
                               'train': {**GAN_TRAIN, 'lr_flow': _n()}},
    'StyleGAN2Model': {'top': {'network_g': ARCH(required=True), 'network_d': ARCH(required=TRAINING)},
                       'train': {'optim_g': OPTIMIZER(required=TRAINING), 'optim_d': OPTIMIZER(required=TRAINING),
                                 'gan_opt': LOSS(required=TRAINING), 'r1_reg_weight': _n(), 'path_reg_weight': _n(),
                                 'net_g_reg_every': _i(min=1), 'net_d_reg_every': _i(min=1), 'mixing_prob': _n(),
                                 'path_batch_shrink': _i(min=1), 'ema_decay': _n(min=0, max=1)},
                       'val': {'num_val_samples': _i(min=1)}},
    'HiFaceGANModel': {'top': {'network_d': ARCH(required=TRAINING)},
                       'train': {**GAN_TRAIN, 'feature_matching_opt': LOSS()}},
    'ADLModel': {'top': {'adl': ADL_SECTION}, 'checks': [_adl_model_checks], 'val': {'raw_output': RAW_OUTPUT}},
    'LANModel': {'top': {'lan': LAN_SECTION}, 'checks': [_lan_model_checks], 'train_checks': []},
}

ROOT_TOP = {
    'name': _s(required=True), 'model_type': _s(required=True), 'scale': _i(min=1),
    'num_gpu': _i(required=True, min=0, literals=('auto',)), 'manual_seed': _i(), 'find_unused_parameters': _b(),
    'dist_params': DIST_PARAMS,
    'sensors': _l(items=_s(), doc="sensor names in the one-hot's order (basicsr_adl.inference.sensor_names)"),
    # set by BasicSR's parse_options / train_pipeline (seen by the check after --force_yml)
    'dist': _b(), 'rank': _i(), 'world_size': _i(), 'auto_resume': _b(), 'is_train': _b(), 'root_path': _s(),
}
PATH = Section({
    'resume_state': _s(), 'ignore_resume_networks': _l(),
    # set by parse_options
    'experiments_root': _s(), 'models': _s(), 'training_states': _s(), 'log': _s(), 'visualization': _s(),
    'results_root': _s(),
}, patterns=[(r'pretrain_network_\w+', _s(), 'pretrain_network_g'), (r'strict_load_\w+', _b(), 'strict_load_g'),
             (r'param_key_\w+', _s(), 'param_key_g')], required=True, owner='BasicSR (path)')
LOGGER = {'print_freq': _i(min=1, required=TRAINING), 'save_checkpoint_freq': _i(min=1, required=TRAINING),
          'use_tb_logger': _b(required=TRAINING, nullable=False, why="BasicSR's MessageLogger reads it when training"),
          'wandb': Section({'project': _s(), 'resume_id': _s()}, nullable=True,
                                                  owner='BasicSR (logger.wandb)')}
TRAIN_COMMON = {'total_iter': _i(min=1, required=TRAINING), 'warmup_iter': _i(min=-1)}
VAL_COMMON = {'val_freq': _i(min=1, required=TRAINING), 'save_img': _b(required=True, nullable=False,
                                                                          why='BasicSR reads it at every validation'),
              'suffix': _s(), 'pbar': _b(),
              'metrics': MapOf(lambda name: METRIC(), nullable=True)}


def _model_tables(cls: Any, model_type: str) -> Tuple[Dict[str, Dict[str, Any]], List[Callable], List[Callable], bool]:
    """(sections' extra keys by 'top'/'train'/'val', model checks, train checks, described) over the MRO."""
    names = _mro_names(cls) if cls is not None else [model_type]
    keys: Dict[str, Dict[str, Any]] = {'top': {}, 'train': {}, 'val': {}}
    checks: List[Callable] = []
    train_checks: Dict[str, List[Callable]] = {}
    for name in reversed(names):
        entry = MODEL_KEYS.get(name, {})
        for part in keys:
            keys[part].update(entry.get(part, {}))
        checks += entry.get('checks', [])
        if 'train_checks' in entry:
            train_checks = {name: entry['train_checks']}  # the nearest class's rule replaces its bases'
    described = names[0] in MODEL_KEYS
    declared = getattr(cls, 'option_schema', None)
    if isinstance(declared, dict):
        for part in keys:
            keys[part].update(declared.get(part, {}))
        described = True
    return keys, checks, [c for cs in train_checks.values() for c in cs], described


def root_section(opt: Dict[str, Any], ctx: Context) -> Section:
    """The whole tree for ``opt``'s ``model_type`` (which must be registered)."""
    if opt.get('model_type') is None:
        raise missing('model_type')
    cls = _registered('model', 'a registered model', 'model_type', opt['model_type'], ctx)
    keys, checks, train_checks, described = _model_tables(cls, opt['model_type'])
    top = {**ROOT_TOP,
           'datasets': _Datasets(_phase_spec, required=True),
           'path': PATH,
           'train': Section({**TRAIN_COMMON, **keys['train']}, required=TRAINING, open=not described,
                            owner=f"{opt['model_type']} (train)", checks=train_checks),
           'val': Section({**VAL_COMMON, **keys['val']}, required=TESTING, open=not described, nullable=ctx.is_train,
                          owner=f"{opt['model_type']} (val)",
                          why='test runs read val.save_img and val.metrics'),
           'logger': Section(LOGGER, required=TRAINING, owner='BasicSR (logger)'),
           **keys['top']}
    return Section(top, open=not described, owner=f"{opt['model_type']} (top level)", prechecks=checks)


def check_tree(opt: Any, is_train: bool, registries: Any = None) -> Dict[str, Any]:
    """Check the whole options tree (numbers given as text are converted in place); raises ``OptionError``."""
    if not isinstance(opt, dict):
        raise OptionError('the options file does not hold a YAML mapping')
    ctx = Context(root=opt, is_train=is_train, registries=registries)
    return root_section(opt, ctx).check(opt, '', ctx)


# ------------------------------------------------------------------------------------------ readers
def section_options(opt: Dict[str, Any], key: str, section: Section, is_train: Optional[bool] = None) -> Dict[str, Any]:
    """A checked copy of ``opt[key]`` with every default filled (the models read their options through this)."""
    is_train = bool(opt.get('is_train', True)) if is_train is None else is_train
    value = copy.deepcopy(opt.get(key)) if opt.get(key) is not None else {}
    ctx = Context(root=opt, is_train=is_train, fill=True)
    return section.check(value, key, ctx)


def adl_options(opt: Dict[str, Any]) -> Dict[str, Any]:
    """``adl:`` checked and filled (``target_batch`` from ``datasets.train.batch_size_per_gpu``), plus ADLModel's
    rule on the train dataset; a model built without the CLI gets the same checks."""
    ctx = Context(root=opt, is_train=bool(opt.get('is_train', True)))
    _adl_model_checks(opt, '', ctx)
    return section_options(opt, 'adl', ADL_SECTION)


def check_lan_model(opt: Dict[str, Any]) -> None:
    """LANModel's rules on the rest of the tree: test-time only, a strictly loaded ``path.pretrain_network_g``."""
    _lan_model_checks(opt, '', Context(root=opt, is_train=bool(opt.get('is_train', False))))


def lan_options(opt: Dict[str, Any]) -> Dict[str, Any]:
    """``lan:`` checked and filled (``lr`` by mode, ``seed`` from ``manual_seed``)."""
    return section_options(opt, 'lan', LAN_SECTION)


def dist_params_options(opt: Dict[str, Any]) -> Dict[str, Any]:
    """``dist_params:`` checked and filled; ``dist_params_options(opt)['timeout']`` is the collective timeout (s)."""
    return section_options(opt, 'dist_params', DIST_PARAMS)


def defaults(section: Section, root: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The filled defaults of ``section`` for an empty user section (used by the recipes)."""
    return fill_defaults({}, section, Context(root=root or {}, is_train=True, fill=True))


# ------------------------------------------------------------------------------------------ docs
def _doc_default(field: Field) -> str:
    if field.default_doc is not None:
        return field.default_doc
    value = field.default
    text = {True: 'true', False: 'false', None: 'null'}.get(value, None) if isinstance(value, (bool, type(None))) \
        else (value if isinstance(value, str) else repr(value))
    return f'`{text}`'


def option_rows(section: Section, prefix: str = '') -> List[Tuple[str, str, str]]:
    """(dotted option, default, meaning) for every documented field, nested sections flattened."""
    rows = []
    for key, spec in section.fields.items():
        name = join(prefix, key)
        if isinstance(spec, Section):
            rows += option_rows(spec, name)
        elif isinstance(spec, Field) and spec.doc:
            rows.append((name, _doc_default(spec), spec.doc))
    return rows


def option_table(section: Section, prefix: str = '', header: str = 'option') -> str:
    """The markdown table of ``section`` that docs/adl.md and docs/lan.md hold (scripts/make_option_docs.py)."""
    lines = [f'| {header} | default | meaning |', '|---|---|---|']
    lines += [f'| `{name}` | {default} | {doc} |' for name, default, doc in option_rows(section, prefix)]
    return '\n'.join(lines)


DOC_TABLES = {'adl': ('docs/adl.md', ADL_SECTION), 'lan': ('docs/lan.md', LAN_SECTION),
              'val.raw_output': ('docs/denoise_raw.md', RAW_OUTPUT)}
TABLE_BEGIN = '<!-- options-table: {} (generated by scripts/make_option_docs.py) -->'
TABLE_END = '<!-- /options-table -->'


def replace_table(text: str, name: str, table: str) -> str:
    """``text`` with the generated table between the markers of ``name`` replaced by ``table``."""
    begin = TABLE_BEGIN.format(name)
    start, end = text.find(begin), text.find(TABLE_END, text.find(begin) + 1)
    if start < 0 or end < 0:
        raise ValueError(f'no {begin} ... {TABLE_END} markers')
    return text[:start + len(begin)] + '\n' + table + '\n' + text[end:]
