"""End-to-end tests of the ``scratchnn`` command on built-in data and on CSV files."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cli_helpers import cli, one_error_line
from scratchnn.data import load_table, write_csv
from scratchnn.serialization import load_tensors

RUN_FILES = {"config.json", "model.safetensors", "last.safetensors", "optimizer.safetensors",
             "trainer_state.json", "preprocessing.json", "split.json", "metrics.jsonl",
             "curves.png", "results.json"}


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """``scratchnn train`` with no arguments, run in an empty working directory."""
    cwd = tmp_path_factory.mktemp("cwd")
    old = os.getcwd()
    os.chdir(cwd)
    try:
        rc, out, err = cli("train")
    finally:
        os.chdir(old)
    assert rc == 0, err
    run_dir = cwd / re.search(r"^run directory: (.+)$", out, re.M).group(1)
    return out, run_dir


def test_default_train_reaches_093_on_iris(default_run):
    out, run_dir = default_run
    accuracy = float(re.search(r"^test accuracy: ([0-9.]+)", out, re.M).group(1))
    assert accuracy >= 0.93, out
    assert run_dir.parent.name == "runs" and run_dir.name.startswith("iris-")
    assert RUN_FILES <= {p.name for p in run_dir.iterdir()}
    config = json.loads((run_dir / "config.json").read_text())
    assert config["data"]["source"] == "iris" and config["seed"] == 0
    assert len(json.loads((run_dir / "split.json").read_text())["test"]) == 30


def test_evaluate_prints_the_accuracy_training_printed(default_run):
    out, run_dir = default_run
    rc, eval_out, _ = cli("evaluate", run_dir)
    assert rc == 0
    line = re.search(r"^test accuracy: .*$", out, re.M).group(0)
    assert line in eval_out.splitlines()
    rc, eval_json, _ = cli("evaluate", run_dir, "--json")
    results = json.loads((run_dir / "results.json").read_text())
    assert json.loads(eval_json)["metrics"] == results["metrics"]


def test_predict_writes_one_row_per_input_row(default_run, tmp_path):
    _, run_dir = default_run
    table = load_table("iris")
    write_csv(table, tmp_path / "iris.csv")  # the target column is there and is ignored
    rc, out, err = cli("predict", run_dir, "--input", tmp_path / "iris.csv",
                       "--output", tmp_path / "pred.csv")
    assert rc == 0, err
    with open(tmp_path / "pred.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 150
    assert list(rows[0]) == ["prediction", "prob_0", "prob_1", "prob_2"]
    pred = np.array([int(r["prediction"]) for r in rows])
    assert np.mean(pred == table["target"]) >= 0.95  # mostly training rows: near perfect
    probs = np.array([[float(r[f"prob_{k}"]) for k in range(3)] for r in rows])
    assert np.allclose(probs.sum(axis=1), 1.0) and np.array_equal(probs.argmax(1), pred)

    before = (tmp_path / "pred.csv").read_bytes()
    rc, _, err = cli("predict", run_dir, "--input", tmp_path / "iris.csv",
                     "--output", tmp_path / "pred.csv")
    assert rc == 1 and "--overwrite" in one_error_line(err)
    assert (tmp_path / "pred.csv").read_bytes() == before


def make_csv(path: Path, n: int = 200, with_target: bool = True) -> None:
    """A table with a categorical feature, missing values and string labels."""
    rng = np.random.default_rng(0)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["x1", "color", "x2"] + (["label"] if with_target else []))
        for i in range(n):
            x1, x2 = rng.normal(), rng.normal()
            color = ["red", "green", "blue"][rng.integers(3)]
            label = "yes" if x1 + (1.5 if color == "red" else -0.5) > 0 else "no"
            row = [f"{x1:.4f}", "" if i % 23 == 0 else color, "NA" if i % 7 == 0 else x2]
            if with_target:
                row.append("" if i % 41 == 0 else label)
            w.writerow(row)


def test_csv_with_categories_missing_values_and_string_labels(tmp_path):
    make_csv(tmp_path / "train.csv")
    rc, out, err = cli("train", "--data", tmp_path / "train.csv", "--target", "label",
                       "--no-progress", "--json", "--out", tmp_path / "run")
    assert rc == 0, err
    result = json.loads(out)
    assert result["task"] == "classification" and result["classes"] == ["no", "yes"]
    assert "task: classification" in err and "dropped 5 row(s)" in err
    assert result["metrics"]["accuracy"] >= 0.85

    make_csv(tmp_path / "new.csv", n=37, with_target=False)
    with open(tmp_path / "new.csv", "a", newline="") as f:
        csv.writer(f).writerow(["0.5", "purple", ""])  # an unseen category, a missing value
    rc, out, err = cli("predict", tmp_path / "run", "--input", tmp_path / "new.csv",
                       "--output", tmp_path / "pred.csv")
    assert rc == 0, err
    with open(tmp_path / "pred.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 38
    assert {r["prediction"] for r in rows} == {"yes", "no"}
    assert list(rows[0]) == ["prediction", "prob_no", "prob_yes"]


def test_wrong_target_lists_the_columns(tmp_path):
    rc, out, err = cli("train", "--target", "species", "--out", tmp_path / "r")
    line = one_error_line(err)
    assert rc == 1 and out == ""
    assert "'species' not found" in line and "petal length (cm)" in line and "target" in line
    assert not (tmp_path / "r").exists()


def test_existing_run_dir_is_not_clobbered(default_run, tmp_path):
    _, run_dir = default_run
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    before = snapshot(run)
    rc, _, err = cli("train", "--out", run, "--no-progress")
    assert rc == 1 and "--overwrite" in one_error_line(err)
    assert snapshot(run) == before
    # --overwrite only replaces the run once the new one succeeded: a diverging one does not.
    rc, _, err = cli("train", "--out", run, "--overwrite", "--no-progress", "--loss", "mse",
                     "--optimizer", "sgd", "--lr", "1e6")
    assert rc == 1 and "non-finite" in one_error_line(err)
    assert snapshot(run) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no staging left behind


def test_nonfinite_loss_names_the_step(tmp_path):
    rc, _, err = cli("train", "--loss", "mse", "--optimizer", "sgd", "--lr", "1e6",
                     "--no-progress", "--out", tmp_path / "r")
    line = one_error_line(err)
    assert rc == 1
    assert re.search(r"non-finite training loss \((inf|nan)\) at step \d+ \(epoch 1,", line)
    assert not (tmp_path / "r").exists()  # nothing worth keeping: no checkpoint was reached


def test_mse_loss_subprocess_json_stdout_is_one_object(tmp_path):
    script = Path(sys.executable).with_name("scratchnn")
    proc = subprocess.run([str(script), "train", "--loss", "mse", "--json", "--out",
                           str(tmp_path / "run")], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.strip().splitlines()) == 1
    result = json.loads(proc.stdout)
    assert result["metrics"]["accuracy"] >= 0.90
    assert Path(result["run_dir"]) == tmp_path / "run"


def test_regression_on_diabetes_reports_r2(tmp_path):
    rc, out, err = cli("train", "--data", "diabetes", "--no-progress", "--json",
                       "--out", tmp_path / "run")
    assert rc == 0, err
    result = json.loads(out)
    assert result["task"] == "regression" and result["metrics"]["r2"] > 0.3
    rc, out, _ = cli("evaluate", tmp_path / "run")
    assert f"test r2: {result['metrics']['r2']:.4f}" in out


def test_resume_is_bit_exact(tmp_path):
    common = ("--epochs", "4", "--patience", "0", "--dropout", "0.1", "--no-progress")
    assert cli("train", *common, "--out", tmp_path / "a")[0] == 0
    assert cli("train", *common[:1], "2", *common[2:], "--out", tmp_path / "b")[0] == 0
    rc, _, err = cli("train", "--resume", tmp_path / "b", "--epochs", "4", "--no-progress")
    assert rc == 0, err
    for name in ("last.safetensors", "model.safetensors", "optimizer.safetensors"):
        a, _ = load_tensors(tmp_path / "a" / name)
        b, _ = load_tensors(tmp_path / "b" / name)
        assert all(np.array_equal(a[k], b[k]) for k in a), name
    rc, _, err = cli("train", "--resume", tmp_path / "b", "--lr", "0.1")
    assert rc == 2 and "cannot be combined with --lr" in one_error_line(err)


def test_corrupt_model_file_is_named(default_run, tmp_path):
    _, run_dir = default_run
    shutil.copytree(run_dir, tmp_path / "run")
    model = tmp_path / "run" / "model.safetensors"
    model.write_bytes(model.read_bytes()[:100])
    rc, _, err = cli("evaluate", tmp_path / "run")
    assert rc == 1 and "model.safetensors" in one_error_line(err)


def test_help_version_and_usage_errors():
    for command in ([], ["train"], ["evaluate"], ["predict"]):
        rc, out, _ = cli(*command, "--help")
        assert rc == 0 and out.startswith("usage: scratchnn")
    assert "./runs/<data>-<timestamp>" in cli("train", "--help")[1]
    rc, out, _ = cli("--version")
    assert rc == 0 and re.fullmatch(r"scratchnn \d+\.\d+\.\d+\n", out)
    for args in (["train", "--epochs", "0"], ["train", "--hidden", "64,x"],
                 ["train", "--optimizer", "lbfgs"], ["frobnicate"], ["predict", "somewhere"]):
        rc, out, err = cli(*args)
        assert rc == 2 and out == "", args
        one_error_line(err)
    rc, _, err = cli("train", "--data", "no_such_file.csv")
    assert rc == 1 and "neither an existing CSV file nor a built-in" in one_error_line(err)
    rc, _, err = cli("train", "--data", "no_such_file.csv", "--debug")
    assert rc == 1 and err.startswith("Traceback") and err.splitlines()[-1].startswith("error:")


# --------------------------------------------------------------------------- new-user defects
def write_rows(path: Path, header: list[str], rows: list[list], delimiter: str = ",") -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f, delimiter=delimiter)
        w.writerow(header)
        w.writerows(rows)
    return path


def sizes_csv(path: Path, n: int = 200, decimals: int = 2) -> Path:
    """A continuous 'size' column (nearly every value distinct) and a string 'label'."""
    rng = np.random.default_rng(1)
    rows = []
    for i in range(n):
        size = round(float(rng.uniform(0, 10)), decimals)
        rows.append([["red", "blue"][i % 2], size, round(float(rng.normal()), 3),
                     "big" if size > 5 else "small"])
    return write_rows(path, ["id_color", "size", "weight", "label"], rows)


def test_a_continuous_target_is_refused_for_classification(tmp_path):
    data = sizes_csv(tmp_path / "my.csv")
    rc, out, err = cli("train", "--data", data, "--target", "size", "--task", "classification",
                       "--no-progress", "--out", tmp_path / "run")
    line = one_error_line(err)
    assert rc == 1 and out == ""
    assert re.search(r"target 'size' has \d+ classes for 200 rows", line), line
    assert "too few rows per class to split into train/validation/test" in line
    assert line.endswith("pass --task regression")
    assert not (tmp_path / "run").exists()


def test_classes_too_small_to_stratify_are_named(tmp_path):
    rows = [[float(i), "a" if i % 2 else "b"] for i in range(40)] + [[99.0, "rare"]]
    data = write_rows(tmp_path / "d.csv", ["x", "y"], rows)
    rc, out, err = cli("train", "--data", data, "--target", "y", "--epochs", "1",
                       "--no-progress", "--json", "--out", tmp_path / "run")
    assert rc == 0, err
    assert ("1 of 3 classes of target 'y' have fewer than 3 rows and are in the training rows "
            "only, not in the validation or test rows: 'rare'") in err


def test_too_few_rows_for_the_test_split_is_an_error_not_a_false_note(tmp_path):
    data = write_rows(tmp_path / "d.csv", ["x", "y"], [[1, 0.5], [2, 1.5]])
    rc, _, err = cli("train", "--data", data, "--target", "y", "--task", "regression",
                     "--no-progress", "--out", tmp_path / "run")
    line = one_error_line(err)
    assert rc == 1 and "test_fraction is 0" not in line
    assert "too few rows (2) for validation and test rows" in line
    assert "--val-fraction 0 --test-fraction 0" in line


def _commands(parser, prefix=()):
    """Every command path of ``parser`` (('train',), ('lm', 'pretrain'), ...)."""
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name)
                yield from _commands(sub, (*prefix, name))


def test_help_prints_single_percent_signs():
    from scratchnn.cli.main import build_parser

    rc, out, _ = cli("train", "--help")
    assert rc == 0 and "15% validation and 20% test rows" in out and "%%" not in out
    commands = list(_commands(build_parser()))
    assert ("lm", "pretrain") in commands and ("lora", "merge") in commands
    for command in commands:
        rc, out, _ = cli(*command, "--help")
        assert rc == 0 and out.startswith("usage: scratchnn") and "%%" not in out, command
    assert "10% validation" in cli("lm", "pretrain", "--help")[1]


def test_a_folder_without_config_json_is_not_a_run_directory(tmp_path):
    (tmp_path / "notes.txt").write_text("not a run")
    write_csv(load_table("iris"), tmp_path / "iris.csv")
    before = snapshot(tmp_path)
    expected = f"error: {tmp_path} is not a scratchnn run directory (no config.json)"
    for args in (["evaluate", tmp_path],
                 ["predict", tmp_path, "--input", tmp_path / "iris.csv", "--output",
                  tmp_path / "pred.csv"],
                 ["train", "--resume", tmp_path, "--epochs", "5", "--no-progress"],
                 ["lora", "merge", tmp_path]):
        rc, out, err = cli(*args)
        assert rc == 1 and out == "" and one_error_line(err) == expected, args
    assert snapshot(tmp_path) == before
    rc, _, err = cli("evaluate", tmp_path / "nope")
    assert rc == 1 and one_error_line(err) == f"error: run directory {tmp_path / 'nope'} " \
                                              "does not exist"


def test_resume_with_nothing_to_train_says_so(tmp_path):
    data = sizes_csv(tmp_path / "d.csv")
    rc, _, err = cli("train", "--data", data, "--target", "label", "--epochs", "3",
                     "--patience", "0", "--no-progress", "--out", tmp_path / "done")
    assert rc == 0, err
    for epochs in ("2", "3"):
        rc, out, err = cli("train", "--resume", tmp_path / "done", "--epochs", epochs,
                           "--no-progress")
        assert rc == 0, err
        assert (f"note: nothing to do: {tmp_path / 'done'} already trained 3 epochs; pass "
                "--epochs > 3 to continue") in err
        assert "trained 3 epochs (completed" in out
    rc, _, err = cli("train", "--resume", tmp_path / "done", "--no-progress")
    assert rc == 0 and "nothing to do" in err
    rc, _, err = cli("train", "--resume", tmp_path / "done")  # no bar when no epoch runs
    assert rc == 0 and [line[:21] for line in err.splitlines()] == ["note: nothing to do: "]
    assert json.loads((tmp_path / "done" / "config.json").read_text())["training"]["epochs"] == 3

    rc, _, err = cli("train", "--data", data, "--target", "label", "--patience", "1",
                     "--lr", "1", "--no-progress", "--out", tmp_path / "early")
    assert rc == 0, err
    stopped = json.loads((tmp_path / "early" / "trainer_state.json").read_text())["epoch"]
    assert stopped < 300
    rc, out, err = cli("train", "--resume", tmp_path / "early", "--epochs", "400",
                       "--no-progress")
    assert rc == 0, err
    assert f"nothing to do: {tmp_path / 'early'} stopped early at epoch {stopped}" in err
    assert "--patience" in err and f"trained {stopped} epochs (early stopping" in out
    rc, _, err = cli("train", "--resume", tmp_path / "early", "--epochs", "400")
    assert rc == 0 and [line[:21] for line in err.splitlines()] == ["note: nothing to do: "]
    assert "stopped early is finished" in " ".join(cli("train", "--help")[1].split())


def test_string_target_with_task_regression_names_the_line(tmp_path):
    data = sizes_csv(tmp_path / "my.csv")
    rc, _, err = cli("train", "--data", data, "--target", "label", "--task", "regression",
                     "--no-progress", "--out", tmp_path / "run")
    line = one_error_line(err)
    assert rc == 2
    assert f"{data}, line 2: column 'label' must be numeric, got " in line  # 1st data row
    assert "--task regression needs a numeric target" in line and "row 0" not in line


def test_predict_missing_input_and_one_row(default_run, tmp_path):
    _, run_dir = default_run
    rc, _, err = cli("predict", run_dir, "--input", tmp_path / "nope.csv",
                     "--output", tmp_path / "p.csv")
    assert rc == 1
    assert one_error_line(err) == f"error: input file {tmp_path / 'nope.csv'} does not exist"
    table = load_table("iris")
    write_csv(table.take([0]), tmp_path / "one.csv")
    rc, out, err = cli("predict", run_dir, "--input", tmp_path / "one.csv",
                       "--output", tmp_path / "p.csv")
    assert rc == 0, err
    assert out.startswith(f"wrote 1 prediction to {tmp_path / 'p.csv'} ")


def test_a_semicolon_separated_file_gets_a_hint(tmp_path):
    data = write_rows(tmp_path / "semi.csv", ["id_color", "size", "label"],
                      [["red", 1, "a"], ["blue", 2, "b"]], delimiter=";")
    rc, _, err = cli("train", "--data", data, "--target", "label", "--out", tmp_path / "run")
    line = one_error_line(err)
    assert rc == 1 and "columns are: id_color;size;label" in line
    assert "the file looks ';'-separated, but scratchnn reads comma-separated CSV" in line
