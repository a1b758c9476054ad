"""Embedded multi-sensor RAW set: layout, manifest, distinct sensor domains, atomic build."""
import json
import os

import numpy as np
import pytest

from basicsr.utils.registry import DATASET_REGISTRY

from basicsr_adl.raw import embedded
from basicsr_adl.raw.lmdb_store import RawLMDBReader
from basicsr_adl.raw.noise_models import NOISE_MODEL_SENSORS, get_profile


@pytest.fixture(scope='module')
def tiny_set(tmp_path_factory):
    out = tmp_path_factory.mktemp('emb') / 'raw'
    manifest = embedded.build_embedded_raw(str(out), patch_size=24, target_train=4, target_test=2, source_train=6,
                                           source_test=2, seed=1)
    return out, manifest


def test_layout_and_manifest(tiny_set):
    out, manifest = tiny_set
    on_disk = json.loads((out / 'manifest.json').read_text())
    assert on_disk == manifest
    assert manifest['sensors'] == NOISE_MODEL_SENSORS and len(manifest['sensors']) >= 5
    assert manifest['target'] == 'IMX686' and manifest['target'] not in manifest['sources']
    assert manifest['packed_patch_size'] == 24
    for sensor, entry in manifest['domains'].items():
        assert entry['role'] == ('target' if sensor == manifest['target'] else 'source')
        assert tuple(entry['iso_range']) == get_profile(sensor).iso_range
        for split in ('train', 'test'):
            for side in ('lq', 'gt'):
                path = out / entry[f'{split}_{side}']
                assert path.name == f'{split}_{side}.lmdb' and path.parent.name == sensor
                assert len(RawLMDBReader(str(path)).keys()) == entry[f'{split}_pairs']
    assert manifest['domains']['IMX686']['train_pairs'] == 4
    assert manifest['domains']['SonyA7S2']['train_pairs'] == 6


def test_every_domain_loads_and_domains_differ(tiny_set):
    out, manifest = tiny_set
    cls = DATASET_REGISTRY.get('RawPairedLMDBDataset')
    noise, black_white = {}, set()
    for sensor, entry in manifest['domains'].items():
        ds = cls({'name': sensor, 'phase': 'val', 'dataroot_lq': str(out / entry['train_lq']),
                  'dataroot_gt': str(out / entry['train_gt']), 'sensors': manifest['sensors'], 'keep_negative': True})
        residuals = []
        for i in range(len(ds)):
            sample = ds[i]
            assert sample['lq'].shape == (4, 24, 24)
            assert sample['sensor'] == manifest['sensors'].index(sensor)
            lo, hi = entry['iso_range']
            assert lo <= sample['iso'] <= hi
            assert 0 <= float(sample['gt'].min()) and float(sample['gt'].max()) <= 1
            residuals.append(float((sample['lq'] - sample['gt']).std() / (sample['gt'].mean() + 1e-3)))
        noise[sensor] = np.mean(residuals)
        meta = RawLMDBReader(str(out / entry['train_gt'])).meta(f'{sensor}_train_0000')
        black_white.add((meta['black'], meta['white'], meta['pattern']))
        assert meta['pattern'] == entry['pattern'] and len(meta['ccm']) == 3
    assert all(v > 0 for v in noise.values())
    assert len(black_white) >= 3  # sensors differ in levels/patterns, not only in noise


def test_build_is_deterministic_and_protects_existing_output(tiny_set, tmp_path):
    out, manifest = tiny_set
    with pytest.raises(FileExistsError, match='already exists'):
        embedded.build_embedded_raw(str(out))
    again = embedded.build_embedded_raw(str(tmp_path / 'raw'), patch_size=24, target_train=4, target_test=2,
                                        source_train=6, source_test=2, seed=1)
    assert again == manifest
    a = RawLMDBReader(str(out / 'NikonD850/train_lq.lmdb')).get('NikonD850_train_0003')[0]
    b = RawLMDBReader(str(tmp_path / 'raw/NikonD850/train_lq.lmdb')).get('NikonD850_train_0003')[0]
    np.testing.assert_array_equal(a, b)


def test_failed_build_leaves_nothing(tmp_path, monkeypatch):
    calls = {'n': 0}
    original = embedded.make_clean_packed

    def failing(*args, **kwargs):
        calls['n'] += 1
        if calls['n'] == 5:
            raise RuntimeError('simulated failure')
        return original(*args, **kwargs)

    monkeypatch.setattr(embedded, 'make_clean_packed', failing)
    with pytest.raises(RuntimeError, match='simulated'):
        embedded.build_embedded_raw(str(tmp_path / 'raw'), patch_size=16, target_train=2, target_test=1,
                                    source_train=2, source_test=1)
    assert os.listdir(tmp_path) == []


def test_unknown_target_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="target sensor 'Pixel'"):
        embedded.build_embedded_raw(str(tmp_path / 'raw'), target='Pixel')
    with pytest.raises(FileNotFoundError, match='make_embedded_raw.py'):
        embedded.load_manifest(str(tmp_path / 'nothing'))


def test_target_is_scarce_and_its_test_pairs_are_held_out(tiny_set):
    out, manifest = tiny_set
    target = manifest['domains']['IMX686']
    low, high = embedded.iso_band(get_profile('IMX686').iso_range, embedded.DEFAULT_TARGET_ISO_BAND)
    assert target['train_iso_range'] == [round(low, 1), round(high, 1)] and manifest['version'] == 2
    photos = {}
    for sensor, entry in manifest['domains'].items():
        for split in ('train', 'test'):
            reader = RawLMDBReader(str(out / entry[f'{split}_gt']))
            metas = [reader.meta(k) for k in reader.keys()]
            photos[sensor, split] = {m['photo'] for m in metas}
            if sensor == 'IMX686' and split == 'train':  # a narrow ISO band
                assert all(low - 1 <= m['iso'] <= high + 1 for m in metas)
            if sensor == 'IMX686' and split == 'test':  # spread over the whole range, in log ISO
                isos = [m['iso'] for m in metas]
                assert isos == embedded.stratified_isos(get_profile('IMX686').iso_range, 2) and isos[0] < low < high < isos[1]
    assert photos['IMX686', 'train'] == set(embedded.TARGET_PHOTOS)
    trained_on = set().union(*(p for (s, split), p in photos.items() if split == 'train'))
    assert photos['IMX686', 'test'] and not photos['IMX686', 'test'] & trained_on  # no sensor trains on test photos
    assert len(photos['SonyA7S2', 'train']) == 6 > len(embedded.TARGET_PHOTOS)  # 6 pairs: 6 different photos
    assert 'mpl:grace_hopper.jpg' in embedded.SOURCE_PHOTOS and len(embedded.load_photos(['moon'])[0].shape) == 3
