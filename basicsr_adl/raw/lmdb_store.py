"""RAW LMDB: arrays stored as raw bytes with per-key JSON metadata.

Layout of one ``*.lmdb`` folder (an LMDB environment plus BasicSR's ``meta_info.txt``):

- main database: ``key -> array bytes`` (C-order; by default packed uint16 of shape (4, h, w));
- named database ``meta``: ``key -> JSON`` with at least ``shape`` and ``dtype`` (see ``docs/raw_data.md``
  for the other keys: pattern, black, white, sensor, iso, exposure, wb, ccm, ...), plus a ``__format__``
  record that marks the LMDB as written by this module;
- ``meta_info.txt``: one line per key, ``<key>.raw (h,w,c) <dtype>``, the shape BasicSR expects in its own
  meta files (BasicSR takes the key as the text before the first dot, so keys must not contain dots).

Why not BasicSR's ``imfrombytes``: it decodes 8-bit PNG/JPEG; RAW needs the exact uint16 values.

The writer streams (one transaction per ``commit_every`` items), doubles the map size on ``MDB_MAP_FULL``
instead of guessing it, writes into a temporary folder next to the destination (``atomic.make_temp_dir``)
and renames it into place only after everything succeeded: a failing or interrupted conversion (error,
Ctrl-C, SIGTERM) leaves nothing at the destination. With ``publish=False`` it stops before the rename, so a
caller can publish several LMDBs together (``atomic.publish_together``: a noisy/clean pair).

The reader opens the environment lazily on first access, so a Dataset holding it can be pickled into
DataLoader workers and each worker opens its own read-only handle. Opening checks what would otherwise
crash or fail late: LMDB memory-maps ``data.mdb``, so reading a page past the end of a truncated file is a
bus error (SIGBUS, no message); the file size is compared with what the environment says it holds first.
Keys listed in ``meta_info.txt`` but absent from the database are named at open too.
"""
import json
import os
import re
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Type

import lmdb
import numpy as np

from basicsr_adl.errors import DataError
from basicsr_adl.raw.atomic import InterruptGuard, make_temp_dir, publish_together, remove_temp_dir

FORMAT_NAME = 'basicsr_adl.raw_lmdb'
FORMAT_VERSION = 1
META_DB = b'meta'
FORMAT_KEY = '__format__'
KEY_PATTERN = re.compile(r'^[A-Za-z0-9_\-/]+$')
ALLOWED_DTYPES = ('uint16', 'uint8', 'float32')


class LMDBError(DataError, RuntimeError):
    """An LMDB folder is truncated, corrupt or lacks keys its ``meta_info.txt`` lists."""


class RawLMDBError(LMDBError):
    """A RAW LMDB is missing, corrupt, lacks metadata or a key."""


def _to_jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.integer, )):
        return int(value)
    if isinstance(value, (np.floating, )):
        return float(value)
    if isinstance(value, dict):
        return {k: _to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_jsonable(v) for v in value]
    return value


def check_key(key: str) -> str:
    """Keys become file-like names in ``meta_info.txt``: letters, digits, ``_ - /`` only."""
    if not isinstance(key, str) or not KEY_PATTERN.match(key) or key == FORMAT_KEY:
        raise ValueError(f'invalid RAW LMDB key {key!r}: use letters, digits, "_", "-", "/" (no dots or spaces)')
    return key


class RawLMDBWriter:
    """Streaming writer; use as a context manager so the folder is only published on success.

    >>> with RawLMDBWriter('train_gt.lmdb') as writer:
    ...     writer.put('scene_001', packed_uint16, {'pattern': 'RGGB', 'black': 512, 'white': 16383})

    ``publish=False``: ``close()`` completes the LMDB in its temporary folder (``built_dir``) and stops; the
    caller renames it (with others) through ``atomic.publish_together`` and calls ``abort()`` on failure.
    """

    def __init__(self, path: str, overwrite: bool = False, initial_map_size: int = 64 << 20,
                 commit_every: int = 64, publish: bool = True):
        self.path = os.path.abspath(path.rstrip('/'))
        if not self.path.endswith('.lmdb'):
            raise ValueError(f'RAW LMDB path must end with .lmdb: {path}')
        if os.path.exists(self.path) and not overwrite:
            raise FileExistsError(f'{self.path} already exists (pass overwrite=True / --overwrite to replace it)')
        self.overwrite = overwrite
        self.publish = publish
        self.map_size = int(initial_map_size)
        self.commit_every = int(commit_every)
        self._tmp_dir: Optional[str] = None
        self._env = None
        self._pending: List[Tuple[str, bytes, bytes]] = []
        self._keys: Dict[str, Tuple[Tuple[int, ...], str]] = {}
        self._order: List[str] = []
        self.bytes_written = 0
        self._closed = False
        self._guard: Optional[InterruptGuard] = None

    # -- lifecycle ---------------------------------------------------------------------------------------
    def __enter__(self) -> 'RawLMDBWriter':
        self._guard = InterruptGuard().__enter__()  # SIGTERM -> exception, so __exit__ cleans up
        try:
            self.open()
        except BaseException:
            self._guard.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                try:
                    self.close()
                except BaseException:
                    self.abort()
                    raise
            else:
                self.abort()
        finally:
            if self._guard is not None:
                self._guard.__exit__(None, None, None)
                self._guard = None

    @property
    def built_dir(self) -> Optional[str]:
        """Temporary folder holding the LMDB (complete after ``close()`` with ``publish=False``)."""
        return self._tmp_dir

    def open(self) -> None:
        self._tmp_dir = make_temp_dir(self.path)
        self._env = lmdb.open(self._tmp_dir, map_size=self.map_size, max_dbs=2, subdir=True, lock=True)
        self._meta_db = self._env.open_db(META_DB)

    # -- writing -----------------------------------------------------------------------------------------
    def put(self, key: str, array: np.ndarray, meta: Optional[Dict[str, Any]] = None) -> None:
        """Queue one array with its metadata (shape and dtype are filled in)."""
        if self._env is None:
            self.open()
        check_key(key)
        if key in self._keys:
            raise ValueError(f'duplicate key {key!r} in {self.path}')
        array = np.ascontiguousarray(array)
        if array.dtype.name not in ALLOWED_DTYPES:
            raise ValueError(f'{key}: dtype {array.dtype} not supported (use one of {ALLOWED_DTYPES})')
        record = dict(_to_jsonable(meta or {}))
        record['shape'] = list(array.shape)
        record['dtype'] = array.dtype.name
        self._pending.append((key, array.tobytes(), json.dumps(record, sort_keys=True).encode('utf-8')))
        self._keys[key] = (tuple(array.shape), array.dtype.name)
        self._order.append(key)
        if len(self._pending) >= self.commit_every:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        while True:
            try:
                with self._env.begin(write=True) as txn:
                    for key, data, meta in self._pending:
                        txn.put(key.encode('utf-8'), data)
                        txn.put(key.encode('utf-8'), meta, db=self._meta_db)
                break
            except lmdb.MapFullError:
                # The transaction was aborted by the context manager; grow and retry the whole batch.
                self.map_size *= 2
                self._env.set_mapsize(self.map_size)
        self.bytes_written += sum(len(d) for _, d, _ in self._pending)
        self._pending = []

    def close(self) -> str:
        """Flush, write the format record and ``meta_info.txt``, then (``publish``) move the folder into place."""
        if self._closed:
            return self.path if self.publish else self._tmp_dir
        if self._env is None:
            self.open()
        self._flush()
        record = json.dumps({'format': FORMAT_NAME, 'version': FORMAT_VERSION, 'count': len(self._order)})
        self._pending = []
        while True:
            try:
                with self._env.begin(write=True) as txn:
                    txn.put(FORMAT_KEY.encode(), record.encode(), db=self._meta_db)
                break
            except lmdb.MapFullError:
                self.map_size *= 2
                self._env.set_mapsize(self.map_size)
        self._env.sync()
        self._env.close()
        self._env = None
        with open(os.path.join(self._tmp_dir, 'meta_info.txt'), 'w') as handle:
            for key in self._order:
                shape, dtype = self._keys[key]
                hwc = (shape[1], shape[2], shape[0]) if len(shape) == 3 else tuple(shape) + (1, )
                handle.write(f'{key}.raw ({",".join(str(s) for s in hwc)}) {dtype}\n')
        if not self.publish:
            self._closed = True
            return self._tmp_dir
        publish_together([(self._tmp_dir, self.path)], overwrite=self.overwrite)
        self._tmp_dir = None
        self._closed = True
        return self.path

    def abort(self) -> None:
        """Drop everything written so far (also a finished, unpublished folder); the destination is untouched."""
        if self._env is not None:
            self._env.close()
            self._env = None
        remove_temp_dir(self._tmp_dir)
        self._tmp_dir = None
        self._closed = True

    def __len__(self) -> int:
        return len(self._order)


def write_raw_lmdb(path: str, items: Iterable[Tuple[str, np.ndarray, Dict[str, Any]]], overwrite: bool = False,
                   progress: Optional[Any] = None) -> str:
    """Write ``(key, array, meta)`` items in one go (all-or-nothing)."""
    with RawLMDBWriter(path, overwrite=overwrite) as writer:
        for key, array, meta in items:
            writer.put(key, array, meta)
            if progress is not None:
                progress.update(1)
    return os.path.abspath(path)


# -- open checks ---------------------------------------------------------------------------------------------
MAX_NAMED_KEYS = 5


def read_meta_info_keys(path: str) -> Optional[List[str]]:
    """Keys of ``<path>/meta_info.txt`` (text before the first dot, as BasicSR reads them); None without one."""
    meta_info = os.path.join(path, 'meta_info.txt')
    if not os.path.isfile(meta_info):
        return None
    with open(meta_info) as handle:
        return [line.split('.')[0] for line in handle if line.strip()]


def check_env_size(env, path: str, error: Type[LMDBError] = LMDBError) -> None:
    """Refuse a ``data.mdb`` shorter than the pages the environment says it holds (reading one is SIGBUS)."""
    needed = (int(env.info()['last_pgno']) + 1) * int(env.stat()['psize'])
    actual = os.path.getsize(os.path.join(path, 'data.mdb'))
    if actual < needed:
        raise error(f'{os.path.join(path, "data.mdb")} is truncated: {actual} bytes, but the database holds '
                    f'{needed} (an interrupted copy? copy or convert it again)')


def check_keys_present(txn, keys: Sequence[str], path: str, dbs: Sequence[Any] = (None, ),
                       error: Type[LMDBError] = LMDBError) -> None:
    """Name (up to 5 of) the ``meta_info.txt`` keys missing in any of ``dbs`` (``None``: the main database).

    ``txn`` should be opened with ``buffers=True``: a lookup then touches only the B-tree, never the values.
    """
    missing = [k for k in keys if any(txn.get(k.encode(), db=db) is None for db in dbs)]
    if missing:
        named = ', '.join(missing[:MAX_NAMED_KEYS]) + (', ...' if len(missing) > MAX_NAMED_KEYS else '')
        raise error(f'{path}: {len(missing)} of {len(keys)} keys listed in meta_info.txt are missing in the '
                    f'database: {named} (incomplete LMDB or wrong meta_info.txt)')


def check_image_lmdb(path: str, check_keys: bool = True) -> None:
    """Open checks for any LMDB folder (e.g. BasicSR's image LMDBs): size, and the listed keys' presence.

    Opens and closes its own read-only handle. A folder without ``data.mdb`` is left to the caller's own
    error; one already open in this process (py-lmdb refuses a second handle) was checked when it opened.
    """
    path = os.path.abspath(str(path).rstrip('/'))
    if not os.path.isfile(os.path.join(path, 'data.mdb')):
        return
    try:
        env = lmdb.open(path, readonly=True, lock=False, readahead=False, meminit=False, subdir=True)
    except lmdb.Error as err:
        if 'already open' in str(err):
            return
        raise LMDBError(f'cannot open LMDB {path}: {err} (corrupt or not an LMDB?)') from err
    try:
        check_env_size(env, path)
        keys = read_meta_info_keys(path) if check_keys else None
        if keys:
            with env.begin(buffers=True) as txn:
                check_keys_present(txn, keys, path)
    except lmdb.Error as err:
        raise LMDBError(f'LMDB {path} is corrupt: {err}') from err
    finally:
        env.close()


def check_dataset_lmdbs(datasets: Any) -> None:
    """``check_image_lmdb`` on every ``dataroot*`` LMDB folder of an options tree (``opt['datasets']``).

    The entry points run it right after the options check, so a truncated ``data.mdb`` or a listed key that
    is missing stops the run before BasicSR creates its experiment folder.
    """
    if isinstance(datasets, dict):
        for key, value in datasets.items():
            roots = value if isinstance(value, (list, tuple)) else [value]
            if str(key).startswith('dataroot') and all(isinstance(r, str) for r in roots):
                for root in roots:
                    if root.rstrip('/').endswith('.lmdb'):
                        check_image_lmdb(root)
            else:
                check_dataset_lmdbs(value)
    elif isinstance(datasets, (list, tuple)):
        for value in datasets:
            check_dataset_lmdbs(value)


# One read-only environment per LMDB folder and process. py-lmdb refuses to open the same environment twice
# in one process, and a forked DataLoader worker inherits the parent's handles (unusable after fork): so all
# readers of a folder share one handle, and a process that finds a handle from its parent closes it and opens
# its own.
_ENV_CACHE: Dict[Tuple[str, int], Tuple[int, Any, Any]] = {}


def _open_checked(path: str):
    """Open a RAW LMDB read-only and run the open checks (size first: everything after reads pages)."""
    try:
        env = lmdb.open(path, readonly=True, lock=False, readahead=False, meminit=False, max_dbs=2, subdir=True)
    except lmdb.Error as err:
        raise RawLMDBError(f'cannot open RAW LMDB {path}: {err} (corrupt or not an LMDB?)') from err
    try:
        check_env_size(env, path, RawLMDBError)
        try:
            meta_db = env.open_db(META_DB, create=False)
        except lmdb.NotFoundError as err:
            raise RawLMDBError(f'{path} has no RAW metadata (database "meta" missing): it was not written by '
                               'basicsr_adl.raw.lmdb_store.RawLMDBWriter (a BasicSR image LMDB?)') from err
        with env.begin(buffers=True) as txn:
            if txn.get(FORMAT_KEY.encode(), db=meta_db) is None:
                raise RawLMDBError(f'{path} has no "{FORMAT_KEY}" record: incomplete or foreign RAW LMDB')
            keys = read_meta_info_keys(path)
            if keys:
                check_keys_present(txn, keys, path, dbs=(meta_db, None), error=RawLMDBError)
    except lmdb.Error as err:
        env.close()
        raise RawLMDBError(f'RAW LMDB {path} is corrupt: {err}') from err
    except BaseException:
        env.close()
        raise
    return env, meta_db


def _shared_env(path: str):
    pid = os.getpid()
    data_file = os.path.join(path, 'data.mdb')
    if not os.path.isfile(data_file):
        raise RawLMDBError(f'{path} is not an LMDB (no data.mdb)')
    ident = (path, os.stat(data_file).st_ino)  # a folder rebuilt at the same path is a new environment
    cached = _ENV_CACHE.get(ident)
    if cached is not None:
        owner, env, meta_db = cached
        if owner == pid:
            return env, meta_db
        for other, (_, inherited, _) in list(_ENV_CACHE.items()):  # all inherited handles are stale
            try:
                inherited.close()
            except lmdb.Error:
                pass
            del _ENV_CACHE[other]
    env, meta_db = _open_checked(path)
    _ENV_CACHE[ident] = (pid, env, meta_db)
    return env, meta_db


class RawLMDBReader:
    """Read-only access to a RAW LMDB; the environment opens on first use (per process/worker)."""

    def __init__(self, path: str):
        self.path = os.path.abspath(path.rstrip('/'))
        if not os.path.isdir(self.path):
            raise RawLMDBError(f'RAW LMDB not found: {self.path}')
        self._env = None
        self._meta_db = None
        self._pid = None
        self._keys: Optional[List[str]] = None
        self._meta_cache: Dict[str, Dict[str, Any]] = {}

    def __getstate__(self):
        state = self.__dict__.copy()
        state['_env'] = None
        state['_meta_db'] = None
        state['_pid'] = None
        return state

    def _open(self) -> None:
        if self._env is not None and self._pid == os.getpid():
            return
        self._env, self._meta_db = _shared_env(self.path)
        self._pid = os.getpid()

    def close(self) -> None:
        """Forget this reader's handle (the process-wide environment stays open for other readers)."""
        self._env = None

    def keys(self) -> List[str]:
        """All keys, in ``meta_info.txt`` order when present (else sorted)."""
        if self._keys is None:
            self._keys = read_meta_info_keys(self.path)
            if self._keys is None:
                self._open()
                with self._env.begin() as txn:
                    self._keys = sorted(k.decode() for k, _ in txn.cursor(db=self._meta_db)
                                        if k.decode() != FORMAT_KEY)
        return list(self._keys)

    def __len__(self) -> int:
        return len(self.keys())

    def __contains__(self, key: str) -> bool:
        self._open()
        with self._env.begin() as txn:
            return txn.get(key.encode(), db=self._meta_db) is not None

    def meta(self, key: str) -> Dict[str, Any]:
        """Metadata dict of ``key`` (cached)."""
        if key in self._meta_cache:
            return self._meta_cache[key]
        self._open()
        with self._env.begin() as txn:
            raw = txn.get(key.encode(), db=self._meta_db)
        if raw is None:
            raise KeyError(f'key {key!r} not found in RAW LMDB {self.path}')
        try:
            record = json.loads(raw.decode('utf-8'))
        except ValueError as err:
            raise RawLMDBError(f'corrupt metadata for key {key!r} in {self.path}: {err}') from err
        self._meta_cache[key] = record
        return record

    def _view(self, txn, key: str, meta: Dict[str, Any]) -> np.ndarray:
        buf = txn.get(key.encode())
        if buf is None:
            raise KeyError(f'key {key!r} has metadata but no data in RAW LMDB {self.path}')
        shape, dtype = tuple(meta['shape']), np.dtype(meta['dtype'])
        expected = int(np.prod(shape)) * dtype.itemsize
        if len(buf) != expected:
            raise RawLMDBError(f'corrupt data for key {key!r} in {self.path}: {len(buf)} bytes, expected {expected} '
                               f'for shape {shape} {dtype}')
        return np.frombuffer(buf, dtype=dtype).reshape(shape)

    def get(self, key: str) -> Tuple[np.ndarray, Dict[str, Any]]:
        """(array copy, metadata) of ``key``."""
        meta = self.meta(key)
        self._open()
        with self._env.begin(buffers=True) as txn:
            array = self._view(txn, key, meta).copy()
        return array, meta

    def read_crop(self, key: str, top: int, left: int, height: int, width: int) -> np.ndarray:
        """Copy only a (C, height, width) window of a (C, H, W) array: cheap random patches from big images."""
        meta = self.meta(key)
        self._open()
        with self._env.begin(buffers=True) as txn:
            view = self._view(txn, key, meta)
            if top < 0 or left < 0 or top + height > view.shape[-2] or left + width > view.shape[-1]:
                raise ValueError(f'crop ({top},{left},{height},{width}) outside {tuple(view.shape)} for key {key!r} '
                                 f'in {self.path}')
            return view[..., top:top + height, left:left + width].copy()
