"""Hard pair mining on a hand-built 4x4 similarity matrix."""

import pytest
import torch

from rescom.mining import mine_hard_pairs


def test_mining_hand_built_matrix():
    sim = torch.tensor([
        [0.9, 0.1, 0.5, 0.7],
        [0.2, 0.8, 0.6, 0.3],
        [0.4, 0.3, 0.9, 0.1],
        [0.0, 0.5, 0.2, 0.6],
    ])
    query_labels = torch.tensor([0, 1, 0, 1])
    key_labels = torch.tensor([0, 0, 1, 1])
    pos, neg = mine_hard_pairs(sim, query_labels, key_labels, num_pos=1, num_neg=1)
    # query 0 (class 0): positives keys 0 (.9), 1 (.1) -> least similar key 1; negatives 2 (.5), 3 (.7) -> key 3
    assert pos.tolist() == [[1], [3], [1], [2]]
    assert neg.tolist() == [[3], [1], [2], [1]]
    pos2, neg2 = mine_hard_pairs(sim, query_labels, key_labels, num_pos=2, num_neg=2)
    assert pos2.tolist()[0] == [1, 0] and neg2.tolist()[0] == [3, 2]


def test_mining_errors_name_the_limit():
    sim = torch.zeros(2, 4)
    with pytest.raises(ValueError, match="Q_p <= Q"):
        mine_hard_pairs(sim, torch.tensor([0, 1]), torch.tensor([0, 0, 1, 1]), 3, 1)
    with pytest.raises(ValueError, match=r"Q_n <= \(K-1\)Q"):
        mine_hard_pairs(sim, torch.tensor([0, 1]), torch.tensor([0, 0, 1, 1]), 1, 3)
    with pytest.raises(ValueError, match="labels"):
        mine_hard_pairs(sim, torch.tensor([0]), torch.tensor([0, 0, 1, 1]), 1, 1)
