"""RAW LMDB writer/reader: exact round trip, map growth, atomic publish, clear errors."""
import json
import os
import pickle

import lmdb
import numpy as np
import pytest

from basicsr_adl.raw.lmdb_store import RawLMDBError, RawLMDBReader, RawLMDBWriter, write_raw_lmdb


def _items(rng, n=5, shape=(4, 6, 7)):
    return [(f'img_{i:03d}', rng.integers(0, 65536, size=shape, dtype=np.uint16),
             {'pattern': 'RGGB', 'black': [512] * 4, 'white': [16383] * 4, 'iso': 100 * (i + 1), 'sensor': 'IMX686'})
            for i in range(n)]


def test_round_trip_is_bit_exact_with_metadata_and_meta_info(tmp_path):
    rng = np.random.default_rng(0)
    items = _items(rng)
    path = write_raw_lmdb(str(tmp_path / 'x.lmdb'), items)
    reader = RawLMDBReader(path)
    assert reader.keys() == [k for k, _, _ in items]
    for key, array, meta in items:
        got, got_meta = reader.get(key)
        np.testing.assert_array_equal(got, array)
        assert got.dtype == np.uint16
        assert got_meta['iso'] == meta['iso'] and got_meta['shape'] == [4, 6, 7] and got_meta['dtype'] == 'uint16'
        np.testing.assert_array_equal(reader.read_crop(key, 1, 2, 3, 4), array[:, 1:4, 2:6])
    lines = (tmp_path / 'x.lmdb' / 'meta_info.txt').read_text().splitlines()
    assert lines[0] == 'img_000.raw (6,7,4) uint16' and len(lines) == len(items)


def test_float32_arrays_round_trip(tmp_path):
    array = np.random.default_rng(1).random((4, 3, 5)).astype(np.float32)
    path = write_raw_lmdb(str(tmp_path / 'f.lmdb'), [('a', array, {})])
    got, meta = RawLMDBReader(path).get('a')
    np.testing.assert_array_equal(got, array)
    assert meta['dtype'] == 'float32'


def test_map_grows_instead_of_failing(tmp_path):
    rng = np.random.default_rng(2)
    items = _items(rng, n=12, shape=(4, 64, 64))  # 12 x 32 KiB >> 64 KiB initial map
    with RawLMDBWriter(str(tmp_path / 'g.lmdb'), initial_map_size=64 << 10, commit_every=5) as writer:
        for key, array, meta in items:
            writer.put(key, array, meta)
    assert writer.map_size > 64 << 10
    reader = RawLMDBReader(str(tmp_path / 'g.lmdb'))
    np.testing.assert_array_equal(reader.get('img_011')[0], items[-1][1])


def test_failure_midway_leaves_nothing_at_destination(tmp_path):
    rng = np.random.default_rng(3)
    dest = tmp_path / 'fail.lmdb'
    with pytest.raises(RuntimeError, match='boom'):
        with RawLMDBWriter(str(dest), commit_every=1) as writer:
            for i, (key, array, meta) in enumerate(_items(rng)):
                if i == 3:
                    raise RuntimeError('boom')
                writer.put(key, array, meta)
    assert not dest.exists()
    assert os.listdir(tmp_path) == []  # no temporary folder left either


def test_existing_destination_is_protected(tmp_path):
    path = write_raw_lmdb(str(tmp_path / 'e.lmdb'), [('a', np.zeros((4, 2, 2), np.uint16), {})])
    with pytest.raises(FileExistsError, match='e.lmdb'):
        RawLMDBWriter(path)
    write_raw_lmdb(path, [('b', np.ones((4, 2, 2), np.uint16), {})], overwrite=True)
    assert RawLMDBReader(path).keys() == ['b']


def test_bad_keys_and_duplicates_are_rejected(tmp_path):
    with RawLMDBWriter(str(tmp_path / 'k.lmdb')) as writer:
        with pytest.raises(ValueError, match='invalid RAW LMDB key'):
            writer.put('a.b', np.zeros((4, 2, 2), np.uint16))
        writer.put('a', np.zeros((4, 2, 2), np.uint16))
        with pytest.raises(ValueError, match="duplicate key 'a'"):
            writer.put('a', np.zeros((4, 2, 2), np.uint16))
        with pytest.raises(ValueError, match='dtype int64'):
            writer.put('c', np.zeros((4, 2, 2), np.int64))


def test_missing_key_names_key_and_path(tmp_path):
    path = write_raw_lmdb(str(tmp_path / 'm.lmdb'), [('a', np.zeros((4, 2, 2), np.uint16), {})])
    reader = RawLMDBReader(path)
    with pytest.raises(KeyError, match=r"'nope'.*m\.lmdb"):
        reader.get('nope')


def test_lmdb_without_metadata_is_rejected(tmp_path):
    """A BasicSR-style image LMDB (no 'meta' database) gets one clear error naming the path."""
    path = tmp_path / 'plain.lmdb'
    env = lmdb.open(str(path), map_size=1 << 20)
    with env.begin(write=True) as txn:
        txn.put(b'img', b'\x00' * 32)
    env.close()
    (path / 'meta_info.txt').write_text('img.png (4,4,1) 1\n')
    reader = RawLMDBReader(str(path))
    with pytest.raises(RawLMDBError, match=r'plain\.lmdb has no RAW metadata'):
        reader.get('img')


def test_corrupt_or_missing_lmdb_is_reported(tmp_path):
    with pytest.raises(RawLMDBError, match='not found'):
        RawLMDBReader(str(tmp_path / 'absent.lmdb'))
    bad = tmp_path / 'bad.lmdb'
    bad.mkdir()
    (bad / 'data.mdb').write_bytes(b'this is not an lmdb file' * 100)
    with pytest.raises(RawLMDBError, match=r'bad\.lmdb'):
        RawLMDBReader(str(bad)).meta('x')


def test_truncated_value_is_reported_with_key(tmp_path):
    path = write_raw_lmdb(str(tmp_path / 't.lmdb'), [('a', np.zeros((4, 2, 2), np.uint16), {})])
    env = lmdb.open(path, max_dbs=2)
    with env.begin(write=True) as txn:
        txn.put(b'a', b'\x00' * 7)
    env.close()
    with pytest.raises(RawLMDBError, match=r"corrupt data for key 'a'"):
        RawLMDBReader(path).get('a')


def test_reader_pickles_without_its_handle_and_reopens(tmp_path):
    array = np.arange(4 * 3 * 3, dtype=np.uint16).reshape(4, 3, 3)
    path = write_raw_lmdb(str(tmp_path / 'p.lmdb'), [('a', array, {'iso': 50})])
    reader = RawLMDBReader(path)
    reader.get('a')
    clone = pickle.loads(pickle.dumps(reader))
    assert clone._env is None
    np.testing.assert_array_equal(clone.get('a')[0], array)
    assert json.loads(json.dumps(clone.meta('a')))['iso'] == 50
