"""Pair noisy (degraded) files with their clean partners by file name: one rule for every "two folders" layout.

No BasicSR or torch import. Pairing a file with the wrong ground truth trains a net on wrong data without any
visible failure, so the rule is strict and every doubt is an error that names the files:

1. A file's stem (name without extension) is split into tokens on ``_``, ``-``, ``.`` and spaces, compared
   case-insensitively (``IMG_2024_01`` and ``img-2024-01`` are equal).
2. Files whose tokens are equal pair first (same names: the usual BasicSR layout).
3. The remaining files pair when their tokens are equal after removing the marker words of their side
   (``NOISY_MARKERS`` from noisy stems, ``CLEAN_MARKERS`` from clean stems): ``0001_NOISY_SRGB_011`` <->
   ``0001_GT_SRGB_011``, ``01_noise`` <-> ``01_gt``, ``x_real`` <-> ``x_mean``. Only whole tokens are
   removed (``01noisy`` stays as it is); numbers are never removed and are compared as written (``01`` != ``1``).
4. A file with two or more candidates, a file without any (on either side), or two pairs with the same name
   key is a ``PairingError`` naming the files (the first few and a count).

Layouts the rule cannot read take an explicit template instead (``filename_tmpl``, as BasicSR's option of that
name): the noisy stem is ``filename_tmpl.format(clean stem)``, compared exactly (``'{}_noisy'``: ``a.png`` <->
``a_noisy.png``).
"""
import os
import re
from collections import defaultdict
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

from basicsr_adl.errors import DataError

#: words that mark the noisy / degraded file of a pair (removed only from noisy-side stems)
NOISY_MARKERS = frozenset({'noisy', 'noise', 'real', 'lq', 'low', 'input', 'degraded', 'blur', 'blurry', 'hazy'})
#: words that mark the clean file of a pair (removed only from clean-side stems)
CLEAN_MARKERS = frozenset({'gt', 'clean', 'mean', 'hq', 'high', 'target', 'groundtruth', 'sharp', 'clear',
                           'reference', 'ref'})
_SEPARATORS = re.compile(r'[_\-.\s]+')
_SHOW = 5


class PairingError(DataError, ValueError):
    """Files that do not pair one-to-one (named in the message); a ``DataError``, so the entry points print it
    as one line."""


class NamePair(NamedTuple):
    noisy: str
    clean: str
    #: the name the pair is known by (the common stem; for ``filename_tmpl`` the clean stem)
    key: str


def tokens(stem: str) -> List[str]:
    """Tokens of a stem as written (case kept); empty tokens dropped."""
    return [t for t in _SEPARATORS.split(stem) if t]


def _stem(name: str) -> str:
    return os.path.splitext(name)[0]


def _full_key(name: str) -> Tuple[str, ...]:
    return tuple(t.lower() for t in tokens(_stem(name)))


def _stripped(name: str, markers: frozenset) -> List[str]:
    return [t for t in tokens(_stem(name)) if t.lower() not in markers]


def _listing(items: Sequence[str]) -> str:
    more = f' (+{len(items) - _SHOW} more)' if len(items) > _SHOW else ''
    return '; '.join(items[:_SHOW]) + more


def check_filename_tmpl(filename_tmpl: str, option: str = 'filename_tmpl') -> None:
    """Raise ``PairingError`` unless the template holds exactly one ``{}`` (the clean stem)."""
    ok = isinstance(filename_tmpl, str) and filename_tmpl.count('{}') == 1
    if ok:
        try:
            ok = filename_tmpl.format('x') != filename_tmpl
        except (IndexError, KeyError, ValueError):
            ok = False
    if not ok:
        raise PairingError(f"option '{option}': {filename_tmpl!r} must hold '{{}}' once (the clean file's stem), "
                           f"e.g. '{{}}_noisy'")


class _Matcher:
    """Groups both sides by a key, pairs the one-to-one groups and records the ambiguous ones."""

    def __init__(self) -> None:
        self.pairs: List[NamePair] = []
        self.ambiguous: List[str] = []

    def match(self, noisy: Dict[str, Tuple[str, ...]], clean: Dict[str, Tuple[str, ...]],
              key_name: Callable[[str, str], str]) -> Tuple[List[str], List[str]]:
        """Pair ``noisy``/``clean`` (name -> key); returns the names left without a partner."""
        by_key: Dict[Tuple[str, ...], Tuple[List[str], List[str]]] = defaultdict(lambda: ([], []))
        for name, key in noisy.items():
            by_key[key][0].append(name)
        for name, key in clean.items():
            by_key[key][1].append(name)
        left_noisy, left_clean = [], []
        for key, (ns, cs) in by_key.items():
            if ns and cs and len(ns) == 1 and len(cs) == 1:
                self.pairs.append(NamePair(ns[0], cs[0], key_name(ns[0], cs[0])))
            elif ns and cs:
                self.ambiguous.append(f"{', '.join(sorted(ns))} <-> {', '.join(sorted(cs))}")
            else:
                left_noisy += ns
                left_clean += cs
        return sorted(left_noisy), sorted(left_clean)


def _raise_if_unpaired(matcher: _Matcher, noisy_left: List[str], clean_left: List[str], where: str,
                       hint: str) -> None:
    if matcher.ambiguous:
        raise PairingError(f'ambiguous pairs in {where}: {len(matcher.ambiguous)} name(s) match more than one file: '
                           f'{_listing(sorted(matcher.ambiguous))}{hint}')
    unpaired = [f'noisy {n}' for n in noisy_left] + [f'clean {c}' for c in clean_left]
    if unpaired:
        raise PairingError(f'{len(unpaired)} file(s) without a partner in {where}: {_listing(unpaired)}{hint}')
    seen: Dict[str, NamePair] = {}
    for pair in matcher.pairs:
        other = seen.setdefault(pair.key.lower(), pair)
        if other is not pair:
            raise PairingError(f"ambiguous pairs in {where}: {other.noisy} <-> {other.clean} and {pair.noisy} <-> "
                               f"{pair.clean} share the name '{pair.key}'{hint}")


def pair_names(noisy: Sequence[str], clean: Sequence[str], filename_tmpl: Optional[str] = None,
               where: str = 'noisy / clean', tmpl_option: Optional[str] = 'filename_tmpl') -> List[NamePair]:
    """Pairs of file names (``noisy`` with ``clean``), sorted by noisy name.

    Without ``filename_tmpl``: the token rule of the module docstring; with it: noisy stem =
    ``filename_tmpl.format(clean stem)``. ``where`` names the folders in errors; ``tmpl_option`` is the option
    (or flag) through which the caller's user sets the template, suggested in errors (None: not offered).
    """
    matcher = _Matcher()
    if filename_tmpl is not None:
        check_filename_tmpl(filename_tmpl, tmpl_option or 'filename_tmpl')
        left_n, left_c = matcher.match({n: (_stem(n),) for n in noisy},
                                       {c: (filename_tmpl.format(_stem(c)),) for c in clean},
                                       lambda n, c: _stem(c))
        _raise_if_unpaired(matcher, left_n, left_c, where, f' ({tmpl_option or "filename_tmpl"} {filename_tmpl!r})')
        return sorted(matcher.pairs)
    left_n, left_c = matcher.match({n: _full_key(n) for n in noisy}, {c: _full_key(c) for c in clean},
                                   lambda n, c: _stem(n))
    left_n, left_c = matcher.match(
        {n: tuple(t.lower() for t in _stripped(n, NOISY_MARKERS)) for n in left_n},
        {c: tuple(t.lower() for t in _stripped(c, CLEAN_MARKERS)) for c in left_c},
        lambda n, c: '_'.join(_stripped(n, NOISY_MARKERS)) or _stem(n))
    hint = f"; set '{tmpl_option}' for other layouts" if tmpl_option else ''
    _raise_if_unpaired(matcher, left_n, left_c, where, hint)
    return sorted(matcher.pairs)
