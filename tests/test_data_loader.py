"""Dataset, TensorDataset, Subset and DataLoader."""

import numpy as np
import pytest

import scratchnn
from scratchnn.data import DataLoader, Dataset, Subset, TensorDataset


def make(n=10):
    x = np.arange(n * 2, dtype=np.float64).reshape(n, 2)
    y = np.arange(n, dtype=np.int64)
    return TensorDataset(x, y)


def ids(loader):
    """The sample ids (the y column) of every batch of one epoch."""
    return [np.asarray(y).tolist() for _, y in loader]


def flat(batches):
    return [i for batch in batches for i in batch]


def test_batches_are_tensors_with_default_dtypes():
    batches = list(DataLoader(make(), batch_size=4))
    assert len(batches) == 3
    x, y = batches[0]
    assert isinstance(x, scratchnn.Tensor) and isinstance(y, scratchnn.Tensor)
    assert x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_array_equal(np.asarray(x), [[0, 1], [2, 3], [4, 5], [6, 7]])
    assert [np.asarray(b[1]).tolist() for b in batches][-1] == [8, 9]


def test_len_and_drop_last():
    ds = make(10)
    assert len(DataLoader(ds, batch_size=3)) == 4
    assert len(DataLoader(ds, batch_size=3, drop_last=True)) == 3
    assert len(DataLoader(ds, batch_size=5, drop_last=True)) == 2
    assert ids(DataLoader(ds, batch_size=3, drop_last=True)) == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert len(list(DataLoader(ds, batch_size=3))) == 4


def test_shuffle_is_seeded_and_sees_every_sample_once():
    ds = make(23)
    a = ids(DataLoader(ds, batch_size=5, shuffle=True, rng=np.random.default_rng(42)))
    b = ids(DataLoader(ds, batch_size=5, shuffle=True, rng=np.random.default_rng(42)))
    assert a == b
    assert sorted(flat(a)) == list(range(23))
    assert flat(a) != list(range(23))
    # The permutation is exactly the generator's: nothing else is drawn.
    assert flat(a) == np.random.default_rng(42).permutation(23).tolist()


def test_epochs_differ_and_resume_from_rng_state():
    rng = np.random.default_rng(0)
    loader = DataLoader(make(12), batch_size=4, shuffle=True, rng=rng)
    first = ids(loader)
    state = rng.bit_generator.state
    second = ids(loader)
    assert first != second and sorted(flat(second)) == list(range(12))
    resumed_rng = np.random.default_rng(123)
    resumed_rng.bit_generator.state = state
    assert ids(DataLoader(make(12), batch_size=4, shuffle=True, rng=resumed_rng)) == second


def test_default_generator_follows_manual_seed():
    loader = DataLoader(make(15), batch_size=15, shuffle=True)
    scratchnn.manual_seed(5)
    a = ids(loader)
    scratchnn.manual_seed(5)
    assert ids(loader) == a


def test_tensor_dataset_validation_and_tensor_inputs():
    with pytest.raises(ValueError, match=r"same first dimension, got sizes \[3, 2\]"):
        TensorDataset(np.zeros((3, 2)), np.zeros(2))
    ds = TensorDataset(scratchnn.tensor(np.ones((4, 3))), np.arange(4))
    x, y = ds[2]
    assert x.shape == (3,) and y == 2
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        DataLoader(ds, batch_size=0)


def test_tensor_dataset_fast_path_has_no_per_sample_access():
    class Counting(TensorDataset):
        calls = 0

        def __getitem__(self, index):
            Counting.calls += 1
            return super().__getitem__(index)

    ds = Counting(np.zeros((100, 3)), np.zeros(100))
    for _ in DataLoader(ds, batch_size=32, shuffle=True, rng=np.random.default_rng(0)):
        pass
    assert Counting.calls == 0


def test_custom_dataset_and_subset():
    class Squares(Dataset):
        def __len__(self):
            return 6

        def __getitem__(self, i):
            return np.array([i, i * i], dtype=np.float64), i % 2

    x, y = next(iter(DataLoader(Squares(), batch_size=3)))
    np.testing.assert_array_equal(np.asarray(x), [[0, 0], [1, 1], [2, 4]])
    np.testing.assert_array_equal(np.asarray(y), [0, 1, 0])
    sub = Subset(make(10), np.array([7, 3, 5]))
    assert ids(DataLoader(sub, batch_size=2)) == [[7, 3], [5]]
    with pytest.raises(IndexError, match=r"in \[0, 10\)"):
        Subset(make(10), [3, 10])
    with pytest.raises(NotImplementedError):
        len(Dataset())
