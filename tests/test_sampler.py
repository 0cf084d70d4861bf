"""Cross-modality identity sampler."""

import numpy as np
import pytest

from mvd_edge.core.modality import Modality
from mvd_edge.train.sampler import CrossModalIdentitySampler


def _data(n_ids=10, n_rgb=5, n_ir=3):
    pids, mods = [], []
    for pid in range(n_ids):
        pids += [pid] * (n_rgb + n_ir)
        mods += [Modality.VISIBLE] * n_rgb + [Modality.INFRARED] * n_ir
    return pids, mods


def test_each_batch_has_p_ids_with_k_per_modality():
    pids, mods = _data()
    s = CrossModalIdentitySampler(pids, mods, p_ids=4, k=4, seed=1, batches_per_epoch=6)
    batches = s.batches()
    assert len(batches) == 6 and len(list(iter(s))) == len(s) == 6 * 32
    for b in batches:
        bp = np.array(pids)[b]
        bm = np.array(mods)[b]
        assert len(set(bp)) == 4
        for pid in set(bp):
            assert (bm[bp == pid] == Modality.VISIBLE).sum() == 4
            assert (bm[bp == pid] == Modality.INFRARED).sum() == 4  # only 3 IR images: drawn with replacement


def test_seeded_and_epoch_dependent():
    pids, mods = _data()
    a = CrossModalIdentitySampler(pids, mods, 4, 2, seed=3)
    b = CrossModalIdentitySampler(pids, mods, 4, 2, seed=3)
    assert list(a) == list(b)
    a.set_epoch(1)
    assert list(a) != list(b)
    b.load_state_dict(a.state_dict())
    assert list(a) == list(b)


def test_ranks_get_disjoint_batches_covering_the_epoch():
    pids, mods = _data(n_ids=12)
    full = CrossModalIdentitySampler(pids, mods, 4, 2, seed=0, batches_per_epoch=8).batches()
    r0 = CrossModalIdentitySampler(pids, mods, 4, 2, seed=0, batches_per_epoch=8, rank=0, world_size=2).batches()
    r1 = CrossModalIdentitySampler(pids, mods, 4, 2, seed=0, batches_per_epoch=8, rank=1, world_size=2).batches()
    assert len(r0) == len(r1) == 4
    assert [b.tolist() for b in full] == [b.tolist() for pair in zip(r0, r1) for b in pair]


def test_identities_missing_a_modality_are_left_out():
    pids, mods = _data(n_ids=5)
    pids += [99, 99]
    mods += [Modality.VISIBLE, Modality.VISIBLE]
    with pytest.warns(UserWarning, match="lack one modality"):
        s = CrossModalIdentitySampler(pids, mods, 2, 1)
    assert 99 not in np.array(pids)[list(s)]
    with pytest.raises(ValueError, match="identities have both"):
        CrossModalIdentitySampler(pids[:8], mods[:8], 2, 1)
