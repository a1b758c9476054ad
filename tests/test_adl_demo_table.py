"""The demo's results table over several seeds: means, per-seed PSNRs and per-seed gaps to the best baseline."""
import argparse

from conftest import load_script


def _demo_module():
    return load_script('run_adl_demo.py')


def _run(tmp_path, name, psnr, accepted=None):
    exp = tmp_path / name
    exp.mkdir()
    if accepted is not None:
        rows = ['source,epoch,accepted,total'] + [f'{s},0,{a},{n}' for s, (a, n) in accepted.items()]
        (exp / 'adl_accept_rates.csv').write_text('\n'.join(rows) + '\n')
    return {'psnr': psnr, 'ssim': 0.9, 'seconds': 10.0, 'experiment': str(exp)}


def test_table_gives_means_each_seed_and_the_gap_per_seed(tmp_path):
    demo = _demo_module()
    per_seed = [
        {'target_only': _run(tmp_path, 't1', 40.0), 'finetune': _run(tmp_path, 'f1', 39.0),
         'adl': _run(tmp_path, 'a1', 40.3, {'Sony': (3, 4), 'Nikon': (1, 2)})},
        {'target_only': _run(tmp_path, 't2', 39.0), 'finetune': _run(tmp_path, 'f2', 39.5),
         'adl': _run(tmp_path, 'a2', 39.2, {'Sony': (0, 4), 'Nikon': (2, 2)})},
    ]
    args = argparse.Namespace(iters=10, gate='paired_target', gate_every=1, tolerance=0.0)
    table = demo.results_table_text(per_seed, [10, 11], {'psnr': 35.0, 'ssim': 0.8}, 'IMX686', 6, args)
    rows = {line.split('  ')[0].strip(): line for line in table.splitlines()}
    assert 'mean over 2 seeds' in table
    assert rows['target-only'].split()[1] == '39.50' and rows['target-only'].endswith('40.00, 39.00')
    assert rows['ADL'].split()[1] == '39.75' and rows['ADL'].endswith('40.30, 39.20')
    # gaps: 40.3 - 40.0 = +0.30 and 39.2 - 39.5 = -0.30, mean 0.00
    assert 'ADL - best baseline: +0.00 dB (per seed +0.30, -0.30)' in table
    assert 'Sony 3/8, Nikon 3/4' in table
    single = demo.results_table_text(per_seed[:1], [10], {'psnr': 35.0, 'ssim': 0.8}, 'IMX686', 6, args)
    assert 'per seed' not in single and 'ADL - best baseline: +0.30 dB' in single


def test_table_names_an_equal_wall_clock_budget_and_each_methods_iterations(tmp_path):
    demo = _demo_module()
    per_seed = [{'target_only': _run(tmp_path, 't1', 40.0), 'adl': _run(tmp_path, 'a1', 40.3, {'Sony': (1, 2)})}]
    args = argparse.Namespace(iters=10, gate='paired_target', gate_every=1, tolerance=0.0, budget_seconds=60.0,
                              iterations={'target_only': 500, 'adl': 210})
    table = demo.results_table_text(per_seed, [10], {'psnr': 35.0, 'ssim': 0.8}, 'IMX686', 6, args)
    assert 'equal wall-clock, about 60 s of training per run (iterations: target-only 500, ADL 210)' in table


def test_iteration_probe_times_each_stage_and_leaves_no_experiment_folder(tmp_path):
    """iteration_seconds builds the run in-process, times a few iterations of each stage, weights them by the
    stage lengths; the budget turns that into iterations; the probe's experiment folder is removed."""
    import yaml
    from adl_testdata import make_data, make_options
    from basicsr_adl.adl.experiments import iteration_seconds, iterations_for_budget

    data = make_data(str(tmp_path / 'data'))
    with open(make_options(str(tmp_path), data, name='probe_me', stages=(4, 8, 4), total_iter=16)) as f:
        opt = yaml.safe_load(f)
    seconds = iteration_seconds(opt, str(tmp_path), probe=2)
    assert 0 < seconds < 5
    assert iterations_for_budget(opt, 1000 * seconds, str(tmp_path)) >= 300  # ~1000, timing noise allowed
    assert iterations_for_budget(opt, 0.0, str(tmp_path)) == 10
    assert not (tmp_path / 'experiments' / 'probe_me_probe').exists()
