"""Queue semantics: per-class FIFO order, overflow within a batch, fixed slot labels, state_dict."""

import pytest
import torch
import torch.nn.functional as F

from rescom.queue import ClassBalancedQueue, FifoQueue, ReversedQueue, reversed_capacities


def _tagged(values):
    """Keys whose first coordinate is a tag, so slot contents can be read back: [B, 2]."""
    v = torch.tensor(values, dtype=torch.float32)
    return torch.stack([v, torch.zeros_like(v)], dim=1)


def test_random_unit_start_and_class_major_labels():
    torch.manual_seed(0)
    q = ClassBalancedQueue(3, 2, 4)
    assert q.keys.shape == (6, 4) and torch.allclose(q.keys.norm(dim=1), torch.ones(6))
    assert q.labels.tolist() == [0, 0, 1, 1, 2, 2]


def test_per_class_fifo_order_across_enqueues():
    q = ClassBalancedQueue(2, 3, 2)
    q.enqueue(_tagged([1, 2]), torch.tensor([0, 0]))
    q.enqueue(_tagged([3, 4]), torch.tensor([0, 1]))
    assert q.keys[:3, 0].tolist() == [1, 2, 3]
    assert q.keys[3, 0].item() == 4
    q.enqueue(_tagged([5, 6]), torch.tensor([0, 0]))  # overwrites the oldest class-0 keys 1 then 2
    assert q.keys[:3, 0].tolist() == [5, 6, 3]
    assert q.labels.tolist() == [0, 0, 0, 1, 1, 1]


def test_overflow_within_one_batch_keeps_last_q_in_order():
    q = ClassBalancedQueue(2, 2, 2)
    q.enqueue(_tagged([10]), torch.tensor([0]))  # pointer of class 0 now at slot 1
    q.enqueue(_tagged([1, 7, 2, 3, 4]), torch.tensor([0, 1, 0, 0, 0]))
    # class 0 receives 1,2,3,4: only 3 and 4 survive, written oldest first from the pointer
    assert sorted(q.keys[:2, 0].tolist()) == [3, 4]
    assert q.keys[1, 0].item() == 3 and q.keys[0, 0].item() == 4
    assert q.keys[2, 0].item() == 7
    q.enqueue(_tagged([5]), torch.tensor([0]))  # next oldest is 3 at slot 1
    assert q.keys[:2, 0].tolist() == [4, 5]


def test_state_dict_round_trip():
    q = ClassBalancedQueue(3, 2, 4)
    q.enqueue(F.normalize(torch.randn(5, 4), dim=1), torch.tensor([0, 1, 1, 2, 2]))
    r = ClassBalancedQueue(3, 2, 4)
    r.load_state_dict(q.state_dict())
    assert torch.equal(r.keys, q.keys) and torch.equal(r.pointers, q.pointers)
    z = F.normalize(torch.randn(3, 4), dim=1)
    q.enqueue(z, torch.tensor([1, 1, 0]))
    r.enqueue(z, torch.tensor([1, 1, 0]))
    assert torch.equal(r.keys, q.keys)


def test_fifo_queue_wraps_and_records_labels():
    q = FifoQueue(4, 2)
    assert q.labels.tolist() == [-1] * 4
    q.enqueue(_tagged([1, 2, 3]), torch.tensor([0, 1, 2]))
    q.enqueue(_tagged([4, 5]), torch.tensor([3, 4]))
    assert q.keys[:, 0].tolist() == [5, 2, 3, 4]
    assert q.labels.tolist() == [4, 1, 2, 3]
    q.enqueue(_tagged([6, 7, 8, 9, 10]), torch.tensor([0, 1, 2, 3, 4]))  # longer than the queue
    assert sorted(q.keys[:, 0].tolist()) == [7, 8, 9, 10]
    assert sorted(q.labels.tolist()) == [1, 2, 3, 4]


def test_reversed_queue_capacities_follow_reversed_distribution():
    caps = reversed_capacities([100, 30, 10], 14)
    assert sum(caps) == 14 and caps[0] < caps[1] < caps[2]
    q = ReversedQueue([100, 30, 10], 14, 3)
    assert q.keys.shape == (14, 3) and q.capacities.tolist() == caps
    assert q.labels.tolist() == [0] * caps[0] + [1] * caps[1] + [2] * caps[2]


@pytest.mark.parametrize("make", [
    lambda: ClassBalancedQueue(0, 2, 4),
    lambda: ClassBalancedQueue(3, 0, 4),
    lambda: FifoQueue(0, 4),
    lambda: ReversedQueue([5, 3, 1], 2, 4),
])
def test_bad_sizes(make):
    with pytest.raises(ValueError):
        make()


def test_enqueue_shape_mismatch():
    with pytest.raises(ValueError, match="enqueue"):
        ClassBalancedQueue(2, 2, 4).enqueue(torch.zeros(3, 5), torch.zeros(3, dtype=torch.long))
