"""scripts/evidence_adl_real.py end to end on tiny PolyU-named and noisy/gt folders made here (no shared data)."""
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from conftest import REPO, run_cli

SCRIPT = str(Path(REPO) / 'scripts' / 'evidence_adl_real.py')


def _pair(noisy: Path, clean: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:32, 0:32] / 32
    img = np.stack([0.5 + 0.3 * np.sin(2 * np.pi * (rng.uniform(1, 3) * xx + c * yy)) for c in range(3)], -1)
    noisy.parent.mkdir(parents=True, exist_ok=True)
    clean.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(clean), (img * 255).round().astype(np.uint8))
    cv2.imwrite(str(noisy), (np.clip(img + rng.normal(0, 0.05, img.shape), 0, 1) * 255).round().astype(np.uint8))


def _data(root: Path):
    polyu = root / 'polyu'
    for i, (cam, iso, scene) in enumerate([('CamT', 800, 'a'), ('CamT', 800, 'a'), ('CamT', 1600, 'b'),
                                           ('CamT', 3200, 'c'), ('CamS', 3200, 'x'), ('CamS', 6400, 'y')]):
        base = polyu / f'{cam}_8_8_{iso}_{scene}_{i}'
        _pair(Path(f'{base}_real.png'), Path(f'{base}_mean.png'), i)
    for i in range(2):
        _pair(root / 'extra' / 'noisy' / f'{i:02d}_noise.png', root / 'extra' / 'gt' / f'{i:02d}_gt.png', 10 + i)
    return polyu, root / 'extra'


def test_evidence_adl_real_trains_each_method_and_prints_the_table(tmp_path):
    polyu, extra = _data(tmp_path)
    out = tmp_path / 'out'
    args = [sys.executable, SCRIPT, '--polyu', str(polyu), '--target', 'CamT', '--test-scenes', 'c',
            '--source', f'Extra={extra}@1600', '--iters', '6', '--patch', '16', '--val-crop', '16', '--batch', '2',
            '--target-batch', '1', '--base-ch', '4', '--gate', 'paired_target', '--only', 'target_only', 'adl',
            '--out', str(out), '--workdir', str(tmp_path)]
    proc = run_cli(args, tmp_path, timeout=600)
    assert 'target CamT: 3 training pairs (scenes a, b), 1 test pairs (scenes c); sources CamS, Extra' in proc.stdout
    results = json.loads((out / 'results.json').read_text())
    assert set(results) == {'target_only', 'adl'}
    adl = results['adl']
    assert adl['decisions'] == 4 and set(adl['per_source']) <= {'CamS', 'Extra'}  # stages 1/4/1
    table = (out / 'table.txt').read_text()
    assert 'noisy input' in table and 'paired_target gate' in table and 'accepted source steps per source' in table
    assert np.isfinite(adl['psnr']) and np.isfinite(results['target_only']['psnr'])


def test_evidence_adl_real_names_a_bad_target_and_scene(tmp_path):
    polyu, _ = _data(tmp_path)
    proc = run_cli([sys.executable, SCRIPT, '--polyu', str(polyu), '--target', 'Nikon'], tmp_path, check=False)
    assert proc.returncode != 0 and "--target 'Nikon'" in proc.stderr and 'CamS, CamT' in proc.stderr
    proc = run_cli([sys.executable, SCRIPT, '--polyu', str(polyu), '--target', 'CamT', '--test-scenes', 'zz'],
                   tmp_path, check=False)
    assert proc.returncode != 0 and 'zz' in proc.stderr and '--test-scenes' in proc.stderr


def test_evidence_adl_real_seeds_and_targets_give_one_summary(tmp_path):
    polyu, _ = _data(tmp_path)
    _pair(polyu / 'CamS_8_8_3200_z_9_real.png', polyu / 'CamS_8_8_3200_z_9_mean.png', 9)  # CamS: 2 to train on
    out = tmp_path / 'out'
    args = [sys.executable, SCRIPT, '--polyu', str(polyu), '--targets', 'CamT', 'CamS', '--seeds', '1', '2',
            '--test-scenes', 'c', 'y', '--iters', '3', '--patch', '16', '--val-crop', '16', '--batch', '2',
            '--target-batch', '1', '--base-ch', '4', '--only', 'target_only_plain', 'adl', '--out', str(out),
            '--workdir', str(tmp_path)]
    run_cli(args, tmp_path, timeout=600)
    results = json.loads((out / 'results.json').read_text())
    assert sorted(results) == sorted(f'{t}_s{s}_{k}' for t in ('CamT', 'CamS') for s in (1, 2)
                                     for k in ('target_only_plain', 'adl'))
    table = (out / 'table.txt').read_text()
    assert 'target CamT (noisy input' in table and 'target CamS (noisy input' in table
    assert 'mean over targets' in table and 'target-only, plain UNet' in table
    row = next(line for line in table.splitlines() if line.strip().startswith('target-only, plain UNet'))
    assert len(row.split('   ')[-1].split(', ')) == 2  # one PSNR per seed
    assert (out / 'table_CamS_s2.txt').is_file()
