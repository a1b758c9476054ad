"""RawPairedLMDBDataset and SyntheticRawDataset: contract, crops/augmentation, SID ratio, bad input."""
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from basicsr.utils.registry import DATASET_REGISTRY

from basicsr_adl.raw.bayer import augment_and_crop, normalize_levels
from basicsr_adl.raw.lmdb_store import RawLMDBError, write_raw_lmdb

SENSORS = ['SonyA7S2', 'NikonD850', 'CanonEOS5D4', 'IMX686', 'HuaweiPhone']


def _write_pair(tmp_path, n=4, shape=(4, 12, 14), lq_meta=None, gt_meta=None, gt_shape=None, rng_seed=0):
    rng = np.random.default_rng(rng_seed)
    base = {'pattern': 'RGGB', 'black': [64] * 4, 'white': [1023] * 4, 'sensor': 'IMX686', 'iso': 1600}
    lq_items, gt_items, arrays = [], [], {}
    for i in range(n):
        gt = rng.integers(0, 1024, size=gt_shape or shape, dtype=np.uint16)
        lq = rng.integers(0, 1024, size=shape, dtype=np.uint16)
        key = f'k{i}'
        lq_items.append((key, lq, dict(base, **(lq_meta or {}))))
        gt_items.append((key, gt, dict(base, **(gt_meta or {}))))
        arrays[key] = (lq, gt)
    lq_path = write_raw_lmdb(str(tmp_path / 'lq.lmdb'), lq_items)
    gt_path = write_raw_lmdb(str(tmp_path / 'gt.lmdb'), gt_items)
    return lq_path, gt_path, arrays


def _dataset(lq, gt, **opt):
    cls = DATASET_REGISTRY.get('RawPairedLMDBDataset')
    return cls(dict({'name': 't', 'type': 'RawPairedLMDBDataset', 'phase': 'val', 'dataroot_lq': lq,
                     'dataroot_gt': gt, 'sensors': SENSORS}, **opt))


def test_val_sample_contract_and_exact_values(tmp_path):
    lq_path, gt_path, arrays = _write_pair(tmp_path)
    ds = _dataset(lq_path, gt_path)
    assert len(ds) == 4
    sample = ds[1]
    assert set(sample) >= {'lq', 'gt', 'sensor', 'iso', 'lq_path', 'gt_path'}
    assert sample['lq'].dtype == torch.float32 and sample['lq'].shape == (4, 12, 14)
    assert sample['sensor'] == SENSORS.index('IMX686') and sample['iso'] == 1600.0
    assert sample['lq_path'] == 'k1' and sample['gt_path'] == 'k1'
    lq, gt = arrays['k1']
    np.testing.assert_array_equal(sample['lq'].numpy(), normalize_levels(lq, 64, 1023))
    np.testing.assert_array_equal(sample['gt'].numpy(), normalize_levels(gt, 64, 1023))
    kept = _dataset(lq_path, gt_path, keep_negative=True)[1]
    assert kept['lq'].min() < 0 <= sample['lq'].min()


def test_train_crops_are_aligned_and_augmented_like_the_mosaic(tmp_path):
    """With identical noisy and clean data, every crop/augmentation must keep lq == gt; and the result must be
    one of the 8 Bayer-safe transforms of some window of the image."""
    rng = np.random.default_rng(5)
    array = rng.integers(0, 1024, size=(4, 10, 11), dtype=np.uint16)
    meta = {'black': 0, 'white': 1023, 'sensor': 'NikonD850', 'iso': 2000}
    lq = write_raw_lmdb(str(tmp_path / 'lq.lmdb'), [('a', array, meta)])
    gt = write_raw_lmdb(str(tmp_path / 'gt.lmdb'), [('a', array, meta)])
    ds = _dataset(lq, gt, phase='train', gt_size=6, use_hflip=True, use_rot=True)
    norm = normalize_levels(array, 0, 1023)
    candidates = []
    for top in range(10 - 6 + 1):
        for left in range(11 - 6 + 1):
            for h_extra in (0, 1):
                for w_extra in (0, 1):
                    window = norm[:, top:top + 6 + h_extra, left:left + 6 + w_extra]
                    if window.shape[1:] != (6 + h_extra, 6 + w_extra):
                        continue
                    for flags in np.ndindex(2, 2, 2):
                        hflip, vflip, transpose = (bool(f) for f in flags)
                        if hflip != bool(w_extra) or vflip != bool(h_extra):
                            continue
                        candidates.append(augment_and_crop([window], (6, 6), hflip, vflip, transpose)[0])
    seen = set()
    for _ in range(60):
        sample = ds[0]
        assert sample['lq'].shape == (4, 6, 6)
        assert torch.equal(sample['lq'], sample['gt'])
        out = sample['lq'].numpy()
        matches = [i for i, c in enumerate(candidates) if np.array_equal(c, out)]
        assert matches, 'sample is not a Bayer-safe transform of a window'
        seen.add(matches[0] % 8)
    assert len(seen) > 3  # augmentation actually varies


def test_sid_exposure_ratio_rule(tmp_path):
    lq_path, gt_path, arrays = _write_pair(tmp_path, n=1, lq_meta={'exposure': 0.1}, gt_meta={'exposure': 10.0})
    sample = _dataset(lq_path, gt_path)[0]
    assert sample['ratio'] == 100.0
    lq, _ = arrays['k0']
    expected = np.minimum(normalize_levels(lq, 64, 1023) * np.float32(100.0), 1.0)
    np.testing.assert_array_equal(sample['lq'].numpy(), expected)
    capped = _dataset(lq_path, gt_path, ratio_cap=50)[0]
    assert capped['ratio'] == 50.0
    off = _dataset(lq_path, gt_path, exposure_ratio=False)[0]
    assert off['ratio'] == 1.0


def test_shared_clean_keys_and_missing_clean_key(tmp_path):
    rng = np.random.default_rng(7)
    gt = rng.integers(0, 1000, size=(4, 5, 5), dtype=np.uint16)
    meta = {'black': 0, 'white': 1023, 'sensor': 'IMX686', 'iso': 800}
    lq_path = write_raw_lmdb(str(tmp_path / 'lq.lmdb'), [('s1', gt, dict(meta, gt_key='long')),
                                                         ('s2', gt, dict(meta, gt_key='long'))])
    gt_path = write_raw_lmdb(str(tmp_path / 'gt.lmdb'), [('long', gt, meta)])
    ds = _dataset(lq_path, gt_path)
    assert [ds[i]['gt_path'] for i in range(2)] == ['long', 'long']
    bad_lq = write_raw_lmdb(str(tmp_path / 'lq2.lmdb'), [('s3', gt, dict(meta, gt_key='missing'))])
    with pytest.raises(KeyError, match=r"'s3'.*'missing' missing"):
        _dataset(bad_lq, gt_path)


def test_shape_mismatch_names_the_key(tmp_path):
    lq_path, gt_path, _ = _write_pair(tmp_path, n=2, gt_shape=(4, 12, 12))
    with pytest.raises(ValueError, match=r"shape mismatch for key 'k0'"):
        _dataset(lq_path, gt_path)


def test_missing_iso_and_unknown_sensor(tmp_path):
    lq_path, gt_path, _ = _write_pair(tmp_path, n=1, lq_meta={'iso': None}, gt_meta={'iso': None})
    with pytest.raises(ValueError, match=r"k0: no \"iso\""):
        _dataset(lq_path, gt_path)
    assert _dataset(lq_path, gt_path, default_iso=400)[0]['iso'] == 400.0
    with pytest.raises(ValueError, match=r"k0: sensor 'IMX686' is not in"):
        _dataset(lq_path, gt_path, default_iso=400, sensors=['A', 'B'])


def test_lmdb_without_metadata_fails_at_construction(tmp_path):
    import lmdb
    for name in ('lq.lmdb', 'gt.lmdb'):
        env = lmdb.open(str(tmp_path / name), map_size=1 << 20)
        with env.begin(write=True) as txn:
            txn.put(b'a', b'\x00' * 8)
        env.close()
    with pytest.raises(RawLMDBError, match='no RAW metadata'):
        _dataset(str(tmp_path / 'lq.lmdb'), str(tmp_path / 'gt.lmdb'))


def test_dataloader_workers_open_their_own_handles(tmp_path):
    lq_path, gt_path, arrays = _write_pair(tmp_path, n=4)
    ds = _dataset(lq_path, gt_path, phase='train', gt_size=8, use_hflip=True, use_rot=True)
    ds[0]  # open in the parent first: workers must not reuse the inherited handle
    batch = next(iter(DataLoader(ds, batch_size=4, num_workers=2)))
    assert batch['lq'].shape == (4, 4, 8, 8) and batch['sensor'].tolist() == [3] * 4


# -- SyntheticRawDataset ------------------------------------------------------------------------------------
def _synthetic(gt, **opt):
    cls = DATASET_REGISTRY.get('SyntheticRawDataset')
    return cls(dict({'name': 's', 'type': 'SyntheticRawDataset', 'phase': 'val', 'dataroot_gt': gt,
                     'sensors': SENSORS}, **opt))


def test_synthetic_dataset_noise_depends_on_sensor_and_iso(tmp_path):
    clean = np.full((4, 32, 32), 64 + 300, dtype=np.uint16)
    meta = {'black': 64, 'white': 1023, 'sensor': 'IMX686'}
    gt = write_raw_lmdb(str(tmp_path / 'gt.lmdb'), [(f'c{i}', clean, meta) for i in range(3)])
    ds = _synthetic(gt, noise_sensors=['SonyA7S2', 'HuaweiPhone'])
    sample = ds[0]
    assert sample['sensor'] in (0, 4) and sample['lq'].shape == (4, 32, 32)
    np.testing.assert_array_equal(sample['gt'].numpy(), normalize_levels(clean, 64, 1023))
    again = ds[0]
    assert torch.equal(sample['lq'], again['lq'])  # validation noise is reproducible per index
    low = _synthetic(gt, iso_range=[640, 640])[0]
    high = _synthetic(gt, iso_range=[6400, 6400])[0]
    assert low['sensor'] == 3 and low['iso'] == 640.0
    assert (high['lq'] - high['gt']).std() > 1.5 * (low['lq'] - low['gt']).std()
    train = _synthetic(gt, phase='train', gt_size=16, use_hflip=True, use_rot=True)[1]
    assert train['lq'].shape == (4, 16, 16)


def test_synthetic_dataset_missing_iso_where_the_model_needs_one(tmp_path):
    clean = np.full((4, 8, 8), 500, dtype=np.uint16)
    gt = write_raw_lmdb(str(tmp_path / 'gt.lmdb'), [('c0', clean, {'black': 64, 'white': 1023, 'sensor': 'IMX686'})])
    with pytest.raises(ValueError, match=r"c0: the noise model of sensor 'IMX686' needs an ISO"):
        _synthetic(gt, iso_from_metadata=True)[0]
    gt2 = write_raw_lmdb(str(tmp_path / 'gt2.lmdb'), [('c0', clean, {'black': 64, 'white': 1023, 'iso': 3200,
                                                                      'sensor': 'IMX686'})])
    assert _synthetic(gt2, iso_from_metadata=True)[0]['iso'] == 3200.0
    no_sensor = write_raw_lmdb(str(tmp_path / 'gt3.lmdb'), [('c0', clean, {'black': 64, 'white': 1023})])
    with pytest.raises(ValueError, match='c0: clean image has no "sensor"'):
        _synthetic(no_sensor)[0]


def test_train_crops_follow_numpys_global_seed(tmp_path):
    """Random crops come from NumPy's global generator, which BasicSR seeds (per worker), so runs repeat
    and an exact resume can restore them."""
    lq, gt, _ = _write_pair(tmp_path, n=2, shape=(4, 20, 22))
    opts = {'phase': 'train', 'gt_size': 6, 'use_hflip': True, 'use_rot': True}
    raw = _dataset(lq, gt, **opts)
    synth = _synthetic(gt, **opts)

    def draw():
        return [raw[0]['gt'] for _ in range(3)] + [synth[1]['lq'] for _ in range(2)]

    np.random.seed(11)
    first = draw()
    np.random.seed(11)
    again = draw()
    np.random.seed(12)
    other = draw()
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not all(torch.equal(a, b) for a, b in zip(first, other))
