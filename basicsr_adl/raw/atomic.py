"""All-or-nothing output folders: temporary siblings, publishing a set together, SIGTERM-safe cleanup.

A converter writes a noisy and a clean LMDB that only make sense as a pair, and the embedded set is a tree of
them. Each output is built in a temporary sibling folder named ``.<name>.tmp-<pid>-<random>`` (hidden, never
ending in ``.lmdb``, so nothing reads it as data) and the set is published in one step by
``publish_together``: old destinations are moved aside, the new folders renamed in, then the old ones deleted;
if a rename fails, the new ones are taken out again and the old ones put back.

Cleanup on failure runs from ``except``/``finally`` blocks, which SIGTERM's default action skips. While an
``InterruptGuard`` is active, SIGTERM raises ``Interrupted`` (a ``KeyboardInterrupt``, like Ctrl-C) instead;
during the renames both signals are held and raised right after. A SIGKILL cannot be caught: its temporary
folder names a dead pid, and the next write to the same destination removes it with one info line.
"""
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import uuid
from contextlib import contextmanager
from typing import Callable, Iterator, List, Optional, Sequence, Set, Tuple

TEMP_TAG = '.tmp-'
_OWN_TEMPS: Set[str] = set()  # folders this process made: a reused pid (containers) must not protect stale ones


class Interrupted(KeyboardInterrupt):
    """SIGTERM (or a held Ctrl-C) during a write; ``published`` says whether the outputs were already in place."""

    def __init__(self, signum: int, published: bool = False) -> None:
        self.signum = int(signum)
        self.published = published
        super().__init__(f'interrupted by {signal.Signals(self.signum).name}')


def _info(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def temp_prefix(dest: str) -> str:
    """Name prefix of every helper folder for ``dest`` (``.lq.lmdb.tmp-``): recognisable, hidden, not data."""
    return f'.{os.path.basename(os.path.abspath(dest))}{TEMP_TAG}'


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_temps(dest: str, log: Optional[Callable[[str], None]] = None) -> List[str]:
    """Delete helper folders of ``dest`` whose writer is gone (killed run); returns their paths."""
    dest = os.path.abspath(dest)
    parent = os.path.dirname(dest)
    pattern = re.compile(re.escape(temp_prefix(dest)) + r'(\d+)-')
    try:
        names = sorted(os.listdir(parent))
    except FileNotFoundError:
        return []
    removed = []
    for name in names:
        match = pattern.match(name)
        path = os.path.join(parent, name)
        if match is None or path in _OWN_TEMPS:
            continue
        pid = int(match.group(1))
        if pid != os.getpid() and _pid_alive(pid):  # a live writer (maybe a concurrent run): leave it alone
            continue
        shutil.rmtree(path, ignore_errors=True)
        (log or _info)(f'info: removed stale temporary folder {path} (left by process {pid}, which is gone)')
        removed.append(path)
    return removed


def make_temp_dir(dest: str) -> str:
    """A fresh temporary sibling of ``dest`` (after removing stale ones left by killed runs)."""
    dest = os.path.abspath(dest)
    parent = os.path.dirname(dest)
    os.makedirs(parent, exist_ok=True)
    remove_stale_temps(dest)
    path = tempfile.mkdtemp(prefix=f'{temp_prefix(dest)}{os.getpid()}-', dir=parent)
    _OWN_TEMPS.add(path)
    return path


def publish_together(moves: Sequence[Tuple[str, str]], overwrite: bool = False) -> None:
    """Rename each finished ``(temporary, destination)`` folder into place: all of them or none.

    With ``overwrite`` the old destinations are moved aside first and deleted only after every new folder
    is in place; if a rename fails they are put back. The caller removes the temporary folders on failure.
    """
    moves = [(os.path.abspath(tmp), os.path.abspath(dest)) for tmp, dest in moves]
    for _, dest in moves:
        if os.path.lexists(dest) and not overwrite:
            raise FileExistsError(f'{dest} already exists (use --overwrite)')
    aside: List[Tuple[str, str]] = []
    placed: List[Tuple[str, str]] = []
    try:
        for _, dest in moves:
            if os.path.lexists(dest):
                name = f'{temp_prefix(dest)}{os.getpid()}-old-{uuid.uuid4().hex[:8]}'
                old = os.path.join(os.path.dirname(dest), name)
                _OWN_TEMPS.add(old)
                os.rename(dest, old)
                aside.append((dest, old))
        for tmp, dest in moves:
            os.rename(tmp, dest)
            placed.append((tmp, dest))
    except BaseException:
        for tmp, dest in reversed(placed):
            os.rename(dest, tmp)
        for dest, old in reversed(aside):
            os.rename(old, dest)
        raise
    for _, old in aside:
        shutil.rmtree(old, ignore_errors=True)
        _OWN_TEMPS.discard(old)
    for tmp, _ in moves:
        _OWN_TEMPS.discard(tmp)


def remove_temp_dir(path: Optional[str]) -> None:
    """Delete a temporary folder made by ``make_temp_dir`` (no error when it was already published)."""
    if path:
        shutil.rmtree(path, ignore_errors=True)
        _OWN_TEMPS.discard(path)


class InterruptGuard:
    """While active (main thread only), SIGTERM raises ``Interrupted`` so the caller's cleanup runs.

    Handlers are replaced only where they are the defaults (SIG_DFL for SIGTERM, Python's own Ctrl-C
    handler for SIGINT), so an application's own handlers and an outer guard keep working.
    """

    def __init__(self) -> None:
        self._old = {}
        self._holding = False
        self._pending: Optional[int] = None

    def _handle(self, signum: int, frame) -> None:
        if self._holding:
            self._pending = signum
            return
        raise Interrupted(signum)

    def __enter__(self) -> 'InterruptGuard':
        if threading.current_thread() is threading.main_thread():
            defaults = {signal.SIGTERM: signal.SIG_DFL, signal.SIGINT: signal.default_int_handler}
            for signum, default in defaults.items():
                if signal.getsignal(signum) is default:
                    self._old[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        for signum, old in self._old.items():
            signal.signal(signum, old)
        self._old = {}
        return False

    @contextmanager
    def holding(self) -> Iterator[None]:
        """Hold SIGINT/SIGTERM during the renames; a held one is raised afterwards (``published=True``)."""
        self._holding = True
        try:
            yield
        finally:
            self._holding = False
        if self._pending is not None:
            signum, self._pending = self._pending, None
            raise Interrupted(signum, published=True)
