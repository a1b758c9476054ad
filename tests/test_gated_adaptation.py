"""GatedAdaptation alone: a two-layer net, AdamW and a fake scorer, no BasicSR.

Each test replays by hand what the chunk should leave behind (the joint steps, the chunk start, or the chunk
start followed by the target-only steps) and compares weights and optimizer state bit for bit."""
import copy

import pytest
import torch

from basicsr_adl.adl.config import ADLConfig, GateConfig, ValidationConfig, field_names
from basicsr_adl.adl.gate import GATE_CRITERIA, LinearPairedTargetGate, build_gate
from basicsr_adl.adl.gated_adaptation import (ChunkRecord, GatedAdaptation, GateStateMismatch, LinearScore,
                                              guarded_step, single_process)
from basicsr_adl.adl.validation_sampler import DynamicValidationSampler
from basicsr_adl.options_schema import ADL_SECTION, OptionError, Section


def make_net(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))


def batches(count, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(6, 3, generator=gen), torch.randn(6, 3, generator=gen)) for _ in range(count)]


def part_losses(net, x, y, target_from):
    """[target part, source part] of a mean loss, weighted by size; and the target part's gradient factor."""
    n = x.shape[0]

    def part(rows):
        return lambda: torch.nn.functional.mse_loss(net(x[rows]), y[rows]) * ((rows.stop - rows.start) / n)
    return [part(slice(target_from, n)), part(slice(0, target_from))], n / (n - target_from)


def state_of(net, opt):
    params = [p.detach().clone() for p in net.parameters()]
    moments = {k: {kk: (vv.clone() if torch.is_tensor(vv) else vv) for kk, vv in v.items()}
               for k, v in opt.state_dict()['state'].items()}
    return params, moments


def same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a[0], b[0])) and a[1].keys() == b[1].keys() and all(
        torch.equal(torch.as_tensor(a[1][k][kk]), torch.as_tensor(b[1][k][kk])) for k in a[1] for kk in a[1][k])


class FakeScorer:
    """Scores the live net by a fixed function of its weights (any deterministic map works), recording calls."""

    def __init__(self, net):
        self.net, self.calls = net, []

    def __call__(self, indices):
        self.calls.append(list(indices))
        return float(sum(p.detach().sum() for p in self.net.parameters()))

    def gradient(self, indices):
        """The score is linear in the weights: its gradient is all ones, so a first-order model is exact."""
        self.calls.append(('grad', list(indices)))
        return self(indices), [torch.ones_like(p) for p in self.net.parameters()]


def setup(criterion='paired', every=1, on_reject=None, revert_optimizer=True, dynamic=True, seed=0):
    net = make_net(seed)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2)
    on_reject = on_reject or ('target_step' if GATE_CRITERIA[criterion].against_target_step else 'revert')
    sampler = DynamicValidationSampler(6, [100, 100, 400, 400, 1600, 1600], 0.2, 0.5, diverse_below=0)
    core = GatedAdaptation(net, opt, build_gate(criterion, 3, 0.0), sampler, ['srcA', 'srcB'],
                           torch.Generator().manual_seed(7), every, on_reject, revert_optimizer, dynamic)
    return net, opt, core


def run_chunk(core, net, data, accept, scorer=None, target_from=4):
    """Begin a chunk, take len(data) steps, finish with the gate forced to ``accept``."""
    scorer = scorer or FakeScorer(net)
    core.begin_chunk(0.5, scorer, scorer.gradient)
    for x, y in data:
        if core.replays_target:
            losses, scale = part_losses(net, x, y, target_from)
            core.step(losses, target_grad_scale=scale)
        else:
            core.step([lambda x=x, y=y: torch.nn.functional.mse_loss(net(x), y)])
    core.gate.decide = lambda candidate, previous=None: accept
    return core.finish(scorer, single_process), scorer


def replay_joint(net0, opt0, data, split=False):
    """From the chunk start: the joint steps (as two backward passes, target part first, when ``split``)."""
    net = copy.deepcopy(net0)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2)
    opt.load_state_dict(copy.deepcopy(opt0.state_dict()))
    for x, y in data:
        opt.zero_grad()
        for loss in (part_losses(net, x, y, 4)[0] if split else [lambda: torch.nn.functional.mse_loss(net(x), y)]):
            loss().backward()
        opt.step()
    return net, opt


def replay_target_only(net0, opt0, data, target_from=4, along_joint=True):
    """From the chunk start: one AdamW step per taken step with the target gradient taken along the joint path."""
    joint = copy.deepcopy(net0)
    joint_opt = torch.optim.AdamW(joint.parameters(), lr=1e-2)
    joint_opt.load_state_dict(copy.deepcopy(opt0.state_dict()))
    grads = []
    for x, y in data:
        grads.append(torch.autograd.grad(torch.nn.functional.mse_loss(joint(x[target_from:]), y[target_from:]),
                                         list(joint.parameters())))
        joint_opt.zero_grad()
        torch.nn.functional.mse_loss(joint(x), y).backward()
        joint_opt.step()
    net = copy.deepcopy(net0)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2)
    opt.load_state_dict(copy.deepcopy(opt0.state_dict()))
    for g in grads:
        for q, gq in zip(net.parameters(), g):
            q.grad = gq.clone()
        opt.step()
    return net, opt


def warm(net, opt):
    """One plain step first, so AdamW holds moments that a revert must restore."""
    x, y = batches(1, seed=9)[0]
    guarded_step(opt, [lambda: torch.nn.functional.mse_loss(net(x), y)])


@pytest.mark.parametrize('criterion', sorted(GATE_CRITERIA))
@pytest.mark.parametrize('accept', [False, True])
def test_each_criterion_keeps_the_chunk_or_reverts_it_exactly(criterion, accept):
    net, opt, core = setup(criterion)
    warm(net, opt)
    start_net, start_opt = copy.deepcopy(net), copy.deepcopy(opt)
    data = batches(1)
    decision, scorer = run_chunk(core, net, data, accept)
    assert decision.accepted is accept and decision.domain in ('srcA', 'srcB')
    if GATE_CRITERIA[criterion].against_target_step:  # keeps the joint or the target-only step, never the start
        ref_net, ref_opt = replay_joint(start_net, start_opt, data, split=True) if accept else \
            replay_target_only(start_net, start_opt, data)
        assert decision.moved and decision.baseline is not None and decision.baseline != decision.candidate
        exact = [c for c in scorer.calls if c[0] != 'grad']
        if GATE_CRITERIA[criterion].linearised:  # one gradient on V' (its score inside), no exact scoring after
            assert scorer.calls == [('grad', exact[0])] + exact and len(exact) == 1
        else:
            assert len(exact) == 2 and exact[0] == exact[1]  # both scored on the same V'
    elif accept:
        ref_net, ref_opt = replay_joint(start_net, start_opt, data)
        assert decision.moved
    else:
        ref_net, ref_opt = start_net, start_opt
        assert not decision.moved
    live = state_of(net, opt)
    expected = state_of(ref_net, ref_opt)
    if GATE_CRITERIA[criterion].against_target_step and not accept:  # replayed gradients: equal up to rounding
        assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(live[0], expected[0]))
    else:
        assert same(live, expected)
    needs_previous = GATE_CRITERIA[criterion].needs_previous
    assert (decision.baseline is not None) == (needs_previous or criterion == 'paper'
                                               or GATE_CRITERIA[criterion].against_target_step)
    assert not core.in_chunk


@pytest.mark.parametrize('accept', [False, True])
def test_a_chunk_of_three_steps_shares_one_domain_and_v_and_one_decision(accept):
    net, opt, core = setup('paired', every=3)
    warm(net, opt)
    start = state_of(net, opt)
    start_net, start_opt = copy.deepcopy(net), copy.deepcopy(opt)
    scorer = FakeScorer(net)
    data = batches(3)
    chunk = core.begin_chunk(0.5, scorer)
    domain, val = chunk.domain, list(chunk.val)
    assert set(val).isdisjoint(chunk.train) and sorted(val + chunk.train) == list(range(6))
    for i, (x, y) in enumerate(data):
        assert core.begin_chunk(0.9, scorer) is chunk  # mid-chunk: no new draws
        core.step([lambda x=x, y=y: torch.nn.functional.mse_loss(net(x), y)])
        assert core.chunk_full() == (i == 2)
    core.gate.decide = lambda candidate, previous=None: accept
    decision = core.finish(scorer, single_process)
    assert decision.domain == domain and scorer.calls == [val, val]  # baseline before, candidate after
    assert same(state_of(net, opt), state_of(*replay_joint(start_net, start_opt, data)) if accept else start)


def test_on_reject_target_step_replays_each_taken_steps_target_gradient_with_its_learning_rate():
    net, opt, core = setup('paper', every=2, on_reject='target_step')
    warm(net, opt)
    start_net, start_opt = copy.deepcopy(net), copy.deepcopy(opt)
    data = batches(2)
    core.begin_chunk(0.5, FakeScorer(net))
    for x, y in data:
        losses, scale = part_losses(net, x, y, 4)
        core.step(losses, target_grad_scale=scale)
    lrs = [s.lrs for s in core.chunk.target_steps]
    opt.param_groups[0]['lr'] = 5e-3  # the scheduler moved on: the replay uses each step's own rate
    core.gate.decide = lambda candidate, previous=None: False
    decision = core.finish(FakeScorer(net))
    assert lrs == [[1e-2], [1e-2]] and opt.param_groups[0]['lr'] == 5e-3 and decision.moved
    ref_net, _ = replay_target_only(start_net, start_opt, data)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(net.parameters(), ref_net.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(net.parameters(), start_net.parameters()))


def test_revert_optimizer_false_restores_weights_and_keeps_the_moments():
    net, opt, core = setup('paired', revert_optimizer=False)
    warm(net, opt)
    start = state_of(net, opt)
    run_chunk(core, net, batches(1), accept=False)
    live = state_of(net, opt)
    assert all(torch.equal(a, b) for a, b in zip(live[0], start[0]))
    assert not same(live, start)  # AdamW's moments and step count are the discarded step's


def test_a_non_finite_loss_is_skipped_and_not_replayed():
    net, opt, core = setup('paired_target')
    warm(net, opt)
    before = state_of(net, opt)
    core.begin_chunk(0.5, FakeScorer(net))
    x, y = batches(1)[0]
    losses, scale = part_losses(net, x, y, 4)
    result = core.step([losses[0], lambda: losses[1]() * float('nan')], target_grad_scale=scale)
    assert not result.taken and core.chunk.pos == 1 and core.chunk.target_steps == []
    assert same(state_of(net, opt), before)
    votes = []
    result = core.step(part_losses(net, x, y, 4)[0], all_finite=lambda ok: votes.append(ok) or False)
    assert votes == [True] and not result.taken  # another replica's NaN skips the step here too


def test_state_dict_round_trip_mid_chunk_resumes_to_the_same_decision_and_weights():
    """Checkpoint after the first of two steps; a fresh core (other weights) loaded from it finishes the chunk
    exactly as the uninterrupted one."""
    data = batches(2)

    def chunk_of_two(core, net, interrupt):
        scorer = FakeScorer(net)
        core.begin_chunk(0.5, scorer)
        losses, scale = part_losses(net, *data[0], 4)
        core.step(losses, target_grad_scale=scale)
        if interrupt:
            saved = copy.deepcopy({'core': core.state_dict(), 'net': net.state_dict(),
                                   'opt': core.optimizer.state_dict()})
            net, opt, core = setup('paired_target', every=2, seed=5)
            net.load_state_dict(saved['net'])
            opt.load_state_dict(saved['opt'])
            core.load_state_dict(saved['core'])
            assert core.in_chunk and len(core.chunk.target_steps) == 1
        losses, scale = part_losses(net, *data[1], 4)
        core.step(losses, target_grad_scale=scale)
        decision = core.finish(FakeScorer(net))
        return decision, state_of(net, core.optimizer), core.generator.get_state()

    results = []
    for interrupt in (False, True):
        net, opt, core = setup('paired_target', every=2)
        warm(net, opt)
        results.append(chunk_of_two(core, net, interrupt))
    (d0, s0, g0), (d1, s1, g1) = results
    assert d0 == d1 and same(s0, s1) and torch.equal(g0, g1)


def test_chunk_record_state_dict_keeps_the_saved_layout():
    record = ChunkRecord(2, 'srcA', [1], [0, 2], 31.5)
    state = record.state_dict()
    assert state == {'pos': 2, 'domain': 'srcA', 'val': [1], 'train': [0, 2], 'prev': 31.5, 'target_steps': []}
    assert ChunkRecord.from_state_dict(state) == record and ChunkRecord().state_dict() == {'pos': 0}


def test_fixed_validation_draws_v_once_and_gate_state_mismatch_is_named():
    net, opt, core = setup('paired', dynamic=False)
    vals = [run_chunk(core, net, batches(1, seed=s), accept=True)[1].calls[0] for s in range(3)]
    assert vals[0] == vals[1] == vals[2] and core.fixed_val[0] == vals[0]
    state = core.state_dict()
    _, _, paper = setup('paper')
    with pytest.raises(GateStateMismatch, match="'paper' gate"):
        paper.load_state_dict(state)


def test_invalid_settings_raise():
    net, opt, _ = setup()
    with pytest.raises(ValueError, match='every'):
        GatedAdaptation(net, opt, build_gate('paired'), None, ['a'], torch.Generator(), every=0)
    with pytest.raises(ValueError, match='on_reject'):
        GatedAdaptation(net, opt, build_gate('paired'), None, ['a'], torch.Generator(), on_reject='undo')
    core = GatedAdaptation(net, opt, build_gate('paired'), None, ['a'], torch.Generator())
    with pytest.raises(RuntimeError, match='sampler'):
        core.begin_chunk(0.0, FakeScorer(net))


def test_adl_config_fields_are_the_schema_keys_and_carry_its_defaults():
    assert field_names(ADLConfig) == tuple(ADL_SECTION.fields)
    assert isinstance(ADL_SECTION.fields['gate'], Section) and isinstance(ADL_SECTION.fields['validation'], Section)
    assert field_names(GateConfig) == tuple(ADL_SECTION.fields['gate'].fields)
    assert field_names(ValidationConfig) == tuple(ADL_SECTION.fields['validation'].fields)
    cfg = ADLConfig.defaults({'datasets': {'train': {'batch_size_per_gpu': 6}}})
    assert cfg.gate.criterion == 'paired_target' and cfg.gate.on_reject == 'target_step' and cfg.target_batch == 6
    assert cfg.stage_lengths(100) == (10, 80, 10) and not cfg.explicit_stages
    opt = {'is_train': True, 'train': {'total_iter': 10}, 'datasets': {'train': {'type': 'MultiDomainDataset',
                                                                                 'batch_size_per_gpu': 2}},
           'adl': {'gate': {'criterion': 'paper'}, 'pretrain_iters': 1, 'adapt_iters': 8, 'finetune_iters': 1}}
    cfg = ADLConfig.from_options(opt)
    assert cfg.gate.on_reject == 'revert' and cfg.stage_lengths(10) == (1, 8, 1) and cfg.explicit_stages
    with pytest.raises(OptionError, match="adl.gate.every"):
        ADLConfig.from_options(dict(opt, adl={'gate': {'every': 0}}))


def test_linear_gate_refreshes_every_k_chunks_checks_exactly_and_resumes():
    """paired_target_linear: one V' gradient per ``refresh_every`` chunks; every ``check_every``-th decision is
    also scored exactly (a linear scorer: the prediction is exact, so all agree); the score model, its age and
    the agreement counts survive a state round trip (the resumed run ends with the same weights)."""
    data = batches(6, seed=3)

    def run(interrupt_after=None):
        net, opt, core = setup('paired_target_linear')
        core.gate = LinearPairedTargetGate(0.0, refresh_every=3, check_every=2)
        warm(net, opt)
        scorer = FakeScorer(net)
        decisions = []
        for i, (x, y) in enumerate(data):
            if i == interrupt_after:
                saved = copy.deepcopy({'core': core.state_dict(), 'net': net.state_dict(), 'opt': opt.state_dict()})
                net, opt, core = setup('paired_target_linear', seed=4)
                core.gate = LinearPairedTargetGate(0.0, refresh_every=3, check_every=2)
                net.load_state_dict(saved['net'])
                opt.load_state_dict(saved['opt'])
                core.load_state_dict(saved['core'])
                scorer = FakeScorer(net)
            core.begin_chunk(0.5, scorer, scorer.gradient)
            losses, scale = part_losses(net, x, y, 4)
            core.step(losses, target_grad_scale=scale)
            decisions.append(core.finish(scorer))
        return decisions, scorer, core, state_of(net, opt)

    decisions, scorer, core, final = run()
    assert sum(1 for c in scorer.calls if c[0] == 'grad') == 2  # chunks 1 and 4
    assert [d.exact_agrees for d in decisions] == [None, True] * 3 and core.agreement == [3, 3]
    resumed, _, core2, final2 = run(interrupt_after=4)
    assert resumed == decisions and core2.agreement == [3, 3] and same(final, final2)


def test_linear_score_predicts_a_smooth_score_to_first_order():
    """On a real (non-linear) PSNR, the first-order prediction of a small step's score is close to the truth."""
    net = make_net()
    x, y = batches(1, seed=5)[0]

    def psnr():
        return -10 * torch.log10(torch.nn.functional.mse_loss(net(x), y))

    value = psnr()
    params = list(net.parameters())
    model = LinearScore(float(value.detach()), torch.autograd.grad(value, params), params)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1e-3 * torch.randn_like(p))
        truth = float(psnr())
    assert abs(model.predict(list(net.parameters())) - truth) < 0.02 * abs(truth - model.value) + 1e-6


def test_snapshot_exchange_swaps_twice_to_identity_and_refuses_state_made_after_the_capture():
    from basicsr_adl.adl.snapshot import TrainingSnapshot
    net = make_net()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2)
    snap = TrainingSnapshot(net, opt)
    snap.capture()
    warm(net, opt)  # AdamW's first step creates its state after the capture: nothing to pair it with
    before = state_of(net, opt)
    assert not snap.exchange() and same(state_of(net, opt), before)
    snap.capture()
    start = state_of(net, opt)
    warm(net, opt)
    moved = state_of(net, opt)
    assert snap.exchange() and same(state_of(net, opt), start)  # the captured state is live
    assert snap.exchange() and same(state_of(net, opt), moved)  # and back, bit for bit


def test_linear_gate_keeps_its_v_split_until_the_refresh_and_never_trains_on_it():
    net, opt, core = setup('paired_target_linear')
    core.gate = LinearPairedTargetGate(0.0, refresh_every=3)
    scorer = FakeScorer(net)
    splits = []
    for x, y in batches(6, seed=4):
        chunk = core.begin_chunk(0.5, scorer, scorer.gradient)
        splits.append((tuple(chunk.val), tuple(chunk.train)))
        assert set(chunk.val).isdisjoint(chunk.train) and set(core.linear.val) == set(chunk.val)
        losses, scale = part_losses(net, x, y, 4)
        core.step(losses, target_grad_scale=scale)
        core.finish(scorer)
    assert splits[0] == splits[1] == splits[2] and splits[3] == splits[4] == splits[5]
