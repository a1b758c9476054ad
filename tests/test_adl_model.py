"""ADLModel in-process: exact revert inside the model, V' kept out of training, NaN skip, one-line option errors."""
import copy
import os
import shutil
import sys

import pytest
import torch
import yaml

import basicsr_adl.plugin  # noqa: F401
from basicsr.models import build_model
from basicsr.utils import make_exp_dirs
from basicsr.utils.options import parse_options

from basicsr_adl.adl.gate import PaperQueueGate
from basicsr_adl.compat.options_check import OptionError
from basicsr_adl.cli import main as cli_main
from adl_testdata import make_data, make_options


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    return make_data(str(tmp_path_factory.mktemp('adl_model_data')))


def build(tmp_path, opt_path, monkeypatch):
    monkeypatch.setattr(sys, 'argv', ['train.py', '-opt', opt_path])
    opt, _ = parse_options(str(tmp_path), is_train=True)
    opt['root_path'] = str(tmp_path)
    make_exp_dirs(opt)
    return build_model(opt)


def state_of(model):
    net = model.get_bare_model(model.net_g)
    params = [p.detach().clone() for p in net.parameters()]
    opt_state = {k: {kk: vv.clone() for kk, vv in v.items()} for k, v in model.optimizer_g.state_dict()['state'].items()}
    return params, opt_state


def same_state(a, b):
    return all(torch.equal(x, y) for x, y in zip(a[0], b[0])) and a[1].keys() == b[1].keys() and all(
        torch.equal(a[1][k][kk], b[1][k][kk]) for k in a[1] for kk in a[1][k])


def test_rejected_stage2_step_reverts_weights_and_optimizer_exactly(tmp_path, data, monkeypatch):
    opt = make_options(str(tmp_path), data, name='revert', stages=(2, 4, 1), total_iter=7,
                       adl={'gate': {'criterion': 'paper'}})  # the paper's revert: nothing of the step is kept
    model = build(tmp_path, opt, monkeypatch)
    for it in (1, 2):
        model.optimize_parameters(it)
    model.adaptation.gate = PaperQueueGate(3)
    model.adaptation.gate.start(1000.0)  # nothing can beat this: every step is rejected
    before = state_of(model)
    model.optimize_parameters(3)
    assert same_state(before, state_of(model))
    assert sum(r for _, r in model.accept_log.counts().values()) == 1
    model.adaptation.gate = PaperQueueGate(3)
    model.adaptation.gate.start(-1000.0)  # everything is accepted
    model.optimize_parameters(4)
    assert not same_state(before, state_of(model))
    assert sum(a for a, _ in model.accept_log.counts().values()) == 1


def one_stage2_step_against_replay(model, monkeypatch, keep_joint: bool, reduction: str = 'mean'):
    """Take one stage-2 step (iteration 2) and replay the step that should survive on a fresh copy from the
    pre-step state (one AdamW step on the joint batch, or on its target patches alone); returns
    (live net, replayed net, drawn parts, weights before the step)."""
    drawn = []
    original = model._draw_batch
    monkeypatch.setattr(model, '_draw_batch', lambda parts: drawn.append((parts, original(parts))) or drawn[-1][1])
    net = model.get_bare_model(model.net_g)
    before_net = {k: v.clone() for k, v in net.state_dict().items()}
    before_opt = copy.deepcopy(model.optimizer_g.state_dict())  # state_dict() holds live tensors
    model.optimize_parameters(2)
    (parts, batch), = drawn
    ref = copy.deepcopy(net)
    ref.load_state_dict(before_net)
    ref_opt = torch.optim.AdamW(ref.parameters(), lr=1e-3)
    ref_opt.load_state_dict(before_opt)
    used = batch if keep_joint else {k: v[len(parts[0][1]):] for k, v in batch.items()}
    torch.nn.functional.l1_loss(ref(used['lq'], **{k: used[k] for k in model.net_meta}), used['gt'],
                                reduction=reduction).backward()
    ref_opt.step()
    return net, ref, parts, before_net


def test_on_reject_target_step_keeps_only_the_target_half_of_a_rejected_step(tmp_path, data, monkeypatch):
    """adl.gate.on_reject: target_step - a rejected step ends as: exact revert, then one optimizer step on the
    target patches' own mean loss (checked against a manual replay); an accepted step is the joint step."""
    opt = make_options(str(tmp_path), data, name='target_step', stages=(1, 4, 1), total_iter=6,
                       adl={'gate': {'criterion': 'paper', 'on_reject': 'target_step'}, 'target_batch': 2})
    model = build(tmp_path, opt, monkeypatch)
    model.optimize_parameters(1)
    model.adaptation.gate = PaperQueueGate(3)
    model.adaptation.gate.start(1000.0)  # every step is rejected
    net, ref, _, before_net = one_stage2_step_against_replay(model, monkeypatch, keep_joint=False)
    for a, b in zip(net.parameters(), ref.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    assert not all(torch.equal(a, before_net[k]) for k, a in net.state_dict().items())
    with pytest.raises(OptionError, match='target_batch'):  # nothing to replay without target patches
        build(tmp_path, make_options(str(tmp_path), data, name='bad_ts', stages=(1, 4, 1), total_iter=6,
                                     adl={'gate': {'on_reject': 'target_step'}, 'target_batch': 0}), monkeypatch)


@pytest.mark.parametrize('accept', [False, True])
def test_chunked_paired_target_replays_each_steps_target_gradient(tmp_path, data, monkeypatch, accept):
    """paired_target with gate.every 2: a rejected chunk ends as the exact revert followed by two AdamW steps
    with the target gradients recorded along the joint path; an accepted chunk keeps the two joint steps."""
    opt = make_options(str(tmp_path), data, name=f'ptchunk{accept}', stages=(1, 4, 1), total_iter=6,
                       adl={'gate': {'criterion': 'paired_target', 'every': 2}, 'target_batch': 2})
    model = build(tmp_path, opt, monkeypatch)
    model.optimize_parameters(1)
    monkeypatch.setattr(model.adaptation.gate, 'decide', lambda cand, prev: accept)
    drawn = []
    original = model._draw_batch
    monkeypatch.setattr(model, '_draw_batch', lambda parts: drawn.append((parts, original(parts))) or drawn[-1][1])
    net = model.get_bare_model(model.net_g)
    before_net = {k: v.clone() for k, v in net.state_dict().items()}
    before_opt = copy.deepcopy(model.optimizer_g.state_dict())
    model.optimize_parameters(2)
    assert model.adaptation.chunk.pos == 1 and sum(n for n in model.accept_log.counts().values() for n in n) == 0
    model.optimize_parameters(3)
    assert not model.adaptation.in_chunk

    def fresh():
        ref = copy.deepcopy(net)
        ref.load_state_dict(before_net)
        ref_opt = torch.optim.AdamW(ref.parameters(), lr=1e-3)
        ref_opt.load_state_dict(copy.deepcopy(before_opt))  # load_state_dict keeps the given tensors
        return ref, ref_opt

    def loss(ref, b):
        return torch.nn.functional.l1_loss(ref(b['lq'], **{k: b[k] for k in model.net_meta}), b['gt'])

    joint, joint_opt = fresh()
    target_grads = []
    for parts, batch in drawn:
        n_source = len(parts[0][1])
        target = {k: v[n_source:] for k, v in batch.items()}
        target_grads.append(torch.autograd.grad(loss(joint, target), list(joint.parameters())))
        joint_opt.zero_grad()
        loss(joint, batch).backward()
        joint_opt.step()
    replay, replay_opt = fresh()
    for grads in target_grads:
        for q, g in zip(replay.parameters(), grads):
            q.grad = g
        replay_opt.step()
    expected = joint if accept else replay
    for a, b in zip(net.parameters(), expected.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    assert sum(a for a, _ in model.accept_log.counts().values()) == int(accept)


@pytest.mark.parametrize('accept,reduction', [(False, 'mean'), (True, 'mean'), (False, 'sum'), (True, 'sum')])
def test_paired_target_gate_keeps_the_joint_or_the_target_only_step(tmp_path, data, monkeypatch, accept, reduction):
    """paired_target: the joint step is compared with the target-only step on the same V'; the loser is
    discarded exactly (weights and AdamW state equal a manual replay of the winner from the pre-step state),
    for a mean and a summed pixel loss."""
    opt = make_options(str(tmp_path), data, name=f'ptarget{accept}{reduction}', stages=(1, 4, 1), total_iter=6,
                       adl={'gate': {'criterion': 'paired_target'}, 'target_batch': 2})
    model = build(tmp_path, opt, monkeypatch)
    model.cri_pix.reduction = reduction
    model.optimize_parameters(1)
    scored = []
    monkeypatch.setattr(model.adaptation.gate, 'decide', lambda cand, prev: scored.append((cand, prev)) or accept)
    net, ref, parts, _ = one_stage2_step_against_replay(model, monkeypatch, keep_joint=accept, reduction=reduction)
    for a, b in zip(net.parameters(), ref.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    assert len(scored) == 1 and scored[0][0] != scored[0][1]  # two different weights were scored
    assert model.accept_log.counts()[parts[0][0]] == ((1, 0) if accept else (0, 1))


def test_gate_options_are_checked_only_where_a_gate_runs(tmp_path, data, monkeypatch):
    """The baselines never gate, so gate settings that ADL rejects are fine for them; ADL names the option."""
    no_target = {'gate': {'criterion': 'paired_target'}, 'target_batch': 0}
    build(tmp_path, make_options(str(tmp_path), data, name='base_ok', adl={'mode': 'target_only', **no_target}),
          monkeypatch)
    with pytest.raises(OptionError, match='target_batch'):
        build(tmp_path, make_options(str(tmp_path), data, name='adl_no_target', adl=no_target), monkeypatch)
    with pytest.raises(OptionError, match='revert_optimizer'):
        build(tmp_path, make_options(str(tmp_path), data, name='adl_moments',
                                     adl={'gate': {'criterion': 'paired_target', 'revert_optimizer': False}}),
              monkeypatch)


def test_validation_subset_is_never_trained_on_in_stage2(tmp_path, data, monkeypatch):
    """Each stage-2 iteration: one source domain, and target patches only from outside that iteration's V'."""
    model = build(tmp_path, make_options(str(tmp_path), data, name='vsplit', stages=(1, 5, 1), total_iter=7),
                  monkeypatch)
    model.optimize_parameters(1)
    seen = []
    original = model.domains.train_item
    monkeypatch.setattr(model.domains, 'train_item', lambda name, i: seen.append((name, i)) or original(name, i))
    gen = torch.Generator()
    for it in range(2, 7):
        seen.clear()
        gen.set_state(model.adaptation.generator.get_state())
        model.optimize_parameters(it)
        domain = model.domains.sources[int(torch.randint(2, (1,), generator=gen))]  # replay the shared draws
        val, train = model.adaptation.sampler.sample(model.schedule.adapt_progress(it), gen)
        target_idx = [i for n, i in seen if n == 'tgt']
        assert {n for n, _ in seen if n != 'tgt'} == {domain}
        assert len(target_idx) == 1 and all(i in train and i not in val for i in target_idx)
        assert len(val) == model.adaptation.sampler.size_at(model.schedule.adapt_progress(it))


def test_nan_loss_skips_the_step(tmp_path, data, monkeypatch):
    opt = make_options(str(tmp_path), data, name='nan', stages=(3, 2, 1), total_iter=6)
    model = build(tmp_path, opt, monkeypatch)
    model.optimize_parameters(1)
    before = state_of(model)
    real = model.cri_pix
    monkeypatch.setattr(model, 'cri_pix', lambda out, gt: real(out, gt) * float('nan'))
    model.optimize_parameters(2)
    assert model.nan_skips == 1 and model.log_dict['adl_nan_skips'] == 1.0
    assert same_state(before, state_of(model))
    monkeypatch.setattr(model, 'cri_pix', real)
    model.optimize_parameters(3)
    assert not same_state(before, state_of(model))


def _cli_error(tmp_path, opt_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        cli_main(is_train=True, argv=['-opt', opt_path])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('basicsr_adl: error:')
    return err[0]


def _edit(path, fn):
    with open(path) as f:
        opt = yaml.safe_load(f)
    fn(opt)
    with open(path, 'w') as f:
        yaml.safe_dump(opt, f, sort_keys=False)
    return path


@pytest.mark.parametrize('case, option', [
    ('unknown_target', "'datasets.train.target'"),
    ('empty_source', "'datasets.train.domains.srcA'"),
    ('target_too_small', "'datasets.train.target_pairs'"),
    ('net_without_metadata', "'adl.use_metadata'"),
    ('unknown_gate', "'adl.gate.criterion'"),
    ('sensor_out_of_range', "'network_g.num_sensors'"),
    ('missing_iso', "'datasets.train.domains.srcB.iso'"),
    ('unknown_domain_type', "'datasets.train.domains.srcA.type'"),
    ('bad_mode', "'adl.mode'"),
])
def test_bad_input_is_one_line_naming_the_option(tmp_path, data, monkeypatch, capsys, case, option):
    path = make_options(str(tmp_path), data, name=f'bad_{case}', total_iter=3, stages=(1, 1, 1))
    train = lambda o: o['datasets']['train']  # noqa: E731
    if case == 'unknown_target':
        _edit(path, lambda o: train(o).update(target='nope'))
    elif case == 'empty_source':
        empty = tmp_path / 'empty'
        (empty / 'lq').mkdir(parents=True)
        (empty / 'gt').mkdir()
        _edit(path, lambda o: train(o)['domains']['srcA'].update(dataroot_lq=str(empty / 'lq'),
                                                                 dataroot_gt=str(empty / 'gt')))
    elif case == 'target_too_small':
        _edit(path, lambda o: train(o).update(target_pairs=1))
    elif case == 'net_without_metadata':
        _edit(path, lambda o: (o.update(network_g={'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 3, 'scale': 1,
                                                   'num_feat': 4, 'num_block': 1, 'num_grow_ch': 4}),
                               o['adl'].update(use_metadata=True)))
    elif case == 'unknown_gate':
        _edit(path, lambda o: o['adl'].update(gate={'criterion': 'best'}))
    elif case == 'sensor_out_of_range':
        _edit(path, lambda o: o['network_g'].update(num_sensors=2))
    elif case == 'missing_iso':
        _edit(path, lambda o: train(o)['domains']['srcB'].pop('iso'))
    elif case == 'unknown_domain_type':
        _edit(path, lambda o: train(o)['domains']['srcA'].update(type='NoSuchDataset'))
    elif case == 'bad_mode':
        _edit(path, lambda o: o['adl'].update(mode='joint'))
    line = _cli_error(tmp_path, path, monkeypatch, capsys)
    assert option in line, line


@pytest.mark.parametrize('adl, expected', [({'mode': 'target_only'}, (100, 100)), ({'mode': 'finetune'}, (100, 1600)),
                                           ({}, (100, 1600)), ({'clamp_iso': False}, None)])
def test_the_net_is_told_the_iso_range_of_the_pairs_its_mode_trains_on(tmp_path, data, monkeypatch, adl, expected):
    model = build(tmp_path, make_options(str(tmp_path), data, adl=adl), monkeypatch)
    held = model.get_bare_model(model.net_g).iso_range
    if expected is None:
        assert held.tolist() == [float('-inf'), float('inf')]  # unset: nothing is clamped
    else:
        assert torch.allclose(held, torch.log2(torch.tensor(expected, dtype=torch.float32) / 100))


def test_linear_gate_runs_in_the_model_and_its_score_gradient_matches_the_score(tmp_path, data, monkeypatch):
    """paired_target_linear end to end in ADLModel: the score gradient's value is score(), a small weight change
    moves score() as the gradient predicts, and checked decisions log their agreement with the exact gate."""
    opt = make_options(str(tmp_path), data, name='linear', stages=(1, 4, 1), total_iter=6,
                       adl={'gate': {'criterion': 'paired_target_linear', 'refresh_every': 2, 'check_every': 1},
                            'target_batch': 2})
    model = build(tmp_path, opt, monkeypatch)
    model.optimize_parameters(1)
    val = model.targets.usable
    value, grads = model.score_gradient(val)
    assert abs(value - model.score(val)) < 1e-6  # the same crops and net, with and without autograd
    net = model.get_bare_model(model.net_g)
    step = [1e-4 * torch.randn_like(p) for p in net.parameters()]
    predicted = sum(float((g.double() * s.double()).sum()) for g, s in zip(grads, step))
    with torch.no_grad():
        for p, s in zip(net.parameters(), step):
            p.add_(s)
    assert abs((model.score(val) - value) - predicted) < 0.1 * abs(predicted) + 1e-6
    with torch.no_grad():
        for p, s in zip(net.parameters(), step):
            p.sub_(s)
    for it in range(2, 6):  # stage 2
        model.optimize_parameters(it)
    assert model.adaptation.agreement[0] == 4 and 0.0 <= model.log_dict['adl_linear_agreement'] <= 1.0
    assert sum(a + r for a, r in model.accept_log.counts().values()) == 4
