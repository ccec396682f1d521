"""Preprocessor: imputation, standardisation, one-hot, label encoding, JSON round trip."""

import json
import warnings

import numpy as np
import pytest

from scratchnn.data import (
    ColumnNotFoundError,
    Preprocessor,
    StandardScaler,
    Table,
    drop_missing_target,
    read_csv,
)

CSV = """age,color,height,const,label
30,red,1.5,7,cat
,blue,1.7,7,dog
50,red,,7,cat
40,?,1.9,7,bird
20,green,NA,7,dog
,blue,2.5,7,cat
"""
TRAIN, TEST = [0, 1, 2, 3], [4, 5]


@pytest.fixture
def table(tmp_path):
    path = tmp_path / "people.csv"
    path.write_text(CSV)
    return read_csv(path)


@pytest.fixture
def prep(table):
    return Preprocessor().fit(table.take(TRAIN), "label", "classification")


def test_fitted_statistics_come_from_training_rows(prep):
    state = prep.to_dict()
    age, color, height, const = state["features"]
    # Training ages 30, -, 50, 40: median 40; imputed 30, 40, 50, 40: mean 40, var 50.
    assert (age["median"], age["mean"], age["std"]) == (40.0, 40.0, float(np.sqrt(50.0)))
    assert height["median"] == 1.7  # of 1.5, 1.7, 1.9 (not of all rows, which include 2.5)
    assert color == {"name": "color", "kind": "categorical", "fill": "red",
                     "categories": ["blue", "red"]}
    assert (const["mean"], const["std"]) == (7.0, 1.0)
    assert prep.classes == ["bird", "cat", "dog"]
    assert prep.feature_names == ["age", "color=blue", "color=red", "height", "const"]
    assert prep.n_features == 5 and prep.task == "classification"


def test_transform_test_rows_uses_training_statistics(prep, table):
    x = prep.transform_features(table.take(TEST))
    assert x.dtype == np.float32 and x.shape == (2, 5)
    h_mean = np.mean([1.5, 1.7, 1.7, 1.9])
    h_std = np.std([1.5, 1.7, 1.7, 1.9])
    expected = np.array([
        # age 20; 'green' is unseen -> all-zero block; height missing -> train median 1.7
        [(20 - 40) / np.sqrt(50.0), 0, 0, (1.7 - h_mean) / h_std, 0],
        # age missing -> 40 -> 0; 'blue'; height 2.5 far outside the training range
        [0, 1, 0, (2.5 - h_mean) / h_std, 0],
    ]).astype(np.float32)
    np.testing.assert_array_equal(x, expected)
    np.testing.assert_array_equal(prep.transform_target(table.take(TEST)), [2, 1])


def test_missing_category_imputed_with_most_frequent(prep, table):
    x = prep.transform_features(table.take([3]))  # color '?' -> 'red'
    np.testing.assert_array_equal(x[0, 1:3], [0.0, 1.0])


def test_constant_column_gives_zero_without_warnings():
    t = Table({"c": [0.1] * 7, "v": np.arange(7.0), "y": [0, 1] * 3 + [0]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = Preprocessor().fit(t, "y", "classification")
        x = p.transform_features(t)
    assert np.all(x[:, 0] == 0.0)
    np.testing.assert_allclose(x[:, 1].std(), 1.0, rtol=1e-6)


def test_json_round_trip_is_bit_exact(table):
    rng = np.random.default_rng(0)
    big = Table({
        "a": rng.normal(size=200) * 1e3,
        "b": np.where(rng.random(200) < 0.1, np.nan, rng.random(200) / 3),
        "c": rng.choice(["x", "y", "z"], size=200),
        "y": rng.choice(["p", "q"], size=200),
    })
    p = Preprocessor().fit(big.take(np.arange(150)), "y", "classification")
    q = Preprocessor.from_dict(json.loads(json.dumps(p.to_dict())))
    rest = big.take(np.arange(150, 200))
    x1, x2 = p.transform_features(rest), q.transform_features(rest)
    assert np.array_equal(x1.view(np.uint32), x2.view(np.uint32))
    np.testing.assert_array_equal(p.transform_target(rest), q.transform_target(rest))
    assert q.feature_names == p.feature_names and q.classes == ["p", "q"]
    assert q.to_dict() == p.to_dict()


def test_unseen_label_and_missing_target_errors(prep, table):
    bad = Table({"age": [1.0], "color": ["red"], "height": [1.0], "const": [7.0],
                 "label": ["fish"]})
    with pytest.raises(ValueError, match="unknown label 'fish'.*known classes: bird, cat, dog"):
        prep.transform_target(bad)
    holes = table.with_column("label", ["cat", None, "dog", None, "cat", "cat"])
    with pytest.raises(ValueError, match="2 missing value\\(s\\) out of 6 rows"):
        Preprocessor().fit(holes, "label", "classification")
    kept, n_dropped = drop_missing_target(holes, "label")
    assert n_dropped == 2 and kept["label"].tolist() == ["cat", "dog", "cat", "cat"]


def test_missing_feature_column_lists_expected(prep, table):
    # Predict-time tables may lack the target; a missing feature is an error.
    x = prep.transform_features(table.drop("label"))
    assert x.shape == (6, 5)
    with pytest.raises(ColumnNotFoundError,
                       match="missing feature column\\(s\\) 'height'; "
                             "expected: age, color, height, const"):
        prep.transform_features(table.drop(["height", "label"]))
    with pytest.raises(ColumnNotFoundError, match="columns are: age, color"):
        Preprocessor().fit(table, "nope", "classification")


def test_inverse_target_keeps_label_types(prep):
    labels = prep.inverse_target(np.array([2, 0, 1]))
    assert labels.tolist() == ["dog", "bird", "cat"]
    t = Table({"x": [1.0, 2.0, 3.0, 4.0], "y": [3.0, 1.0, 3.0, 1.0]})
    p = Preprocessor().fit(t, "y", "classification")
    assert p.classes == [1, 3] and all(type(c) is int for c in p.classes)
    back = p.inverse_target(p.transform_target(t))
    assert back.dtype == np.int64 and back.tolist() == [3, 1, 3, 1]
    with pytest.raises(ValueError, match="class index 2 out of range \\[0, 2\\)"):
        p.inverse_target(np.array([0, 2]))
    f = Preprocessor().fit(t.with_column("y", [0.5, 1.5, 0.5, 0.5]), "y", "classification")
    assert f.inverse_target(np.array([1])).tolist() == [1.5]


def test_numeric_labels_read_as_text_still_encode():
    train = Table({"x": [1.0, 2.0, 3.0], "y": [0.0, 1.0, 1.0]})
    p = Preprocessor().fit(train, "y", "classification")
    np.testing.assert_array_equal(p.transform_target(Table({"y": ["1", "0"]})), [1, 0])


def test_regression_target_and_scaling():
    t = Table({"x": [1.0, 2.0, 3.0, 4.0], "y": [10.0, 20.0, 30.0, 40.0]})
    p = Preprocessor().fit(t, "y", "regression")
    y = p.transform_target(t)
    assert y.dtype == np.float32 and y.tolist() == [10.0, 20.0, 30.0, 40.0]
    assert p.classes is None
    s = Preprocessor().fit(t, "y", "regression", standardize_target=True)
    ys = s.transform_target(t)
    np.testing.assert_allclose(ys, (t["y"] - 25.0) / np.sqrt(125.0), rtol=1e-6)
    np.testing.assert_allclose(s.inverse_target(ys), t["y"], rtol=1e-6)
    with pytest.raises(ValueError, match="1 missing value\\(s\\) out of 4 rows"):
        p.transform_target(t.with_column("y", [1.0, np.nan, 2.0, 3.0]))
    with pytest.raises(ValueError, match="task must be one of"):
        Preprocessor().fit(t, "y", "clustering")


def test_categorical_feature_read_as_numbers_still_one_hots():
    train = Table({"size": ["1", "2", "L"], "y": [0, 1, 0]})
    p = Preprocessor().fit(train, "y", "classification")
    x = p.transform_features(Table({"size": [2.0, np.nan]}))  # a later file parsed as numbers
    np.testing.assert_array_equal(x, [[0, 1, 0], [1, 0, 0]])  # NaN -> most frequent: '1'
    assert p.column_types == {"size": "categorical", "y": "numeric"}


def test_standard_scaler_round_trip():
    x = np.array([[1.0, 5.0], [3.0, 5.0]])
    sc = StandardScaler().fit(x)
    np.testing.assert_array_equal(sc.transform(x), [[-1.0, 0.0], [1.0, 0.0]])
    sc2 = StandardScaler.from_dict(json.loads(json.dumps(sc.to_dict())))
    np.testing.assert_array_equal(sc2.inverse_transform(sc2.transform(x)), x)
    with pytest.raises(ValueError, match="expected \\(N, 2\\) input, got \\(2, 3\\)"):
        sc.transform(np.zeros((2, 3)))
