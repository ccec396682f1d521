"""End-to-end CLI tests of the CNN and recurrent families: image folders made in the test,
text and sequence CSV files, the built-in digits, evaluate/predict/resume, and errors."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli_helpers import cli, one_error_line
from scratchnn.data import Table, load_builtin, read_csv, write_csv
from scratchnn.data.text import tokenize
from scratchnn.serialization import load_tensors


def read_json(path: Path):
    return json.loads(path.read_text())


def accuracy(predictions: Path, truth: dict[str, str]) -> float:
    rows = list(csv.DictReader(predictions.open()))
    return float(np.mean([truth[r["path"]] == r["prediction"] for r in rows]))


# --------------------------------------------------------------------------- image folders
def make_bars(root: Path, n: int = 20, size: int = 12, seed: int = 0) -> Path:
    """Two classes of noisy grey images: one horizontal or one vertical bright bar."""
    rng = np.random.default_rng(seed)
    for cls in ("horizontal", "vertical"):
        (root / cls).mkdir(parents=True)
        for i in range(n):
            img = (rng.random((size, size)) * 60).astype(np.uint8)
            k = rng.integers(1, size - 3)
            if cls == "horizontal":
                img[k:k + 2, :] = 255
            else:
                img[:, k:k + 2] = 255
            Image.fromarray(img).save(root / cls / f"{i:02d}.png")
    return root


@pytest.fixture(scope="module")
def bars(tmp_path_factory) -> Path:
    return make_bars(tmp_path_factory.mktemp("data") / "bars")


@pytest.fixture(scope="module")
def image_run(bars, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("runs") / "bars"
    rc, out, err = cli("train", "--data", bars, "--image-size", 12, "--epochs", 8,
                       "--batch-size", 8, "--channels", "8,16", "--out", run_dir,
                       "--no-progress")
    assert rc == 0, err
    return run_dir


def test_image_folder_trains_with_train_only_statistics(bars, image_run):
    files = sorted(bars.rglob("*.png"))
    inputs = read_json(image_run / "inputs.json")["normalizer"]
    assert (inputs["channels"], inputs["size"], inputs["scale"]) == (1, [12, 12], 255.0)
    train = read_json(image_run / "split.json")["train"]
    bilinear = Image.Resampling.BILINEAR
    pixels = np.stack([np.asarray(Image.open(files[i]).resize((12, 12), bilinear))
                       for i in train]) / 255.0
    assert inputs["mean"][0] == pytest.approx(pixels.mean(), abs=1e-9)
    assert inputs["std"][0] == pytest.approx(pixels.std(), abs=1e-9)
    assert read_json(image_run / "preprocessing.json")["classes"] == ["horizontal", "vertical"]
    config = read_json(image_run / "config.json")
    assert config["data"]["color_mode"] == "L"  # every image is grey
    assert config["model"]["config"]["augment_flip"] is True  # the default for folders
    results = read_json(image_run / "results.json")
    assert results["metrics"]["accuracy"] >= 0.75  # 8 test images; chance is 0.5


def test_predict_an_image_folder_and_a_csv_of_paths(bars, image_run, tmp_path):
    out = tmp_path / "pred.csv"
    rc, stdout, err = cli("predict", image_run, "--input", bars, "--output", out)
    assert rc == 0, err
    rows = list(csv.DictReader(out.open()))
    files = sorted(str(p) for p in bars.rglob("*.png"))
    assert [r["path"] for r in rows] == files  # one row per image file, in order
    assert list(rows[0]) == ["path", "prediction", "prob_horizontal", "prob_vertical"]
    truth = {f: Path(f).parent.name for f in files}
    assert accuracy(out, truth) >= 0.85
    listing = tmp_path / "paths.csv"  # paths relative to the CSV file's folder
    listing.write_text("path\n" + "".join(f"{os.path.relpath(f, tmp_path)}\n"
                                          for f in files[::10]))
    out2 = tmp_path / "pred2.csv"
    rc, _, err = cli("predict", image_run, "--input", listing, "--output", out2)
    assert rc == 0, err
    again = list(csv.DictReader(out2.open()))
    assert [r["prediction"] for r in again] == [r["prediction"] for r in rows[::10]]


def test_a_corrupt_image_gets_an_error_naming_it(bars, image_run, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(bars, broken)
    (broken / "vertical" / "bad.png").write_bytes(b"not a png at all")
    out = tmp_path / "run"
    rc, _, err = cli("train", "--data", broken, "--epochs", 1, "--out", out, "--no-progress")
    assert rc == 1
    line = one_error_line(err)
    assert "bad.png" in line and "not an image Pillow can decode" in line
    assert not out.exists()
    rc, _, err = cli("predict", image_run, "--input", broken, "--output", tmp_path / "p.csv")
    assert rc == 1 and "bad.png" in one_error_line(err)
    good = next((bars / "vertical").iterdir()).read_bytes()
    (broken / "vertical" / "bad.png").write_bytes(good[:len(good) // 3])  # truncated
    rc, _, err = cli("train", "--data", broken, "--epochs", 1, "--out", out, "--no-progress")
    assert rc == 1 and "bad.png: corrupt or truncated" in one_error_line(err)


# --------------------------------------------------------------------------- text
POSITIVE = ["good", "great", "lovely", "nice", "superb"]
NEGATIVE = ["bad", "awful", "poor", "boring", "dull"]
FILLER = ["the", "film", "was", "really", "a", "plot", "and", "acting"]


@pytest.fixture(scope="module")
def text_csv(tmp_path_factory) -> Path:
    """Sentences whose label is the sentiment word in them; each has a unique made-up word."""
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("data") / "reviews.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label", "source"])
        for i in range(120):
            label = i % 2
            word = rng.choice(POSITIVE if label else NEGATIVE)
            unique = "zq" + "".join(chr(97 + int(d)) for d in f"{i:03d}")
            words = list(rng.choice(FILLER, 4)) + [word, unique]
            rng.shuffle(words)
            writer.writerow([" ".join(words).capitalize() + ".", label, f"site{i % 3}"])
    return path


@pytest.fixture(scope="module")
def text_run(text_csv, tmp_path_factory) -> tuple[Path, str]:
    run_dir = tmp_path_factory.mktemp("runs") / "text"
    rc, out, err = cli("train", "--data", text_csv, "--text-column", "text", "--target",
                       "label", "--min-freq", 1, "--epochs", 15, "--batch-size", 8,
                       "--out", run_dir, "--no-progress")
    assert rc == 0, err
    return run_dir, err


def test_text_vocabulary_is_built_on_the_training_rows_only(text_csv, text_run):
    run_dir, err = text_run
    assert "ignoring column(s) 'source'" in err  # the text model reads the text column only
    config = read_json(run_dir / "config.json")
    assert config["model"]["config"]["cell"] == "lstm"  # the default for a text column
    vocab = set(read_json(run_dir / "inputs.json")["vocabulary"]["tokens"])
    split = read_json(run_dir / "split.json")
    texts = read_csv(text_csv, column_types={"text": "categorical"})["text"]
    unique = [next(w for w in tokenize(t, "word") if w.startswith("zq")) for t in texts]
    assert all(unique[i] in vocab for i in split["train"])
    assert not any(unique[i] in vocab for i in split["val"] + split["test"])  # -> <unk>
    assert read_json(run_dir / "results.json")["metrics"]["accuracy"] >= 0.8


def test_predict_texts_writes_one_row_per_input(text_run, tmp_path):
    run_dir, _ = text_run
    new = tmp_path / "new.csv"
    new.write_text('text,id\n"A superb film, really nice.",1\n"Awful and dull.",2\n'
                   'never seen words,3\n')
    out = tmp_path / "pred.csv"
    rc, stdout, err = cli("predict", run_dir, "--input", new, "--output", out)
    assert rc == 0, err
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 3 and list(rows[0]) == ["prediction", "prob_0", "prob_1"]
    assert [r["prediction"] for r in rows[:2]] == ["1", "0"]
    (tmp_path / "bad.csv").write_text("review\nhello\n")
    rc, _, err = cli("predict", run_dir, "--input", tmp_path / "bad.csv", "--output",
                     tmp_path / "x.csv")
    assert rc == 1
    assert one_error_line(err) == "error: column 'text' not found; columns are: review"


# --------------------------------------------------------------------------- digits
@pytest.mark.parametrize("model, bar", [("cnn", 0.9), ("lstm", 0.75)])
def test_digits_train_then_evaluate_reproduces_the_test_metrics(model, bar, tmp_path):
    run_dir = tmp_path / model
    rc, out, err = cli("train", "--data", "digits", "--model", model, "--epochs", 2,
                       "--out", run_dir, "--no-progress")
    assert rc == 0, err
    results = read_json(run_dir / "results.json")["metrics"]
    assert results["accuracy"] >= bar  # after 2 epochs; the defaults reach 0.97+ (README)
    rc, out, err = cli("evaluate", run_dir, "--json")
    assert rc == 0, err
    assert json.loads(out)["metrics"] == results  # bit-exact: same loss, same confusion


@pytest.mark.parametrize("model, size", [("cnn", ("--channels", "8,16")),
                                         ("lstm", ("--hidden-size", "16"))])
def test_predict_a_csv_of_digits_pixels_agrees_with_the_test_metrics(model, size, tmp_path):
    run_dir = tmp_path / model
    rc, _, err = cli("train", "--data", "digits", "--model", model, *size, "--epochs", 2,
                     "--out", run_dir, "--no-progress")
    assert rc == 0, err
    digits = load_builtin("digits")
    test_rows = np.array(read_json(run_dir / "split.json")["test"])
    truth = digits["target"][test_rows].astype(int)
    pixels = [c for c in digits.columns if c != "target"]
    assert len(pixels) == 64
    table = digits.take(test_rows)
    write_csv(Table({c: table[c] for c in pixels}), tmp_path / "pixels.csv")  # no labels
    out = tmp_path / "pred.csv"
    rc, _, err = cli("predict", run_dir, "--input", tmp_path / "pixels.csv", "--output", out)
    assert rc == 0, err
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == len(test_rows) > 0  # one prediction per pixel row, in order
    assert list(rows[0]) == ["prediction"] + [f"prob_{k}" for k in range(10)]
    predicted = np.array([int(r["prediction"]) for r in rows])
    assert set(predicted) <= set(range(10))
    probs = np.array([[float(r[f"prob_{k}"]) for k in range(10)] for r in rows])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(probs.argmax(axis=1), predicted)
    # The same rows through the evaluate path (the test metrics of the run): every
    # (true, predicted) pair is counted the same, so the predictions are the same.
    metrics = read_json(run_dir / "results.json")["metrics"]
    confusion = np.zeros((10, 10), int)
    np.add.at(confusion, (truth, predicted), 1)
    np.testing.assert_array_equal(confusion, np.array(metrics["confusion_matrix"]))
    assert np.mean(predicted == truth) == metrics["accuracy"]
    assert metrics["accuracy"] > 0.3  # well above chance (0.1): the model learned something


def test_resume_continues_a_recurrent_run_exactly(tmp_path):
    common = ("--data", "digits", "--model", "gru", "--hidden-size", 16, "--patience", 0,
              "--no-progress")
    rc, _, err = cli("train", *common, "--epochs", 3, "--out", tmp_path / "straight")
    assert rc == 0, err
    rc, _, err = cli("train", *common, "--epochs", 2, "--out", tmp_path / "resumed")
    assert rc == 0, err
    rc, _, err = cli("train", "--resume", tmp_path / "resumed", "--epochs", 3, "--no-progress")
    assert rc == 0, err
    a, _ = load_tensors(tmp_path / "straight" / "last.safetensors")
    b, _ = load_tensors(tmp_path / "resumed" / "last.safetensors")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


# --------------------------------------------------------------------------- sequences
def test_numeric_sequence_csv(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 4, 3))  # 4 steps of 3 features
    y = (x[:, -1, 0] > 0).astype(int)
    path = tmp_path / "seq.csv"
    names = [f"t{t}_f{f}" for t in range(4) for f in range(3)]
    rows = [",".join(map(str, [*x[i].ravel(), y[i]])) for i in range(60)]
    path.write_text(",".join(names + ["y"]) + "\n" + "\n".join(rows) + "\n")
    rc, _, err = cli("train", "--data", path, "--target", "y", "--model", "gru", "--seq-len", 4,
                     "--epochs", 2, "--out", tmp_path / "run", "--no-progress")
    assert rc == 0, err
    assert read_json(tmp_path / "run" / "inputs.json")["input_size"] == 3
    assert read_json(tmp_path / "run" / "config.json")["model"]["config"]["input_size"] == 3
    rc, _, err = cli("predict", tmp_path / "run", "--input", path, "--output", tmp_path / "p.csv")
    assert rc == 0, err
    assert len(list(csv.DictReader((tmp_path / "p.csv").open()))) == 60
    rc, _, err = cli("train", "--data", path, "--target", "y", "--model", "gru", "--seq-len", 5,
                     "--out", tmp_path / "bad", "--no-progress")
    assert rc == 1
    assert "the 12 feature columns do not split into --seq-len 5 steps" in one_error_line(err)
    assert not (tmp_path / "bad").exists()


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize("args, rc, message", [
    (("--data", "digits", "--model", "lstm", "--channels", "8"), 2,
     "error: --channels does not apply to --model lstm"),
    (("--data", "digits", "--model", "cnn", "--image-size", "16"), 2,
     "error: options for image folders only (digits images are fixed): --image-size"),
    (("--data", "iris", "--model", "cnn"), 2,
     "error: a CNN needs images: a folder with one subfolder per class or digits; got 'iris'"),
    (("--data", "iris", "--model", "lstm", "--tokenizer", "char"), 2,
     "error: options for --text-column only: --tokenizer"),
    (("--data", "iris", "--pooling", "mean"), 2,
     "error: --pooling does not apply to --model mlp; choose --model cnn, rnn, lstm or gru"),
    (("--data", "diabetes", "--model", "lstm"), 2,
     "error: target 'target' holds continuous values, but the cnn/rnn models train "
     "classifiers; use --model mlp for regression"),
])
def test_bad_options_get_one_clear_line(args, rc, message, tmp_path):
    got_rc, _, err = cli("train", *args, "--out", tmp_path / "run", "--no-progress")
    assert got_rc == rc
    assert one_error_line(err) == message
    assert not (tmp_path / "run").exists()


def test_a_missing_text_column_lists_the_columns(text_csv, tmp_path):
    rc, _, err = cli("train", "--data", text_csv, "--text-column", "body", "--target", "label",
                     "--out", tmp_path / "run", "--no-progress")
    assert rc == 1
    assert one_error_line(err) == ("error: column 'body' not found; columns are: text, label, "
                                   "source")


def test_an_id_like_target_is_refused_before_training(tmp_path):
    path = tmp_path / "seq.csv"
    path.write_text("t0,t1,y\n" + "".join(f"{i % 7},{i % 5},{i}\n" for i in range(50)))
    rc, _, err = cli("train", "--data", path, "--target", "y", "--model", "gru",
                     "--out", tmp_path / "run", "--no-progress")
    assert rc == 1
    assert one_error_line(err) == (
        "error: target 'y' has 50 classes for 50 rows and 50 of them have fewer than 3 rows "
        "(50 have a single row): too few rows per class to split into train/validation/test "
        "rows; if 'y' is a continuous value, use --model mlp --task regression")
    assert not (tmp_path / "run").exists()
