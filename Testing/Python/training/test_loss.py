"""The Pancakes loss picks the best (m, k) and sends gradient only through it."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pancakes.training.loss import best_assignment, entropy_ceiling, pancakes_loss, plan, soft_dice_matrix


def test_soft_dice_matrix_matches_hand_computation():
    # One image, two protocols of two labels; protocol 1 label 0 equals the target.
    target = torch.zeros(1, 1, 4, 4)
    target[0, 0, :2] = 1
    probs = torch.zeros(1, 2, 2, 4, 4)
    probs[0, 0, 0] = 0.5
    probs[0, 0, 1] = 0.5
    probs[0, 1, 0, :2] = 1
    probs[0, 1, 1, 2:] = 1
    d = soft_dice_matrix(probs, target)
    assert d.shape == (1, 2, 2)
    assert torch.isclose(d[0, 1, 0], torch.tensor(1.0), atol=1e-5)
    assert torch.isclose(d[0, 1, 1], torch.tensor(0.0), atol=1e-5)
    # 0.5 everywhere: 2*4 / (8 + 8) = 0.5
    assert torch.isclose(d[0, 0, 0], torch.tensor(0.5), atol=1e-5)


def test_per_target_min_picks_best_protocol_and_label():
    d = torch.tensor([[[0.1, 0.2], [0.9, 0.3], [0.4, 0.5]]])  # T=1, P=3, K=2
    choice = plan(d, alpha=1.0)
    assert choice["per_target"] == [(1, 0)]
    assert 1 in choice["winners"]


def test_one_protocol_term_prefers_a_protocol_holding_all_targets():
    # Target 0 is best in protocol 0, target 1 best in protocol 1, but protocol 2
    # holds both reasonably: the one-protocol term must choose protocol 2.
    d = np.array([[[0.9, 0.0], [0.0, 0.0], [0.8, 0.0]],
                  [[0.0, 0.0], [0.0, 0.9], [0.0, 0.8]]])
    m, labels, err = best_assignment(d)
    assert (m, labels) == (2, [0, 1])
    assert np.isclose(err, 0.2)


def test_assignment_is_one_to_one_so_one_label_cannot_serve_every_target():
    # A collapsed protocol: label 0 is the best label for both targets.
    d = np.array([[[0.8, 0.1, 0.0]], [[0.3, 0.2, 0.0]]])
    _, labels, _ = best_assignment(d)
    assert labels == [0, 1]


def _reference_loss(logits, targets, choice, alpha, beta):
    """The same loss, differentiated through every protocol."""
    d = soft_dice_matrix(torch.softmax(logits, 2), targets)
    loss = alpha * torch.stack([1 - d[i, m, k] for i, (m, k) in enumerate(choice["per_target"])]).mean()
    m = choice["m_star"]
    loss = loss + (1 - alpha) * torch.stack([1 - d[i, m, k] for i, k in enumerate(choice["labels"])]).mean()
    cls = torch.full(targets.shape[1:], -100, dtype=torch.long)
    for i, k in enumerate(choice["labels"]):
        cls[targets[i] > 0.5] = k
    return loss + beta * F.cross_entropy(logits[:, m], cls, ignore_index=-100)


def test_gradient_flows_only_through_winners_and_equals_full_computation():
    torch.manual_seed(0)
    logits = torch.randn(3, 6, 5, 16, 16, requires_grad=True)
    lab = torch.randint(0, 3, (3, 16, 16))
    targets = torch.stack([(lab == i).float() for i in range(3)])  # disjoint targets
    loss, info = pancakes_loss(logits, targets, alpha=0.5, beta=0.5)
    loss.backward()
    per_protocol = logits.grad.abs().sum((0, 2, 3, 4))
    for m in range(6):
        assert (per_protocol[m] > 0) == (m in info["winners"])
    full = logits.detach().clone().requires_grad_(True)
    with torch.no_grad():
        choice = plan(soft_dice_matrix(torch.softmax(full, 2), targets), 0.5)
    ref = _reference_loss(full, targets, choice, 0.5, 0.5)
    ref.backward()
    assert torch.isclose(loss, ref)
    assert torch.allclose(logits.grad, full.grad, atol=1e-7)


def test_relaxed_protocols_get_a_small_gradient_too():
    torch.manual_seed(0)
    logits = torch.randn(2, 8, 4, 16, 16, requires_grad=True)
    lab = torch.randint(0, 3, (2, 16, 16))
    targets = torch.stack([(lab == i).float() for i in range(3)])
    loss, info = pancakes_loss(logits, targets, alpha=0.5, beta=0.5, relax=0.1, n_relax=2,
                               generator=torch.Generator().manual_seed(0))
    loss.backward()
    assert len(info["relaxed"]) == 2 and info["m_star"] not in info["relaxed"]
    per_protocol = logits.grad.abs().sum((0, 2, 3, 4))
    for m in range(8):
        assert (per_protocol[m] > 0) == (m in info["winners"] or m in info["relaxed"])


def test_entropy_term_penalises_one_label_over_everything():
    targets = torch.zeros(1, 1, 8, 8)
    targets[0, 0, :4] = 1
    collapsed = torch.zeros(1, 1, 4, 8, 8)
    collapsed[:, :, 0] = 10.0  # label 0 everywhere
    balanced = torch.zeros(1, 1, 4, 8, 8)
    for k in range(4):
        balanced[0, 0, k, 2 * k : 2 * k + 2] = 10.0  # four bands
    base_c, _ = pancakes_loss(collapsed, targets, alpha=0.5, beta=0.0, gamma=0.0)
    ent_c, _ = pancakes_loss(collapsed, targets, alpha=0.5, beta=0.0, gamma=1.0)
    base_b, _ = pancakes_loss(balanced, targets, alpha=0.5, beta=0.0, gamma=0.0)
    ent_b, _ = pancakes_loss(balanced, targets, alpha=0.5, beta=0.0, gamma=1.0)
    assert ent_c - base_c > 0.9  # one label: entropy ~0, penalty ~1
    assert ent_b - base_b < 0.05  # four equal labels: entropy ~log K, penalty ~0


def test_entropy_capped_at_the_targets_leaves_a_two_label_answer_unpunished():
    """Two targets (object, background), K = 8: a protocol that answers with exactly two
    labels is the right coarse answer. The full entropy reward punishes it for not using
    eight labels; capped at the targets' entropy it costs nothing, while one label over
    everything is still punished."""
    targets = torch.zeros(2, 1, 8, 8)
    targets[0, 0, :4] = 1
    targets[1, 0, 4:] = 1
    two = torch.zeros(1, 1, 8, 8, 8)
    two[0, 0, 0, :4] = 10.0
    two[0, 0, 1, 4:] = 10.0
    one = torch.zeros(1, 1, 8, 8, 8)
    one[:, :, 0] = 10.0
    base_two, _ = pancakes_loss(two, targets, alpha=0.5, beta=0.0, gamma=0.0)
    full_two, _ = pancakes_loss(two, targets, alpha=0.5, beta=0.0, gamma=1.0)
    capped_two, _ = pancakes_loss(two, targets, alpha=0.5, beta=0.0, gamma=1.0, entropy_to_targets=True)
    base_one, _ = pancakes_loss(one, targets, alpha=0.5, beta=0.0, gamma=0.0)
    capped_one, _ = pancakes_loss(one, targets, alpha=0.5, beta=0.0, gamma=1.0, entropy_to_targets=True)
    assert full_two - base_two > 0.5  # log 2 / log 8 = 1/3 of the full entropy: penalty ~2/3
    assert capped_two - base_two < 0.01
    assert capped_one - base_one > 0.3  # collapse still costs the whole ceiling (1/3)


def test_entropy_ceiling_is_the_entropy_of_the_targets():
    assert entropy_ceiling(2, 8) == pytest.approx(1 / 3)
    assert entropy_ceiling(16, 8) == pytest.approx(1.0)  # more targets than labels: all K
    assert entropy_ceiling(1, 20) == pytest.approx(math.log(2) / math.log(20))


def test_only_the_allowed_protocols_can_win_or_get_gradient():
    """Granularity zones: protocol 0 fits the target best, but only 2 and 3 may win."""
    targets = torch.zeros(2, 1, 8, 8)
    targets[0, 0, :4] = 1
    targets[1, 0, 4:] = 1
    logits = torch.zeros(1, 4, 3, 8, 8)
    logits[0, 0, 0, :4] = 10.0
    logits[0, 0, 1, 4:] = 10.0  # protocol 0 is perfect
    logits = logits.requires_grad_()
    free, info_free = pancakes_loss(logits, targets, alpha=0.5, beta=0.5)
    assert info_free["m_star"] == 0
    loss, info = pancakes_loss(logits, targets, alpha=0.5, beta=0.5, relax=0.1, n_relax=2, protocols=[2, 3],
                               generator=torch.Generator().manual_seed(0))
    assert info["m_star"] in (2, 3) and set(info["winners"]) <= {2, 3} and set(info["relaxed"]) <= {2, 3}
    loss.backward()
    per_protocol = logits.grad.abs().sum((0, 2, 3, 4))
    assert per_protocol[0] == 0 and per_protocol[1] == 0
    assert float(loss.detach()) > float(free.detach())
