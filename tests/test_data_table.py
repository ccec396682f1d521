"""Table, CSV reading/writing and built-in data sets."""

import numpy as np
import pytest

from scratchnn.data import (
    BUILTIN_DATASETS,
    BUILTIN_TASKS,
    ColumnNotFoundError,
    CSVError,
    Preprocessor,
    Table,
    builtin_info,
    load_builtin,
    load_table,
    read_csv,
    write_csv,
)

CSV = """age,color,income,label
31,red,50000,yes
,blue,NA,no
45,?,61000.5,yes
27,red,N/A,maybe
"""


def write(tmp_path, text, name="data.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_read_csv_infers_types_and_missing(tmp_path):
    t = read_csv(write(tmp_path, CSV))
    assert t.columns == ["age", "color", "income", "label"]
    assert len(t) == 4
    assert t["age"].dtype == np.float64
    np.testing.assert_array_equal(t["age"], [31.0, np.nan, 45.0, 27.0])
    np.testing.assert_array_equal(t["income"], [50000.0, np.nan, 61000.5, np.nan])
    assert t["color"].dtype == object
    assert t["color"].tolist() == ["red", "blue", None, "red"]
    assert t["label"].tolist() == ["yes", "no", "yes", "maybe"]
    assert t.kind("age") == "numeric" and t.kind("color") == "categorical"


def test_every_missing_marker_is_missing(tmp_path):
    markers = ["", "NA", "N/A", "NaN", "nan", "null", "None", "?"]
    text = "x,y\n" + "".join(f"{m},{m}\n" for m in markers) + "1.5,a\n"
    t = read_csv(write(tmp_path, text))
    assert np.isnan(t["x"][:-1]).all() and t["x"][-1] == 1.5
    assert t["y"].tolist() == [None] * len(markers) + ["a"]


def test_column_types_force_kind(tmp_path):
    path = write(tmp_path, "zip,v\n10001,1\n02134,2\n")
    t = read_csv(path, column_types={"zip": "categorical"})
    assert t["zip"].tolist() == ["10001", "02134"]
    bad = write(tmp_path, "v\n1\nabc\n", "bad.csv")
    with pytest.raises(CSVError, match=r"bad\.csv, line 3: column 'v' must be numeric, got 'abc'"):
        read_csv(bad, column_types={"v": "numeric"})


def test_csv_errors_name_file_and_line(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        read_csv(tmp_path / "nope.csv")
    with pytest.raises(CSVError, match=r"empty\.csv is empty"):
        read_csv(write(tmp_path, "", "empty.csv"))
    with pytest.raises(CSVError, match=r"head\.csv has a header but no data rows"):
        read_csv(write(tmp_path, "a,b\n", "head.csv"))
    ragged = write(tmp_path, "a,b,c\n1,2,3\n4,5,6\n7,8\n", "ragged.csv")
    with pytest.raises(CSVError, match=r"ragged\.csv, line 4: expected 3 fields .*got 2"):
        read_csv(ragged)
    with pytest.raises(CSVError, match="duplicate column name 'a'"):
        read_csv(write(tmp_path, "a,a\n1,2\n", "dup.csv"))


def test_blank_lines_are_skipped(tmp_path):
    t = read_csv(write(tmp_path, "a,b\n1,x\n\n2,y\n\n"))
    np.testing.assert_array_equal(t["a"], [1.0, 2.0])


def test_missing_column_lists_columns():
    t = Table({"a": [1, 2], "b": [3, 4], "c": ["x", "y"]})
    with pytest.raises(ColumnNotFoundError) as info:
        t["y"]
    assert str(info.value) == "column 'y' not found; columns are: a, b, c"
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)
    with pytest.raises(ColumnNotFoundError, match="columns are: a, b, c"):
        t.select(["a", "zz"])
    with pytest.raises(ColumnNotFoundError, match="columns are: a, b, c"):
        t.drop("zz")


def test_table_select_take_drop():
    t = Table({"a": [1, 2, 3], "b": ["x", None, "z"], "c": [0.5, np.nan, 2.0]})
    assert t.shape == (3, 3)
    assert t.select(["c", "a"]).columns == ["c", "a"]
    assert t.drop("b").columns == ["a", "c"]
    assert t.drop(["a", "b"]).columns == ["c"]
    sub = t.take([2, 0])
    np.testing.assert_array_equal(sub["a"], [3.0, 1.0])
    assert sub["b"].tolist() == ["z", "x"]
    masked = t.take(np.array([True, False, True]))
    assert masked["b"].tolist() == ["x", "z"]
    assert len(t.take(np.array([], dtype=np.int64))) == 0
    with pytest.raises(ValueError, match="has 2 rows but earlier columns have 3"):
        Table({"a": [1, 2, 3], "b": [1, 2]})


def test_write_csv_round_trip(tmp_path):
    t = Table({"a": [1.0, np.nan, 0.1 + 0.2], "b": ["x, y", None, "z"]})
    path = tmp_path / "out.csv"
    write_csv(t, path)
    assert read_csv(path) == t
    assert path.read_text().splitlines()[1] == '1,"x, y"'


def test_builtin_iris_and_digits():
    iris = load_builtin("iris")
    assert iris.shape == (150, 5) and iris.columns[-1] == "target"
    prep = Preprocessor().fit(iris, "target", "classification")
    assert prep.transform_features(iris).shape == (150, 4)
    assert prep.classes == [0, 1, 2]
    np.testing.assert_array_equal(np.bincount(prep.transform_target(iris)), [50, 50, 50])
    digits = load_builtin("digits")
    x = Preprocessor().fit(digits, "target", "classification").transform_features(digits)
    assert x.shape == (1797, 64)


@pytest.mark.parametrize(
    "name,rows,cols,n_classes",
    [("wine", 178, 13, 3), ("breast_cancer", 569, 30, 2), ("diabetes", 442, 10, None)],
)
def test_other_builtins(name, rows, cols, n_classes):
    t = load_builtin(name)
    assert t.shape == (rows, cols + 1)
    info = builtin_info(name)
    assert info.target == "target" and info.task == BUILTIN_TASKS[name]
    prep = Preprocessor().fit(t, info.target, info.task)
    assert prep.n_classes == n_classes


def test_builtin_tasks_and_unknown_name():
    assert BUILTIN_DATASETS == ("iris", "wine", "breast_cancer", "digits", "diabetes")
    assert BUILTIN_TASKS["diabetes"] == "regression"
    assert BUILTIN_TASKS["digits"] == "classification"
    with pytest.raises(ValueError, match="valid names are: iris, wine, breast_cancer"):
        load_builtin("mnist")


def test_load_table_csv_builtin_and_error(tmp_path):
    path = write(tmp_path, CSV)
    assert load_table(str(path)).columns == ["age", "color", "income", "label"]
    assert load_table("wine").shape == (178, 14)
    with pytest.raises(FileNotFoundError, match=r"'nothere\.csv' is neither .* \(iris, wine"):
        load_table("nothere.csv")


def test_table_column_conversion():
    t = Table({"n": [1.5, None], "s": ["x", None], "i": np.array([1, 2])})
    assert t["n"].dtype == np.float64 and np.isnan(t["n"][1])
    assert t["s"].dtype == object and t["s"].tolist() == ["x", None]
    assert t["i"].dtype == np.float64
