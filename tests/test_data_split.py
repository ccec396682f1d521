"""train_val_test_split: disjoint cover, sizes, stratification, validation."""

import numpy as np
import pytest

from scratchnn.data import train_val_test_split


def check_partition(n, parts):
    joined = np.concatenate(parts)
    assert all(p.dtype == np.int64 for p in parts)
    np.testing.assert_array_equal(np.sort(joined), np.arange(n))  # disjoint and covering


def test_plain_split_sizes_and_seed():
    parts = train_val_test_split(100, rng=np.random.default_rng(0))
    check_partition(100, parts)
    assert [len(p) for p in parts] == [65, 15, 20]
    again = train_val_test_split(100, rng=np.random.default_rng(0))
    other = train_val_test_split(100, rng=np.random.default_rng(1))
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))
    assert not np.array_equal(parts[2], other[2])


def test_stratified_split_keeps_class_proportions():
    labels = np.array(["a"] * 60 + ["b"] * 30 + ["c"] * 10)
    rng = np.random.default_rng(3)
    train, val, test = train_val_test_split(
        100, val_fraction=0.1, test_fraction=0.2, stratify=labels, rng=rng
    )
    check_partition(100, (train, val, test))
    counts = {s: [int((labels[idx] == s).sum()) for idx in (train, val, test)] for s in "abc"}
    assert counts == {"a": [42, 6, 12], "b": [21, 3, 6], "c": [7, 1, 2]}


def test_small_classes_get_a_row_in_val_and_test():
    labels = np.array([0] * 3 + [1] * 50)
    train, val, test = train_val_test_split(
        53, val_fraction=0.1, test_fraction=0.1, stratify=labels, rng=np.random.default_rng(0)
    )
    for idx in (train, val, test):
        assert (labels[idx] == 0).sum() == 1


def test_zero_val_fraction_gives_empty_val():
    train, val, test = train_val_test_split(10, val_fraction=0.0, rng=np.random.default_rng(0))
    assert len(val) == 0 and val.dtype == np.int64
    assert (len(train), len(test)) == (8, 2)


def test_default_generator_is_used():
    from scratchnn.random import manual_seed

    manual_seed(7)
    a = train_val_test_split(50)
    manual_seed(7)
    b = train_val_test_split(50)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"val_fraction": -0.1}, r"val_fraction must be in \[0, 1\), got -0.1"),
        ({"test_fraction": 1.0}, r"test_fraction must be in \[0, 1\), got 1.0"),
        ({"val_fraction": 0.5, "test_fraction": 0.5}, r"must be < 1, got 0.5 \+ 0.5"),
        ({"stratify": [0, 1]}, r"stratify labels must have shape \(10,\)"),
        ({"stratify": [0.0] * 9 + [np.nan]}, "stratify labels contain NaN"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        train_val_test_split(10, rng=np.random.default_rng(0), **kwargs)
