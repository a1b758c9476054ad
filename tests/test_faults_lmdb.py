"""Fault injection, issue #15 cases 3-5: converters write both LMDBs or neither; LMDB open checks.

Each test breaks something on purpose (same output twice, a corrupt file, Ctrl-C, a real SIGTERM, a failing
rename, a killed earlier run, a truncated data.mdb, keys listed but absent) and asserts the one error line,
the exit status and that nothing half-written is left.
"""
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import lmdb
import numpy as np
import pytest

from basicsr.utils.registry import DATASET_REGISTRY

from basicsr_adl.raw import atomic, converters
from basicsr_adl.raw.lmdb_store import LMDBError, RawLMDBError, RawLMDBReader, check_image_lmdb, write_raw_lmdb
from conftest import cli_env, load_script, make_basicsr_lmdbs, make_noisy_pairs, sr_train_options, write_yaml
from raw_fakes import make_folder_layout

REPO = Path(__file__).resolve().parents[1]
FOLDER_SCRIPT = 'convert_raw_folder_to_lmdb.py'


def _convert(capsys, *args):
    """Run the folder converter in-process; (exit code, stderr lines)."""
    code = load_script(FOLDER_SCRIPT).main([*args, '--no-progress'])
    err = capsys.readouterr().err
    return code, [line for line in err.splitlines() if line.strip()]


def _layout(tmp_path, n=3, seed=0):
    make_folder_layout(str(tmp_path / 'in'), np.random.default_rng(seed), n=n, kind='npy')
    return str(tmp_path / 'in' / 'noisy'), str(tmp_path / 'in' / 'clean')


def _args(lq_in, gt_in, lq_out, gt_out, *extra):
    return ['--lq', lq_in, '--gt', gt_in, '--out-lq', str(lq_out), '--out-gt', str(gt_out), *extra]


def _snapshot(path):
    reader = RawLMDBReader(str(path))
    return {key: reader.get(key)[0] for key in reader.keys()}


def _dead_pid():
    proc = subprocess.Popen([sys.executable, '-c', 'pass'])
    proc.wait()
    return proc.pid


# -- case 3: the same folder twice ---------------------------------------------------------------------------
@pytest.mark.parametrize('gt_name', ['lq.lmdb', './sub/../lq.lmdb', 'lq.lmdb/gt.lmdb'])
def test_same_out_lq_and_out_gt_is_refused(tmp_path, capsys, gt_name):
    lq_in, gt_in = _layout(tmp_path)
    out = tmp_path / 'out'
    (out / 'sub').mkdir(parents=True)
    code, lines = _convert(capsys, *_args(lq_in, gt_in, out / 'lq.lmdb', str(out) + '/' + gt_name))
    assert code == 1
    assert len(lines) == 1 and lines[0].startswith('error: --out-lq ') and 'same folder' in lines[0]
    assert os.listdir(out) == ['sub']


def test_same_out_through_a_symlink_is_refused(tmp_path, capsys):
    lq_in, gt_in = _layout(tmp_path)
    (tmp_path / 'out').mkdir()
    os.symlink(tmp_path / 'out', tmp_path / 'alias')
    code, lines = _convert(capsys, *_args(lq_in, gt_in, tmp_path / 'out/x.lmdb', tmp_path / 'alias/x.lmdb'))
    assert code == 1 and len(lines) == 1 and 'same folder' in lines[0]
    assert os.listdir(tmp_path / 'out') == []


def test_same_lq_and_gt_input_is_refused(tmp_path, capsys):
    lq_in, _ = _layout(tmp_path)
    code, lines = _convert(capsys, *_args(lq_in, lq_in + '/', tmp_path / 'out/lq.lmdb', tmp_path / 'out/gt.lmdb'))
    assert code == 1
    assert lines == [f'error: --lq {lq_in} and --gt {lq_in}/ are the same folder (or one is inside the other): '
                     'every file would pair with itself']
    assert not (tmp_path / 'out').exists()


# -- case 4: both or neither ---------------------------------------------------------------------------------
def test_corrupt_second_file_leaves_neither_lmdb(tmp_path, capsys):
    lq_in, gt_in = _layout(tmp_path)
    Path(gt_in, 'img_01.npy').write_bytes(b'not a numpy file')
    out = tmp_path / 'out'
    code, lines = _convert(capsys, *_args(lq_in, gt_in, out / 'lq.lmdb', out / 'gt.lmdb'))
    assert code == 1 and len(lines) == 1 and 'img_01.npy' in lines[0]
    assert os.listdir(out) == []  # neither LMDB, no temporary folder


def test_ctrl_c_midway_leaves_neither_lmdb(tmp_path, capsys, monkeypatch):
    lq_in, gt_in = _layout(tmp_path, n=4)
    original, calls = converters._load_capture, []

    def interrupted(path, meta):
        calls.append(path)
        if len(calls) == 5:  # two pairs written, both temporary LMDBs open
            assert len(os.listdir(tmp_path / 'out')) == 2
            raise KeyboardInterrupt
        return original(path, meta)

    monkeypatch.setattr(converters, '_load_capture', interrupted)
    out = tmp_path / 'out'
    code, lines = _convert(capsys, *_args(lq_in, gt_in, out / 'lq.lmdb', out / 'gt.lmdb'))
    assert code == 130
    assert lines == [f'error: interrupted by SIGINT: {out}/lq.lmdb and {out}/gt.lmdb unchanged, temporary folders '
                     'removed']
    assert os.listdir(out) == []


def test_sigterm_in_process_is_turned_into_cleanup(tmp_path, capsys, monkeypatch):
    """The guard's handler raises, so the cleanup runs (SIGTERM's default action would skip it)."""
    lq_in, gt_in = _layout(tmp_path)
    original, calls = converters._load_capture, []

    def terminated(path, meta):
        calls.append(path)
        if len(calls) == 3:
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL  # else the test process would die
            signal.raise_signal(signal.SIGTERM)
        return original(path, meta)

    monkeypatch.setattr(converters, '_load_capture', terminated)
    out = tmp_path / 'out'
    code, lines = _convert(capsys, *_args(lq_in, gt_in, out / 'lq.lmdb', out / 'gt.lmdb'))
    assert code == 143 and len(lines) == 1 and lines[0].startswith('error: interrupted by SIGTERM: ')
    assert os.listdir(out) == []
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is removed after the write


CHILD = r'''
import runpy, sys, time
from basicsr_adl.raw import converters
ready, original, calls = sys.argv[1], converters._load_capture, []
def slow(path, meta):  # after two pairs, say so and wait to be terminated
    calls.append(path)
    if len(calls) == 5:
        open(ready, 'w').close()
        for _ in range(1200):
            time.sleep(0.05)
    return original(path, meta)
converters._load_capture = slow
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], run_name='__main__')
'''


def test_real_sigterm_to_a_converter_process_leaves_neither_lmdb(tmp_path):
    lq_in, gt_in = _layout(tmp_path, n=4)
    out, ready = tmp_path / 'out', tmp_path / 'ready'
    proc = subprocess.Popen([sys.executable, '-c', CHILD, str(ready), str(REPO / 'scripts' / FOLDER_SCRIPT),
                             *_args(lq_in, gt_in, out / 'lq.lmdb', out / 'gt.lmdb'), '--no-progress'],
                            cwd=str(REPO), env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 240
        while not ready.exists():
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.time() < deadline, 'converter never reached the write'
            time.sleep(0.05)
        assert sorted(n.split('.tmp-')[0] for n in os.listdir(out)) == ['.gt.lmdb', '.lq.lmdb']  # mid-write
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines == [f'error: interrupted by SIGTERM: {out}/lq.lmdb and {out}/gt.lmdb unchanged, temporary '
                     'folders removed']
    assert os.listdir(out) == []


def test_failing_overwrite_keeps_the_old_pair(tmp_path, capsys):
    lq_in, gt_in = _layout(tmp_path)
    out = tmp_path / 'out'
    assert _convert(capsys, *_args(lq_in, gt_in, out / 'lq.lmdb', out / 'gt.lmdb'))[0] == 0
    before = (_snapshot(out / 'lq.lmdb'), _snapshot(out / 'gt.lmdb'))
    new_in = tmp_path / 'new'
    make_folder_layout(str(new_in), np.random.default_rng(9), n=3, kind='npy')
    (new_in / 'clean' / 'img_02.npy').write_bytes(b'broken')
    code, lines = _convert(capsys, *_args(str(new_in / 'noisy'), str(new_in / 'clean'), out / 'lq.lmdb',
                                          out / 'gt.lmdb', '--overwrite'))
    assert code == 1 and len(lines) == 1 and 'img_02.npy' in lines[0]
    assert sorted(os.listdir(out)) == ['gt.lmdb', 'lq.lmdb']
    for path, old in zip(('lq.lmdb', 'gt.lmdb'), before):
        now = _snapshot(out / path)
        assert now.keys() == old.keys() and all(np.array_equal(now[k], old[k]) for k in old)


def test_rename_failure_while_publishing_puts_the_old_pair_back(tmp_path, capsys, monkeypatch):
    lq_in, gt_in = _layout(tmp_path)
    out = tmp_path / 'out'
    assert _convert(capsys, *_args(lq_in, gt_in, out / 'lq.lmdb', out / 'gt.lmdb'))[0] == 0
    before = (_snapshot(out / 'lq.lmdb'), _snapshot(out / 'gt.lmdb'))
    real_rename = os.rename

    def rename(src, dst):  # the new clean LMDB cannot be moved in (after the new noisy one was)
        name = os.path.basename(src)
        if name.startswith('.gt.lmdb.tmp-') and '-old-' not in name and dst == str(out / 'gt.lmdb'):
            raise OSError(f'simulated rename failure for {dst}')
        return real_rename(src, dst)

    monkeypatch.setattr(os, 'rename', rename)
    new_in = tmp_path / 'new'
    make_folder_layout(str(new_in), np.random.default_rng(5), n=3, kind='npy')
    code, lines = _convert(capsys, *_args(str(new_in / 'noisy'), str(new_in / 'clean'), out / 'lq.lmdb',
                                          out / 'gt.lmdb', '--overwrite'))
    assert code == 1 and lines == [f'error: simulated rename failure for {out}/gt.lmdb']
    assert sorted(os.listdir(out)) == ['gt.lmdb', 'lq.lmdb']  # no temporary or moved-aside folder either
    for path, old in zip(('lq.lmdb', 'gt.lmdb'), before):  # the old noisy one is back, not the new one
        now = _snapshot(out / path)
        assert now.keys() == old.keys() and all(np.array_equal(now[k], old[k]) for k in old)


def test_signal_during_publish_is_held_until_both_are_in_place(tmp_path, capsys, monkeypatch):
    lq_in, gt_in = _layout(tmp_path)
    out = tmp_path / 'out'
    real_rename = os.rename

    def rename(src, dst):  # SIGTERM between the two renames: held, raised once both are in place
        real_rename(src, dst)
        if dst == str(out / 'lq.lmdb'):
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
            signal.raise_signal(signal.SIGTERM)

    monkeypatch.setattr(os, 'rename', rename)
    code, lines = _convert(capsys, *_args(lq_in, gt_in, out / 'lq.lmdb', out / 'gt.lmdb'))
    assert code == 143
    assert lines == [f'error: interrupted by SIGTERM just after publishing {out}/lq.lmdb and {out}/gt.lmdb '
                     '(complete)']
    assert sorted(os.listdir(out)) == ['gt.lmdb', 'lq.lmdb']
    assert len(RawLMDBReader(str(out / 'lq.lmdb')).keys()) == len(RawLMDBReader(str(out / 'gt.lmdb')).keys()) == 3


def test_stale_temporary_folders_do_not_block_a_rerun(tmp_path, capsys):
    lq_in, gt_in = _layout(tmp_path)
    out = tmp_path / 'out'
    dead = _dead_pid()
    stale = [out / f'.lq.lmdb.tmp-{dead}-abc123', out / f'.gt.lmdb.tmp-{dead}-old-0f0f0f0f',
             out / f'.gt.lmdb.tmp-{os.getpid()}-reused']  # a reused pid (containers) is stale too
    for folder in stale:
        folder.mkdir(parents=True)
        (folder / 'data.mdb').write_bytes(b'\0' * 4096)
    alive = out / f'.lq.lmdb.tmp-{os.getppid()}-busy'  # a live writer's folder is left alone
    alive.mkdir()
    code, lines = _convert(capsys, *_args(lq_in, gt_in, out / 'lq.lmdb', out / 'gt.lmdb'))
    assert code == 0
    info = sorted(line for line in lines if line.startswith('info: removed stale temporary folder '))
    assert len(info) == 3 and len(lines) == 3
    assert all(any(str(folder) in line for line in info) for folder in stale)
    assert sorted(os.listdir(out)) == sorted(['gt.lmdb', 'lq.lmdb', alive.name])
    assert len(RawLMDBReader(str(out / 'lq.lmdb')).keys()) == 3


def test_embedded_build_removes_stale_folders_and_keeps_old_set_on_failure(tmp_path, capsys, monkeypatch):
    from basicsr_adl.raw import embedded
    out = tmp_path / 'raw'
    stale = tmp_path / f'.raw.tmp-{_dead_pid()}-zz'
    stale.mkdir()
    small = dict(patch_size=16, sensors=['IMX686', 'SonyA7S2'], target='IMX686', target_train=1, target_test=1,
                 source_train=1, source_test=1)
    embedded.build_embedded_raw(str(out), **small)
    assert 'removed stale temporary folder' in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ['raw']
    old = _snapshot(out / 'IMX686' / 'train_lq.lmdb')

    def failing(*args, **kwargs):
        raise RuntimeError('simulated failure')

    monkeypatch.setattr(embedded, 'make_clean_packed', failing)
    with pytest.raises(RuntimeError, match='simulated'):
        embedded.build_embedded_raw(str(out), overwrite=True, seed=3, **small)
    assert sorted(os.listdir(tmp_path)) == ['raw']
    now = _snapshot(out / 'IMX686' / 'train_lq.lmdb')
    assert all(np.array_equal(now[k], old[k]) for k in old)


def test_publish_together_restores_both_when_the_second_rename_fails(tmp_path, monkeypatch):
    """The publishing step alone: both old folders come back, both new ones are taken out again."""
    for name in ('a', 'b'):
        (tmp_path / name).mkdir()
        (tmp_path / name / 'old').write_text(name)
        (tmp_path / f'new_{name}').mkdir()
        (tmp_path / f'new_{name}' / 'new').write_text(name)
    real_rename = os.rename

    def rename(src, dst):
        if src.endswith('new_b'):
            raise OSError('disk gone')
        return real_rename(src, dst)

    monkeypatch.setattr(os, 'rename', rename)
    with pytest.raises(OSError, match='disk gone'):
        atomic.publish_together([(str(tmp_path / 'new_a'), str(tmp_path / 'a')),
                                 (str(tmp_path / 'new_b'), str(tmp_path / 'b'))], overwrite=True)
    assert sorted(os.listdir(tmp_path)) == ['a', 'b', 'new_a', 'new_b']
    assert (tmp_path / 'a' / 'old').read_text() == 'a' and (tmp_path / 'new_a' / 'new').exists()


# -- case 5: LMDB open checks ---------------------------------------------------------------------------------
def _raw_lmdb(path, n=4, shape=(4, 64, 64)):
    rng = np.random.default_rng(0)
    items = [(f'k{i}', rng.integers(0, 1024, size=shape, dtype=np.uint16),
              {'pattern': 'RGGB', 'black': [64] * 4, 'white': [1023] * 4, 'sensor': 'IMX686', 'iso': 100})
             for i in range(n)]
    return write_raw_lmdb(str(path), items)


def _truncate_data_mdb(lmdb_dir, keep_fraction=0.5):
    data = os.path.join(str(lmdb_dir), 'data.mdb')
    size = os.path.getsize(data)
    keep = max(int(size * keep_fraction), 3 * 4096)
    assert keep < size - 4096, 'test LMDB too small to truncate meaningfully'
    with open(data, 'r+b') as handle:
        handle.truncate(keep)
    return data, keep


def test_truncated_raw_lmdb_is_reported_at_open(tmp_path):
    path = _raw_lmdb(tmp_path / 'lq.lmdb')
    data, keep = _truncate_data_mdb(path)
    reader = RawLMDBReader(path)
    with pytest.raises(RawLMDBError) as info:
        reader.get('k3')
    message = str(info.value)
    assert message.startswith(f'{data} is truncated: {keep} bytes, but the database holds ')
    assert '\n' not in message


def test_truncated_lmdb_in_preview_script_is_one_line_exit_1(tmp_path):
    path = _raw_lmdb(tmp_path / 'lq.lmdb')
    data, _ = _truncate_data_mdb(path)
    proc = subprocess.run([sys.executable, str(REPO / 'scripts' / 'preview_raw.py'), '--lmdb', path, '--key', 'k3',
                           '--out', str(tmp_path / 'a.png')], cwd=str(REPO), env=cli_env(), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr[-3000:]  # not 135 (bus error)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f'error: {data} is truncated: ')
    assert not (tmp_path / 'a.png').exists()


def test_truncated_lmdb_fails_dataset_construction(tmp_path):
    lq = _raw_lmdb(tmp_path / 'lq.lmdb')
    gt = _raw_lmdb(tmp_path / 'gt.lmdb')
    data, _ = _truncate_data_mdb(gt)
    cls = DATASET_REGISTRY.get('RawPairedLMDBDataset')
    with pytest.raises(RawLMDBError, match='^' + re.escape(data) + ' is truncated'):
        cls({'name': 't', 'phase': 'val', 'dataroot_lq': lq, 'dataroot_gt': gt})


def test_keys_listed_but_missing_are_named_at_open(tmp_path):
    path = _raw_lmdb(tmp_path / 'lq.lmdb', n=2, shape=(4, 2, 2))
    with open(os.path.join(path, 'meta_info.txt'), 'a') as handle:
        for i in range(7):
            handle.write(f'ghost{i}.raw (2,2,4) uint16\n')
    reader = RawLMDBReader(path)
    with pytest.raises(RawLMDBError) as info:
        reader.get('k0')  # a key that exists: the check is at open, not at the missing key's read
    assert str(info.value) == (f'{path}: 7 of 9 keys listed in meta_info.txt are missing in the database: '
                               'ghost0, ghost1, ghost2, ghost3, ghost4, ... (incomplete LMDB or wrong meta_info.txt)')


def test_key_with_metadata_but_no_data_is_named_at_open(tmp_path):
    path = _raw_lmdb(tmp_path / 'lq.lmdb', n=3, shape=(4, 2, 2))
    env = lmdb.open(path, max_dbs=2)
    with env.begin(write=True) as txn:
        txn.delete(b'k1')
    env.close()
    with pytest.raises(RawLMDBError, match=r'1 of 3 keys listed in meta_info.txt are missing in the database: k1 '):
        RawLMDBReader(path).meta('k0')


def _basicsr_image_lmdb(tmp_path, n=6):
    pairs = make_noisy_pairs(tmp_path / 'img', n, size=32)
    return make_basicsr_lmdbs(pairs)


def test_basicsr_image_lmdb_checks_at_dataset_construction(tmp_path):
    lmdbs = _basicsr_image_lmdb(tmp_path)
    opt = {'name': 'p', 'phase': 'train', 'type': 'PairedImageDataset', 'dataroot_lq': lmdbs['lq'],
           'dataroot_gt': lmdbs['gt'], 'io_backend': {'type': 'lmdb'}, 'scale': 1, 'gt_size': 16}
    cls = DATASET_REGISTRY.get('PairedImageDataset')
    assert len(cls(dict(opt))) == 6  # intact: builds and reads
    with open(os.path.join(lmdbs['gt'], 'meta_info.txt'), 'a') as handle:
        handle.write('999.png (32,32,3) 1\n')
    with pytest.raises(LMDBError, match=r'gt\.lmdb: 1 of 7 keys listed in meta_info.txt are missing in the '
                                        r'database: 999 '):
        cls(dict(opt))
    data, _ = _truncate_data_mdb(lmdbs['lq'], keep_fraction=0.6)
    with pytest.raises(LMDBError, match='^' + re.escape(data) + ' is truncated'):
        check_image_lmdb(lmdbs['lq'])


def test_truncated_basicsr_lmdb_stops_training_with_one_line(tmp_path):
    lmdbs = _basicsr_image_lmdb(tmp_path)
    val = make_noisy_pairs(tmp_path / 'val', 1, size=32)
    data, _ = _truncate_data_mdb(lmdbs['gt'], keep_fraction=0.6)
    opt = sr_train_options('faults_lmdb', lmdbs['lq'], lmdbs['gt'], str(val / 'lq'), str(val / 'gt'), total_iter=2)
    options = write_yaml(tmp_path / 'train.yml', opt)
    proc = subprocess.run([sys.executable, str(REPO / 'basicsr_adl' / 'train.py'), '-opt', str(options)],
                          cwd=str(tmp_path), env=cli_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr[-3000:]  # not 135 (bus error)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f'basicsr_adl: error: {data} is truncated: ')  # no traceback
    assert not (tmp_path / 'experiments').exists()  # checked before BasicSR creates anything


def test_check_dataset_lmdbs_walks_nested_dataset_options(tmp_path):
    """Domains of a MultiDomainDataset are nested: the pre-run check finds their LMDBs too."""
    from basicsr_adl.raw.lmdb_store import check_dataset_lmdbs
    good = _raw_lmdb(tmp_path / 'good.lmdb', n=2, shape=(4, 2, 2))
    bad = _raw_lmdb(tmp_path / 'bad.lmdb', n=2, shape=(4, 2, 2))
    with open(os.path.join(bad, 'meta_info.txt'), 'a') as handle:
        handle.write('lost.raw (2,2,4) uint16\n')
    datasets = {'train': {'type': 'MultiDomainDataset', 'domains': {
        'a': {'type': 'RawPairedLMDBDataset', 'dataroot_lq': good, 'dataroot_gt': good},
        'b': {'type': 'RawPairedLMDBDataset', 'dataroot_lq': good, 'dataroot_gt': bad}}},
        'val': {'dataroot_gt': str(tmp_path / 'pngs'), 'dataroot_lq': [good]}}
    with pytest.raises(LMDBError, match=r'bad\.lmdb: 1 of 3 keys listed in meta_info.txt are missing in the '
                                        r'database: lost '):
        check_dataset_lmdbs(datasets)
    datasets['train']['domains'].pop('b')
    check_dataset_lmdbs(datasets)


def test_image_lmdb_check_leaves_foreign_folders_to_the_caller(tmp_path):
    check_image_lmdb(str(tmp_path / 'absent.lmdb'))  # no data.mdb: BasicSR's own error follows
    ok = tmp_path / 'ok.lmdb'
    env = lmdb.open(str(ok), map_size=1 << 20)
    with env.begin(write=True) as txn:
        txn.put(b'a', cv2.imencode('.png', np.zeros((4, 4), np.uint8))[1].tobytes())
    env.close()
    (ok / 'meta_info.txt').write_text('a.png (4,4,1) 1\n')
    check_image_lmdb(str(ok))
    held = lmdb.open(str(ok), readonly=True, lock=False)  # already open in this process: skipped, no error
    try:
        check_image_lmdb(str(ok))
    finally:
        held.close()
