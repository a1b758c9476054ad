"""ADL plain-PyTorch cores: gates, exact snapshot/restore, V' sampler, stage schedule, accept log."""
import csv

import pytest
import torch

from basicsr_adl.adl import (AcceptLog, DynamicValidationSampler, PairedGainQueueGate, PairedGate, PaperQueueGate,
                             StageSchedule, TrainingSnapshot, build_gate)


# ----------------------------------------------------------------------------------------------- gates
def test_paper_gate_accepts_above_queue_mean_and_pops_lowest():
    gate = PaperQueueGate(queue_size=3)
    gate.start(30.0)
    assert gate.queue == [30.0]
    assert not gate.decide(30.0)  # equal to the mean is not "above"
    assert gate.decide(31.0)  # mean 30 -> accept, push
    assert gate.queue == [30.0, 31.0]
    assert not gate.decide(30.4)  # mean 30.5
    assert gate.decide(32.0)
    assert gate.queue == [30.0, 31.0, 32.0]
    assert gate.decide(31.5)  # mean 31 -> accept; queue full -> lowest (30) popped
    assert sorted(gate.queue) == [31.0, 31.5, 32.0]
    assert gate.threshold() == pytest.approx(31.5)


def test_paper_gate_stalls_on_varying_difficulty_while_paired_does_not():
    """The measured pitfall: with per-subset PSNR spread of several dB, the queue fills with easy subsets."""
    gen = torch.Generator().manual_seed(0)
    paper, paired = PaperQueueGate(10), PairedGate(0.0)
    paper.start(30.0)
    paper_acc = paired_acc = 0
    for t in range(400):
        difficulty = float(torch.randn((), generator=gen)) * 2.0  # subset difficulty, dB
        prev = 30.0 + 0.002 * t + difficulty
        cand = prev + 0.01  # every step truly helps a little
        paper_acc += paper.decide(cand)
        paired_acc += paired.decide(cand, prev)
    assert paired_acc == 400
    assert paper_acc < 100


def test_paired_gate_tolerance():
    gate = PairedGate(tolerance=0.05)
    assert gate.decide(30.0, 30.0)
    assert gate.decide(29.96, 30.0)
    assert not gate.decide(29.9, 30.0)
    with pytest.raises(ValueError):
        gate.decide(30.0, None)


def test_paired_target_gate_needs_a_strict_gain_over_the_target_only_step():
    gate = build_gate('paired_target')
    assert gate.against_target_step and not gate.needs_previous
    assert gate.decide(30.01, 30.0)
    assert not gate.decide(30.0, 30.0)  # a tie keeps the target-only step
    assert not gate.decide(29.99, 30.0)
    tolerant = build_gate('paired_target', tolerance=0.05)
    assert tolerant.decide(29.96, 30.0) and not tolerant.decide(29.9, 30.0)
    with pytest.raises(ValueError):
        gate.decide(30.0, None)


def test_paired_queue_gate_follows_recent_gains():
    gate = PairedGainQueueGate(queue_size=2, tolerance=0.0)
    assert gate.decide(30.1, 30.0)  # gain 0.1 >= min(mean[0], 0)
    assert gate.decide(30.0, 30.0)  # gain 0 >= min(0.05, 0)
    assert not gate.decide(29.9, 30.0)  # gain -0.1 < 0
    state = gate.state_dict()
    other = PairedGainQueueGate(queue_size=2)
    other.load_state_dict(state)
    assert other.gains == gate.gains


def test_build_gate_rejects_unknown_criterion():
    with pytest.raises(ValueError, match='choices'):
        build_gate('best')
    assert build_gate('always').decide(0.0)


# ----------------------------------------------------------------------------------------------- snapshot
def _net_and_adam(seed=0):
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                              torch.nn.Conv2d(4, 3, 3, padding=1))
    return net, torch.optim.AdamW(net.parameters(), lr=1e-2)


def _step(net, opt, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(2, 3, 8, 8, generator=g)
    opt.zero_grad()
    (net(x) - x).abs().mean().backward()
    opt.step()


def _flat_state(net, opt):
    tensors = [t.detach().clone() for t in list(net.parameters()) + list(net.buffers())]
    st = opt.state_dict()['state']
    return tensors, {k: {kk: (vv.clone() if torch.is_tensor(vv) else vv) for kk, vv in v.items()} for k, v in st.items()}


def _assert_equal_states(a, b):
    assert len(a[0]) == len(b[0])
    for x, y in zip(a[0], b[0]):
        assert torch.equal(x, y)
    assert a[1].keys() == b[1].keys()
    for k in a[1]:
        assert a[1][k].keys() == b[1][k].keys()
        for kk in a[1][k]:
            assert torch.equal(torch.as_tensor(a[1][k][kk]), torch.as_tensor(b[1][k][kk]))


def test_snapshot_revert_is_bit_exact_and_continues_identically():
    net, opt = _net_and_adam()
    ref_net, ref_opt = _net_and_adam()
    for s in range(3):
        _step(net, opt, s)
        _step(ref_net, ref_opt, s)
    snap = TrainingSnapshot(net, opt)
    before = _flat_state(net, opt)
    snap.capture()
    _step(net, opt, 100)  # a step to discard
    assert not torch.equal(before[0][0], net[0].weight)
    snap.restore()
    _assert_equal_states(before, _flat_state(net, opt))
    # continuing after the revert equals a run that never took the discarded step
    for s in range(3, 6):
        _step(net, opt, s)
        _step(ref_net, ref_opt, s)
    _assert_equal_states(_flat_state(ref_net, ref_opt), _flat_state(net, opt))


def test_snapshot_before_first_step_removes_lazily_created_optimizer_state():
    net, opt = _net_and_adam()
    snap = TrainingSnapshot(net, opt)
    snap.capture()
    _step(net, opt, 1)
    assert len(opt.state) > 0
    snap.restore()
    assert len(opt.state) == 0
    ref_net, ref_opt = _net_and_adam()
    _step(net, opt, 2)
    _step(ref_net, ref_opt, 2)
    _assert_equal_states(_flat_state(ref_net, ref_opt), _flat_state(net, opt))


def test_snapshot_reuses_buffers_and_round_trips_through_state_dict():
    net, opt = _net_and_adam()
    _step(net, opt, 0)
    snap = TrainingSnapshot(net, opt)
    snap.capture()
    ptrs = [b.data_ptr() for b in snap._saved_tensors]
    _step(net, opt, 1)
    snap.capture()
    assert ptrs == [b.data_ptr() for b in snap._saved_tensors]  # copied in place
    saved = _flat_state(net, opt)
    state = snap.state_dict()
    _step(net, opt, 2)
    other = TrainingSnapshot(net, opt)
    other.load_state_dict(state)
    other.restore()
    _assert_equal_states(saved, _flat_state(net, opt))
    with pytest.raises(RuntimeError):
        TrainingSnapshot(net, opt).restore()
    with pytest.raises(RuntimeError):  # a restore consumes its capture
        other.restore()


def test_revert_swaps_storage_instead_of_copying():
    net, opt = _net_and_adam()
    _step(net, opt, 0)
    snap = TrainingSnapshot(net, opt)
    snap.capture()
    saved_ptr = snap._saved_tensors[0].data_ptr()
    _step(net, opt, 1)
    snap.restore()
    assert net[0].weight.data_ptr() == saved_ptr
    ref_net, ref_opt = _net_and_adam()
    _step(ref_net, ref_opt, 0)
    for s in (2, 3):  # repeated capture/step/restore cycles stay exact
        snap.capture()
        _step(net, opt, 100 + s)
        snap.restore()
    _step(net, opt, 5)
    _step(ref_net, ref_opt, 5)
    _assert_equal_states(_flat_state(ref_net, ref_opt), _flat_state(net, opt))


# ----------------------------------------------------------------------------------------------- sampler
def test_validation_size_grows_linearly_from_20_to_50_percent():
    s = DynamicValidationSampler(20, start_fraction=0.2, end_fraction=0.5)
    assert s.size_at(0.0) == 4
    assert s.size_at(0.5) == 7
    assert s.size_at(1.0) == 10
    sizes = [s.size_at(p / 10) for p in range(11)]
    assert sizes == sorted(sizes)
    gen = torch.Generator().manual_seed(0)
    val, train = s.sample(1.0, gen)
    assert len(val) == 10 and sorted(val + train) == list(range(20)) and not set(val) & set(train)


def test_validation_sample_is_seeded_and_changes_every_draw():
    s = DynamicValidationSampler(20)
    a = [s.sample(0.3, g)[0] for g in [torch.Generator().manual_seed(5)] for _ in range(5)]
    b = [s.sample(0.3, g)[0] for g in [torch.Generator().manual_seed(5)] for _ in range(5)]
    assert a == b
    assert len({tuple(v) for v in a}) > 1


def test_iso_diverse_selection_spans_iso_levels():
    isos = [100, 100, 100, 800, 800, 800, 6400, 6400, 6400]  # 9 < 10 pairs -> div ISO
    s = DynamicValidationSampler(9, isos, start_fraction=0.34, end_fraction=0.5)
    assert s.iso_diverse and s.size_at(0.0) == 3
    gen = torch.Generator().manual_seed(1)
    for _ in range(50):
        val, _ = s.sample(0.0, gen)
        assert sorted(isos[i] for i in val) == [100, 800, 6400]
    # uniform sampling misses an ISO level in some draws
    uniform = DynamicValidationSampler(9, None, start_fraction=0.34, end_fraction=0.5)
    misses = sum(sorted(isos[i] for i in uniform.sample(0.0, gen)[0]) != [100, 800, 6400] for _ in range(50))
    assert misses > 0
    assert not DynamicValidationSampler(12, [100] * 6 + [800] * 6).iso_diverse


def test_sampler_rejects_too_small_target():
    with pytest.raises(ValueError, match='at least 2'):
        DynamicValidationSampler(1)
    assert DynamicValidationSampler(2).size_at(1.0) == 1  # always leaves one pair to train on


# ----------------------------------------------------------------------------------------------- schedule, log
def test_stage_schedule():
    s = StageSchedule(2, 4, 3)
    assert [s.stage_at(i) for i in range(1, 11)] == [1, 1, 2, 2, 2, 2, 3, 3, 3, 3]
    assert s.adapt_progress(3) == 0.0 and s.adapt_progress(6) == 1.0
    with pytest.raises(ValueError):
        StageSchedule(-1, 1, 1)


def test_accept_log_counts_heatmap_and_csv(tmp_path):
    log = AcceptLog(['a', 'b'], adapt_iters=10, num_epochs=2)
    for step in range(10):
        log.record('a' if step % 2 == 0 else 'b', accepted=step < 5, adapt_step=step)
    assert log.counts() == {'a': (3, 2), 'b': (2, 3)}
    rates = log.rates()
    assert rates[0, 0] == 1.0 and rates[0, 1] == 0.0
    log.write_csv(str(tmp_path / 'r.csv'))
    log.write_png(str(tmp_path / 'r.png'))
    rows = list(csv.DictReader(open(tmp_path / 'r.csv')))
    assert len(rows) == 4 and rows[0]['source'] == 'a' and rows[0]['accepted'] == '3'
    assert (tmp_path / 'r.png').read_bytes()[:4] == b'\x89PNG'
    other = AcceptLog(['a', 'b'], 10, 2)
    other.load_state_dict(log.state_dict())
    assert other.counts() == log.counts()


def test_restore_weights_only_keeps_optimizer_moments():
    net, opt = _net_and_adam()
    _step(net, opt, 0)
    snap = TrainingSnapshot(net, opt)
    snap.capture()
    before = _flat_state(net, opt)
    _step(net, opt, 1)
    after_step = _flat_state(net, opt)
    snap.restore_weights()
    now = _flat_state(net, opt)
    assert all(torch.equal(a, b) for a, b in zip(before[0], now[0]))
    _assert_equal_states(([], after_step[1]), ([], now[1]))  # moments and step count of the discarded step kept
