"""The ``micronets`` command line: gen, info (+ boards), train, through click's CliRunner and as
real subprocesses; every error path exits non-zero with one ``Error:`` line and writes nothing.

Each real-process run (paying the TensorFlow import) starts when the first test that needs it
asks, so under pytest-xdist no worker starts runs that another worker's tests check.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

import micronets
from micronets.cli import ARCHS, BOARDS, board_verdict, main

try:  # the compiler is a separate piece of the project; without it only the non-compiling tests run
    from micronets.compiler import compile_model

    HAVE_COMPILER = True
except ImportError:  # pragma: no cover - only while the compiler is missing
    HAVE_COMPILER = False

needs_compiler = pytest.mark.skipif(not HAVE_COMPILER, reason="micronets.compiler is not available")

CLASSES = ("circle", "hstripes", "vstripes")
SMALL = {  # small inputs keep every arch fast; pico keeps its default 96x96x1
    "pico": None, "nano": "32x32x1", "micro": "32x32x1", "milli": "32x32x1", "base": "32x32x1",
    "phinet-2m": "32x32x3", "phinet-5m": "32x32x3", "phinet-10m": "32x32x3", "phinet-20m": "32x32x3",
}


# ---------------------------------------------------------------------------- helpers
def make_image_folder(root, classes=CLASSES, per_class=12, size=24, seed=0):
    """Distinct simple patterns (disc, horizontal stripes, vertical stripes) with noise."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    patterns = {
        "circle": (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 3) ** 2,
        "hstripes": (yy // 3) % 2 == 0,
        "vstripes": (xx // 3) % 2 == 0,
    }
    formats = (".png", ".bmp", ".jpg")
    for k, name in enumerate(classes):
        os.makedirs(os.path.join(root, name), exist_ok=True)
        for i in range(per_class):
            img = rng.integers(0, 50, (size, size)).astype(np.uint8)
            img[patterns[name] if name in patterns else (xx + yy) % (k + 2) == 0] = 230
            ext = formats[i % len(formats)]
            Image.fromarray(img).save(os.path.join(root, name, f"{i:02d}{ext}"))
    return str(root)


def run_cli(*args):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return result


def assert_one_line_error(exit_code, stderr, *fragments):
    assert exit_code != 0
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one error line, got: {stderr!r}"
    assert lines[0].startswith("Error: "), lines[0]
    assert "Traceback" not in stderr
    for fragment in fragments:
        assert fragment.lower() in lines[0].lower(), lines[0]


def api_summary(net, classname=None):
    net.build()
    summary = compile_model(net.model, classname=classname or net.arch_name, arch=net.describe()).summary()
    return json.loads(json.dumps(summary))


# ---------------------------------------------------------------------------- background subprocesses
@pytest.fixture(scope="module")
def subprocs(tmp_path_factory):
    """Real-process runs, started on first request; each test waits for the ones it checks."""
    root = tmp_path_factory.mktemp("subprocess")
    data = make_image_folder(root / "data")
    cli = [sys.executable, "-m", "micronets.cli"]
    script = os.path.join(os.path.dirname(sys.executable), "micronets")
    jobs = {
        "version": [script, "--version"] if os.path.exists(script) else cli + ["--version"],
        "boards": cli + ["boards"],
        "bad_input": cli + ["gen", "--arch", "pico", "--input", "96x96", "-o", str(root / "bad.h")],
        "unknown_arch": cli + ["info", "--arch", "resnet50"],
    }
    if HAVE_COMPILER:
        jobs.update({
            "gen": cli + ["gen", "--arch", "nano", "--input", "32x32x1", "--name", "Nano", "-o", str(root / "nano.h")],
            "info": cli + ["info", "--arch", "pico", "--input", "32x32x1", "--json", "--board", "stm32f446re"],
            "train": cli + ["train", "--arch", "pico", "--data", data, "--input", "24x24x1", "--epochs", "3",
                            "--no-plots", "-o", str(root / "train.h")],
            "missing_weights": cli + ["gen", "--arch", "pico", "--weights", str(root / "nope.weights.h5"),
                                      "-o", str(root / "w.h")],
        })
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    procs = {}

    def start(name):
        if name not in procs:
            out = open(root / f"{name}.out", "w+")
            err = open(root / f"{name}.err", "w+")
            procs[name] = (subprocess.Popen(jobs[name], stdout=out, stderr=err, env=env, cwd=str(root)), out, err)

    class Runs:
        path = root

        def start(self, *names):
            for name in names:
                start(name)

        def result(self, name, timeout=240):
            start(name)
            proc, out, err = procs[name]
            proc.wait(timeout=timeout)
            out.seek(0)
            err.seek(0)
            return proc.returncode, out.read(), err.read()

    yield Runs()
    for proc, out, err in procs.values():
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        out.close()
        err.close()


# ---------------------------------------------------------------------------- help and version
def test_help_lists_commands_and_every_command_has_an_example():
    result = run_cli("--help")
    assert result.exit_code == 0
    for command in ("gen", "info", "train", "eval", "boards"):
        assert command in result.stdout
        sub = run_cli(command, "--help")
        assert sub.exit_code == 0
        assert "Example" in sub.stdout and f"micronets {command}" in sub.stdout
    assert "esp32-s3" in run_cli("info", "--help").stdout


def test_version_prints_package_version():
    result = run_cli("--version")
    assert result.exit_code == 0
    assert micronets.__version__ in result.stdout


# ---------------------------------------------------------------------------- gen
@needs_compiler
@pytest.mark.parametrize("arch", ARCHS)
def test_gen_every_arch(arch, tmp_path):
    out = tmp_path / "model.h"
    args = ["gen", "--arch", arch, "-o", out] + (["--input", SMALL[arch]] if SMALL[arch] else [])
    result = run_cli(*args)
    assert result.exit_code == 0, result.stderr
    header = out.read_text()
    assert "#ifndef" in header and "numInputs" in header
    for label in ("MACs", "Parameters", "Weights (flash)", "Arena (RAM)"):
        assert label in result.stdout
    assert str(out) in result.stdout.replace("\n", "")
    expected_input = SMALL[arch] or "96x96x1"
    assert expected_input in result.stdout


@needs_compiler
def test_gen_options_name_classes_and_matching_api(tmp_path):
    from micronets import MicroMobileNet

    out = tmp_path / "gesture.h"
    result = run_cli("gen", "--arch", "micro", "--classes", "4", "--input", "40x40x3", "--name", "Gesture", "-o", out)
    assert result.exit_code == 0, result.stderr
    header = out.read_text()
    assert "class Gesture" in header
    summary = api_summary(MicroMobileNet(num_classes=4, input_shape=(40, 40, 3)), "Gesture")
    assert f"{summary['macs']:,}" in result.stdout
    assert f"{summary['weights_bytes']:,} B" in result.stdout
    assert f"{summary['arena_bytes']:,} B" in result.stdout


@needs_compiler
def test_gen_with_weights_writes_those_weights(tmp_path):
    from micronets import PicoMobileNet

    net = PicoMobileNet(num_classes=3, input_shape=(32, 32, 1), batch_norm=True)
    net.build()
    rng = np.random.default_rng(1)
    net.model.set_weights([rng.normal(size=w.shape).astype(np.float32) * 0.1 + (w if w.ndim == 1 else 0)
                           for w in net.model.get_weights()])
    weights = tmp_path / "trained.weights.h5"
    net.model.save_weights(str(weights))
    (tmp_path / "api").mkdir()
    (tmp_path / "cli").mkdir()
    net.export(str(tmp_path / "api" / "m.h"))
    # batch-norm is found automatically when neither --batch-norm nor --no-batch-norm is given
    result = run_cli("gen", "--arch", "pico", "--classes", "3", "--input", "32x32x1", "--weights", weights,
                     "-o", tmp_path / "cli" / "m.h")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "cli" / "m.h").read_text() == (tmp_path / "api" / "m.h").read_text()


@needs_compiler
def test_gen_sketch_writes_a_ready_to_build_folder(tmp_path):
    import configparser

    out = tmp_path / "Pico_Demo"
    result = run_cli("gen", "--arch", "pico", "--classes", "3", "--input", "20x20x1", "--name", "Demo",
                     "--sketch", out, "--board", "pico")
    assert result.exit_code == 0, result.stderr
    assert sorted(os.listdir(out)) == ["Pico_Demo.ino", "model.h", "platformio.ini", "sample_image.h"]
    assert "Wrote sketch" in result.stdout and "emulated in software" in result.stdout  # the RP2040 has no FPU
    header = (out / "model.h").read_text()
    assert "class Demo" in header and 'classNames[3]' in header and '"2",' in header
    assert "Demo::classNames[cls]" in (out / "Pico_Demo.ino").read_text()
    cfg = configparser.ConfigParser()
    cfg.read(out / "platformio.ini")
    assert cfg["env:pico"]["platform"] == "raspberrypi" and cfg["platformio"]["default_envs"] == "pico"
    assert "sample_image[400]" in (out / "sample_image.h").read_text()


@needs_compiler
def test_gen_sketch_errors_are_one_line_and_write_nothing(tmp_path):
    cases = [
        (["--sketch", tmp_path / "Sk", "--board", "uno"], "unknown board 'uno'"),
        (["--sketch", tmp_path / "bad name"], "not a valid Arduino sketch name"),
        (["--sketch", tmp_path / "Sk", "-o", tmp_path / "m.h"], "either -o or --sketch"),
        (["--board", "pico"], "--board goes with --sketch"),
        (["--sketch", tmp_path / "missing" / "Sk"], "does not exist"),
    ]
    for extra, message in cases:
        result = run_cli("gen", "--arch", "pico", "--input", "16x16x1", *extra)
        assert_one_line_error(result.exit_code, result.stderr, message)
    assert os.listdir(tmp_path) == []
    (tmp_path / "Sk").mkdir()
    (tmp_path / "Sk" / "model.h").write_text("// my hand-written model\n")
    result = run_cli("gen", "--arch", "pico", "--input", "16x16x1", "--sketch", tmp_path / "Sk")
    assert_one_line_error(result.exit_code, result.stderr, "was not written by micronets")
    assert os.listdir(tmp_path / "Sk") == ["model.h"]


def _calibration(path, shape=(16, 16, 1), n=20):
    np.save(path, np.random.default_rng(0).uniform(0, 1, (n, *shape)).astype(np.float32))
    return path


@needs_compiler
def test_gen_int8_sketch_from_calibration_and_from_tflite(tmp_path):
    """--int8 --calibration and a .tflite (as the argument or as --arch) both write an int8 sketch;
    on the FPU-less RP2040 the note says int8 is the right choice instead of the float warning."""
    import configparser

    from micronets.compiler.int8 import quantize_keras

    cal = _calibration(tmp_path / "cal.npy")
    out = tmp_path / "Pico8"
    result = run_cli("gen", "--arch", "pico", "--classes", "3", "--input", "16x16x1", "--int8", "--calibration", cal,
                     "--sketch", out, "--board", "pico")
    assert result.exit_code == 0, result.stderr
    assert sorted(os.listdir(out)) == ["Pico8.ino", "model.h", "platformio.ini", "sample_image.h"]
    assert "Wrote sketch" in result.stdout and "(int8)" in result.stdout
    assert "int8 is the right choice" in result.stdout and "emulated in software" not in result.stdout
    header = (out / "model.h").read_text()
    assert "Arithmetic   : int8" in header and "class PicoMobileNet" in header and '"2",' in header
    assert "sample_image[256]" in (out / "sample_image.h").read_text()

    net = micronets.PicoMobileNet(num_classes=3, input_shape=(16, 16, 1))
    net.build()
    model_file = tmp_path / "pico.tflite"
    model_file.write_bytes(quantize_keras(net.model, np.load(cal)))
    for how, args in (("T8", [model_file]), ("A8", ["--arch", model_file])):
        result = run_cli("gen", *args, "--name", "Tiny8", "--sketch", tmp_path / how, "--board", "nucleo_f446re")
        assert result.exit_code == 0, result.stderr
        assert "Note:" not in result.stdout  # a Cortex-M4F: nothing to say
        assert "class Tiny8" in (tmp_path / how / "model.h").read_text()
        assert "Tiny8::classNames[cls]" in (tmp_path / how / f"{how}.ino").read_text()
        cfg = configparser.ConfigParser()
        cfg.read(tmp_path / how / "platformio.ini")
        assert cfg["platformio"]["default_envs"] == "nucleo_f446re"
    net.class_names = ["ant", "bee", "cow"]  # --weights: a saved net's class names reach classNames[]
    saved = net.save(str(tmp_path / "pico.keras"))
    result = run_cli("gen", "--arch", "pico", "--weights", saved, "--int8", "--calibration", cal, "--sketch",
                     tmp_path / "W8")
    assert result.exit_code == 0, result.stderr
    header = (tmp_path / "W8" / "model.h").read_text()
    assert "Arithmetic   : int8" in header and '"bee",' in header
    result = run_cli("gen", "--arch", "pico", "--classes", "3", "--input", "16x16x1", "--sketch", tmp_path / "F",
                     "--board", "pico")
    assert result.exit_code == 0 and "emulated in software" in result.stdout and "--int8" in result.stdout


@needs_compiler
def test_gen_int8_sketch_errors_are_one_line_and_write_nothing(tmp_path):
    import keras

    from micronets.compiler.int8 import quantize_keras

    cal = _calibration(tmp_path / "cal.npy")
    wrong = _calibration(tmp_path / "wrong.npy", shape=(12, 12, 1))
    inp = keras.Input((8,))
    flat = quantize_keras(keras.Model(inp, keras.layers.Dense(3)(inp)), np.random.default_rng(0).uniform(0, 1, (20, 8)))
    (tmp_path / "flat.tflite").write_bytes(flat)
    before = sorted(os.listdir(tmp_path))
    pico = ["--arch", "pico", "--input", "16x16x1"]
    cases = [
        ([*pico, "--int8"], "--int8 needs --calibration"),
        ([tmp_path / "flat.tflite", "--calibration", cal], "a .tflite file is already quantised"),
        ([tmp_path / "missing.tflite"], "not found"),
        ([*pico, "--int8", "--calibration", wrong], "calibration has shape (20, 12, 12, 1)"),
        ([tmp_path / "flat.tflite"], "one H x W x C image frame"),
        ([tmp_path / "flat.tflite", "--board", "uno"], "unknown board 'uno'"),
        ([tmp_path / "cal.npy"], "cal.npy is not a readable .tflite"),
    ]
    for extra, message in cases:
        result = run_cli("gen", *extra, "--sketch", tmp_path / "Sk")
        assert_one_line_error(result.exit_code, result.stderr, message)
        assert sorted(os.listdir(tmp_path)) == before, extra


@needs_compiler
def test_gen_from_saved_model_files(tmp_path):
    import keras
    from micronets import PicoMobileNet

    net = PicoMobileNet(num_classes=5, input_shape=(28, 28, 1))
    net.build()
    saved = net.save(str(tmp_path / "pico.keras"))
    result = run_cli("gen", "--arch", saved, "-o", tmp_path / "from_micronets.h")
    assert result.exit_code == 0, result.stderr
    assert "class PicoMobileNet" in (tmp_path / "from_micronets.h").read_text()
    assert "28x28x1" in result.stdout

    inputs = keras.Input((16, 16, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3, activation="softmax")(x)
    plain = tmp_path / "plain.keras"
    keras.Model(inputs, outputs, name="tiny").save(str(plain))
    result = run_cli("gen", "--arch", plain, "--name", "Tiny", "-o", tmp_path / "plain.h")
    assert result.exit_code == 0, result.stderr
    assert "class Tiny" in (tmp_path / "plain.h").read_text()

    result = run_cli("gen", "--arch", plain, "--input", "32x32x1", "-o", tmp_path / "no.h")
    assert_one_line_error(result.exit_code, result.stderr, "16x16x1")
    assert not (tmp_path / "no.h").exists()

    # the file as gen's and info's MODEL argument, as verify takes it, means --arch FILE
    (tmp_path / "again").mkdir()
    result = run_cli("gen", plain, "--name", "Tiny", "-o", tmp_path / "again" / "plain.h")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "again" / "plain.h").read_text() == (tmp_path / "plain.h").read_text()
    result = run_cli("info", plain)
    assert result.exit_code == 0, result.stderr
    assert "conv2d" in result.stdout and "Arena" in result.stdout
    result = run_cli("gen", "--arch", "pico", plain, "-o", tmp_path / "twice.h")
    assert_one_line_error(result.exit_code, result.stderr, "give the model once")
    assert not (tmp_path / "twice.h").exists()


@needs_compiler
def test_gen_and_info_take_sequence_and_vector_models(tmp_path):
    """gen and info refused every saved model that does not take images ("micronets needs an
    image input (H, W, C)"), though the compiler takes sequences and vectors (a sensor window, an
    autoencoder's features, token ids). Their headers now match Keras and info reports their
    input; a folder of images as calibration, and a sketch (it feeds a camera frame), are refused
    naming the input, writing nothing."""
    import keras

    from micronets import host

    L = keras.layers
    i = keras.Input((32, 3))
    window = keras.Model(i, L.Dense(4, activation="softmax")(L.GlobalAveragePooling1D()(L.Conv1D(8, 5, activation="relu")(i))))
    i = keras.Input((20,))
    features = keras.Model(i, L.Dense(20)(L.Dense(8, activation="relu")(i)))
    images = make_image_folder(tmp_path / "images")
    for name, model in (("window", window), ("features", features)):
        path = tmp_path / f"{name}.keras"
        model.save(str(path))
        result = run_cli("gen", path, "-o", tmp_path / f"{name}.h")
        assert result.exit_code == 0, result.stderr
        exe = host.build(str(tmp_path / f"{name}.h"), "Net", out_dir=str(tmp_path))
        x = np.random.default_rng(1).normal(size=(6,) + model.input_shape[1:]).astype(np.float32)
        ref = np.asarray(model(x)).reshape(6, -1)
        assert np.abs(host.run(exe, x, ref.shape[1]) - ref).max() <= 1e-5 * max(1.0, float(np.abs(ref).max())), name
        result = run_cli("info", path, "--json")
        assert result.exit_code == 0, result.stderr
        assert json.loads(result.stdout)["input_shape"] == list(model.input_shape[1:])
        result = run_cli("gen", path, "--int8", "--calibration", images, "-o", tmp_path / f"{name}8.h")
        assert_one_line_error(result.exit_code, result.stderr, "a folder of images fits only an image model")
        result = run_cli("gen", path, "--sketch", tmp_path / f"{name}_sketch")
        assert_one_line_error(result.exit_code, result.stderr, "H x W x C image frame")
        assert not (tmp_path / f"{name}8.h").exists() and not (tmp_path / f"{name}_sketch").exists()


@needs_compiler
def test_models_of_several_inputs_or_outputs(tmp_path):
    """Every command on a saved model of two inputs (an image and a vector of features) or two
    outputs stopped at a TypeError ("int() argument must be ... not 'tuple'") before compiling.
    Now: info and gen work; verify runs on random inputs or an .npz of one array per input
    (named as the model's inputs, or np.savez's arr_0, arr_1), and names the array that does not
    fit; eval scores a model's first output (the header's argmax) and refuses two inputs; a sketch
    (one image input) is refused naming the inputs, writing nothing. int8 takes its calibration as
    such an .npz, and refuses one array (naming what it needs) writing nothing."""
    import keras

    from micronets import host

    L = keras.layers
    image, meta = keras.Input((8, 8, 3), name="image"), keras.Input((5,), name="meta")
    pooled = L.GlobalAveragePooling2D()(L.Conv2D(4, 3, activation="relu")(image))
    both = L.Concatenate()([pooled, L.Dense(4, activation="tanh")(meta)])
    two_in = keras.Model([image, meta], L.Dense(3, activation="softmax")(both))
    two_out = keras.Model(image, [L.Dense(3, activation="softmax")(pooled), L.Dense(2)(pooled)])
    paths = {}
    for name, model in (("two_in", two_in), ("two_out", two_out)):
        paths[name] = tmp_path / f"{name}.keras"
        model.save(str(paths[name]))
        result = run_cli("gen", paths[name], "-o", tmp_path / f"{name}.h")
        assert result.exit_code == 0, result.stderr
    rng = np.random.default_rng(0)
    x = [rng.random((5, 8, 8, 3), dtype=np.float32), rng.normal(size=(5, 5)).astype(np.float32)]
    ref = np.asarray(two_in(x))
    got = host.run_header(str(tmp_path / "two_in.h"), "Net", x)
    assert np.abs(got - ref).max() <= 1e-5

    result = run_cli("info", paths["two_in"])
    assert result.exit_code == 0, result.stderr
    assert "Inputs" in result.stdout and "8x8x3, 5" in result.stdout
    data = json.loads(run_cli("info", paths["two_in"], "--json").stdout)
    assert data["input_shapes"] == [[8, 8, 3], [5]] and data["input_shape"] == [8, 8, 3]
    assert json.loads(run_cli("info", paths["two_out"], "--json").stdout)["output_shapes"] == [[3], [2]]

    for archive in ({"image": x[0], "meta": x[1]}, {"arr_0": x[0], "arr_1": x[1]}, None):
        args = []
        if archive is not None:
            np.savez(tmp_path / "x.npz", **archive)
            args = ["--inputs", tmp_path / "x.npz"]
        result = run_cli("verify", paths["two_in"], *args)
        assert result.exit_code == 0, result.output
        assert f"on {8 if archive is None else 5} inputs" in result.output
    np.savez(tmp_path / "bad.npz", image=x[0], meta=x[1][:, :4])
    result = run_cli("verify", paths["two_in"], "--inputs", tmp_path / "bad.npz")
    assert_one_line_error(result.exit_code, result.stderr, "array meta of shape (5, 4)", "inputs of shape 5")
    np.savez(tmp_path / "other.npz", first=x[0], second=x[1])
    result = run_cli("verify", paths["two_in"], "--inputs", tmp_path / "other.npz")
    assert_one_line_error(result.exit_code, result.stderr, "named image, meta", "it holds first, second")
    np.save(tmp_path / "one.npy", x[0])
    result = run_cli("verify", paths["two_in"], "--inputs", tmp_path / "one.npy")
    assert_one_line_error(result.exit_code, result.stderr, "one array per input")

    images = make_image_folder(tmp_path / "images", size=8)
    result = run_cli("eval", paths["two_out"], "--data", images)  # random weights: a model near chance, said so
    assert "near chance" in result.stderr, result.stderr
    assert "same class as Keras on 100.0% of images" in result.stdout, result.stdout  # the header's first output
    result = run_cli("eval", paths["two_in"], "--data", images)
    assert_one_line_error(result.exit_code, result.stderr, "takes 2 inputs (8x8x3, 5)")
    result = run_cli("gen", paths["two_in"], "--sketch", tmp_path / "sketch")
    assert_one_line_error(result.exit_code, result.stderr, "takes 2 inputs (8x8x3, 5)")
    np.save(tmp_path / "calib.npy", rng.random((200, 8, 8, 3), dtype=np.float32))
    result = run_cli("gen", paths["two_in"], "--int8", "--calibration", tmp_path / "calib.npy", "-o", tmp_path / "q.h")
    assert_one_line_error(result.exit_code, result.stderr, "takes an .npz of one array per input")
    assert not (tmp_path / "sketch").exists() and not (tmp_path / "q.h").exists()
    np.savez(tmp_path / "calib.npz", image=rng.random((40, 8, 8, 3), dtype=np.float32),
             meta=rng.normal(size=(40, 5)).astype(np.float32))
    result = run_cli("gen", paths["two_in"], "--int8", "--calibration", tmp_path / "calib.npz", "-o", tmp_path / "q.h")
    assert result.exit_code == 0, result.stderr
    text = (tmp_path / "q.h").read_text()
    assert "predict(const int8_t* input, const int8_t* input1)" in text and "predict(const uint8_t*" not in text


# ---------------------------------------------------------------------------- info
@needs_compiler
def test_info_text_table():
    from micronets import PicoMobileNet

    result = run_cli("info", "--arch", "pico", "--input", "48x48x1", "--classes", "6")
    assert result.exit_code == 0, result.stderr
    summary = api_summary(PicoMobileNet(num_classes=6, input_shape=(48, 48, 1)))
    text = result.stdout
    for layer in summary["layers"]:
        assert layer["name"] in text
    assert "total" in text and "arena offset" in text
    assert f"{summary['macs']:,}" in text and f"{summary['params']:,}" in text
    assert f"{summary['arena_bytes']:,}" in text


@needs_compiler
@pytest.mark.parametrize("arch,shape", [("milli", "32x32x1"), ("phinet-2m", "40x40x3")])
def test_info_json_equals_python_api(arch, shape):
    from micronets import MilliMobileNet, PhiNet

    result = run_cli("info", "--arch", arch, "--input", shape, "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)  # exactly one JSON object on stdout
    for key in ("arch", "input_shape", "num_classes", "macs", "params", "weights_bytes", "arena_bytes", "layers"):
        assert key in data
    for layer in data["layers"]:
        for key in ("name", "op", "output_shape", "macs", "params", "arena_offset"):
            assert key in layer
    h, w, c = (int(d) for d in shape.split("x"))
    if arch == "milli":
        net = MilliMobileNet(input_shape=(h, w, c))
    else:
        hp = PhiNet.preset("2m").hyperparameters()
        net = PhiNet(**dict(hp, input_shape=(h, w, c)))
    assert data == api_summary(net)


@needs_compiler
def test_board_verdicts():
    fits = run_cli("info", "--arch", "pico", "--input", "32x32x1", "--board", "stm32f446re", "--json")
    assert fits.exit_code == 0, fits.stderr
    data = json.loads(fits.stdout)
    board = data["board"]
    assert board["fits"] is True and board["fits_ram"] and board["fits_flash"]
    assert board["ram_needed"] == data["object_bytes"] + 32 * 32 * 1
    assert board["ram_margin"] == 128 * 1024 - board["ram_needed"]
    assert board["flash_margin"] == 512 * 1024 - data["weights_bytes"] - BOARDS["stm32f446re"].code_allowance
    assert board == board_verdict(data, BOARDS["stm32f446re"])

    text = run_cli("info", "--arch", "pico", "--input", "32x32x1", "--board", "stm32f446re").stdout
    assert "the model fits" in text and f"margin {board['ram_margin']:,} bytes" in text

    big = run_cli("info", "--arch", "base", "--input", "320x320x3", "--board", "STM32F446RE")
    assert big.exit_code == 0, big.stderr
    assert "does NOT fit" in big.stdout and "short by" in big.stdout
    big_json = json.loads(run_cli("info", "--arch", "base", "--input", "320x320x3", "--board", "stm32f446re",
                                  "--json").stdout)
    assert big_json["board"]["fits"] is False and big_json["board"]["ram_margin"] < 0

    h7 = json.loads(run_cli("info", "--arch", "phinet-2m", "--board", "stm32h743", "--json").stdout)["board"]
    assert h7["ram_available"] == 512 * 1024 and h7["flash_available"] == 2 * 1024 * 1024
    esp = json.loads(run_cli("info", "--arch", "pico", "--board", "esp32-s3", "--json").stdout)["board"]
    assert esp["ram_available"] == 320 * 1024 and esp["flash_available"] == 8 * 1024 * 1024 and esp["fits"]
    assert esp["float_hardware"] is True and esp["note"] is None


def test_boards_answer_to_their_platformio_names_and_warn_without_an_fpu():
    """platformio.ini's env names and board ids name the same boards as the chip names."""
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "platformio.ini"))
    for section in (s for s in cfg.sections() if s.startswith("env:")):
        for name in (section[4:], cfg[section]["board"]):
            result = run_cli("info", "--arch", "pico", "--input", "32x32x1", "--board", name, "--json")
            assert result.exit_code == 0, (name, result.stderr)
    f446 = json.loads(run_cli("info", "--arch", "pico", "--input", "32x32x1", "--board", "nucleo_f446re",
                              "--json").stdout)["board"]
    assert f446["board"] == "stm32f446re"
    rp = run_cli("info", "--arch", "pico", "--input", "32x32x1", "--board", "pico")
    assert rp.exit_code == 0 and "software" in rp.stdout and "no floating-point unit" in rp.stdout


def test_board_note_for_an_int8_model_without_an_fpu():
    """An int8 model on an FPU-less board is the right choice (no 'emulated in software' warning);
    a float one gets the warning and the pointer to int8; boards with an FPU get no note."""
    from micronets.boards import NO_FPU_INT8_NOTE, NO_FPU_NOTE

    summary = {"input_shape": [16, 16, 1], "object_bytes": 100, "weights_bytes": 1000}
    rp2040, f446 = BOARDS["rp2040"], BOARDS["stm32f446re"]
    assert board_verdict(summary, rp2040)["note"] == NO_FPU_NOTE and "--int8" in NO_FPU_NOTE
    assert board_verdict({**summary, "quantize": "int8"}, rp2040)["note"] == NO_FPU_INT8_NOTE
    assert "right choice" in NO_FPU_INT8_NOTE and "emulated" not in NO_FPU_INT8_NOTE
    assert board_verdict({**summary, "quantize": "int8"}, f446)["note"] is None


def test_board_lists():
    for args in (("boards",), ("info", "--board", "list")):
        result = run_cli(*args)
        assert result.exit_code == 0, result.stderr
        for key in ("esp32-s3", "stm32f446re", "stm32h743"):
            assert key in result.stdout
        assert "320 KB" in result.stdout and "AXI" in result.stdout
    data = json.loads(run_cli("boards", "--json").stdout)
    assert data["stm32f446re"]["ram_bytes"] == 128 * 1024
    assert data["esp32-s3"]["flash_bytes"] == 8 * 1024 * 1024


def test_board_verdict_arithmetic():
    summary = {"input_shape": [10, 10, 3], "object_bytes": 1000, "weights_bytes": 5000}
    board = BOARDS["stm32f446re"]
    v = board_verdict(summary, board)
    assert v["ram_needed"] == 1300 and v["ram_margin"] == board.ram_bytes - 1300
    assert v["flash_needed"] == 5000 + board.code_allowance and v["fits"]
    v = board_verdict(dict(summary, object_bytes=board.ram_bytes), board)
    assert not v["fits_ram"] and v["ram_margin"] == -300 and v["fits_flash"] and not v["fits"]


# ---------------------------------------------------------------------------- train
def test_load_image_folder(tmp_path):
    from micronets.data import load_image_folder

    root = make_image_folder(tmp_path / "data", per_class=4)
    (tmp_path / "data" / "circle" / "notes.txt").write_text("not an image, skipped")
    x, y, names = load_image_folder(root, (16, 20, 3))
    assert names == sorted(CLASSES)
    assert x.shape == (12, 16, 20, 3) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0 and x.max() > 0.5
    assert list(np.bincount(y)) == [4, 4, 4]
    gray, _, _ = load_image_folder(root, (8, 8, 1))
    assert gray.shape == (12, 8, 8, 1)


@needs_compiler
def test_train_on_image_folder(tmp_path):
    data = make_image_folder(tmp_path / "data", per_class=20)
    out = tmp_path / "trained.h"
    saved = tmp_path / "trained.keras"
    result = run_cli("train", "--arch", "pico", "--data", data, "--input", "24x24x1", "--epochs", "6",
                     "--batch-size", "16", "--lr", "0.01", "--no-plots", "--save", saved, "-o", out)
    assert result.exit_code == 0, result.output
    assert "Test accuracy (Keras):" in result.stdout and "on 9 test images" in result.stdout
    assert "0=circle, 1=hstripes, 2=vstripes" in result.stdout
    assert "3 classes)" in out.read_text()
    card = json.loads((tmp_path / "trained.json").read_text())
    assert card["classes"] == ["circle", "hstripes", "vstripes"]
    # the saved net reloads (class names included) and regenerates the header
    again = run_cli("gen", "--arch", saved, "-o", tmp_path / "again.h")
    assert again.exit_code == 0, again.stderr
    assert "3 classes" in again.stdout
    assert micronets.load(str(saved)).class_names == ["circle", "hstripes", "vstripes"]


def test_train_sketch_arguments_fail_before_training(tmp_path):
    """train --board without --sketch, or a sketch folder Arduino would reject: one line, before
    any training, nothing written (train --int8 --sketch itself: tests/test_train.py)."""
    data = make_image_folder(tmp_path / "data", per_class=2)
    for extra, message in ((["--board", "pico"], "--board goes with --sketch"),
                           (["--sketch", tmp_path / "bad name"], "not a valid Arduino sketch name"),
                           (["--sketch", tmp_path / "Sk", "--board", "uno"], "unknown board 'uno'")):
        bad = run_cli("train", "--arch", "pico", "--data", data, *extra, "-o", tmp_path / "x.h")
        assert_one_line_error(bad.exit_code, bad.stderr, message)
    assert sorted(os.listdir(tmp_path)) == ["data"]


# ---------------------------------------------------------------------------- demo
@needs_compiler
@pytest.mark.skipif(shutil.which("g++") is None, reason="the demo compiles the header with g++")
def test_demo_runs_end_to_end(tmp_path):
    from micronets.demo import main as demo

    out = tmp_path / "demo.h"
    result = CliRunner().invoke(demo, ["--epochs", "1", "--input", "16", "-o", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Held-out test accuracy (Keras):" in result.stdout
    assert "argmax agreement 100.0%" in result.stdout
    assert "class PicoMobileNet" in out.read_text()


# ---------------------------------------------------------------------------- errors
@pytest.fixture(scope="module")
def weight_files(tmp_path_factory):
    """Pico 32x32x1 weights: 10 classes without BatchNorm, and 4 classes with BatchNorm."""
    from micronets import PicoMobileNet

    root = tmp_path_factory.mktemp("weights")
    files = {}
    for key, classes, bn in (("weights", 10, False), ("bnweights", 4, True)):
        net = PicoMobileNet(num_classes=classes, input_shape=(32, 32, 1), batch_norm=bn)
        net.build()
        files[key] = root / f"{key}.weights.h5"
        net.model.save_weights(str(files[key]))
    return files


ERROR_CASES = {
    "unknown arch": (["gen", "--arch", "resnet50"], "unknown architecture"),
    "missing model file": (["gen", "--arch", "nowhere.keras"], "not found"),
    "empty model file": (["gen", "--arch", "{emptyfile}"], "empty"),
    "non-Keras model file": (["gen", "--arch", "{textfile}"], "not a Keras model"),
    "input 96x96": (["gen", "--arch", "pico", "--input", "96x96"], "HxWxC"),
    "input axbxc": (["gen", "--arch", "pico", "--input", "axbxc"], "integers"),
    "input 0x5x1": (["info", "--arch", "pico", "--input", "0x5x1"], "positive"),
    "input too small": (["gen", "--arch", "pico", "--input", "2x2x1"], "at least 3x3"),
    "classes 1": (["gen", "--arch", "pico", "--classes", "1"], "--classes"),
    "missing arch": (["gen"], "--arch"),
    "bad class name": (["gen", "--arch", "pico", "--name", "3d"], "class name"),
    "keyword class name": (["gen", "--arch", "pico", "--input", "32x32x1", "--name", "int"], "keyword"),
    "missing weights": (["gen", "--arch", "pico", "--weights", "{tmp}/absent.weights.h5"], "not found"),
    "weights of another shape": (["gen", "--arch", "pico", "--input", "32x32x1", "--classes", "4",
                                  "--weights", "{weights}"], "cannot load weights"),
    "batch-norm weights into a plain net": (["gen", "--arch", "pico", "--input", "32x32x1", "--classes", "4",
                                             "--no-batch-norm", "--weights", "{bnweights}"], "weight arrays"),
    "unwritable output": (["gen", "--arch", "pico", "-o", "{tmp}/no/such/dir/model.h"], "does not exist"),
    "output is a folder": (["gen", "--arch", "pico", "-o", "{tmp}"], "directory"),
    "unknown board": (["info", "--arch", "pico", "--board", "arduino-uno"], "--board"),
    "no data folder": (["train", "--arch", "pico", "--data", "{tmp}/absent"], "does not exist"),
    "empty data folder": (["train", "--arch", "pico", "--data", "{empty}"], "no class subfolders"),
    "single class": (["train", "--arch", "pico", "--data", "{single}"], "only one class"),
    "unreadable image": (["train", "--arch", "pico", "--data", "{corrupt}", "--input", "16x16x1"], "cannot read image"),
    "class without images": (["train", "--arch", "pico", "--data", "{hollow}"], "has no images"),
    "train 2 channels": (["train", "--arch", "pico", "--data", "{single}", "--input", "16x16x2"], "channels"),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_errors_are_one_line_and_write_nothing(case, tmp_path, request):
    args, fragment = ERROR_CASES[case]
    if not HAVE_COMPILER and case == "keyword class name":
        pytest.skip("needs the compiler")
    empty = tmp_path / "empty"
    empty.mkdir()
    single = tmp_path / "single"
    make_image_folder(single, classes=("circle",), per_class=3)
    corrupt = tmp_path / "corrupt"
    make_image_folder(corrupt, classes=("circle", "hstripes"), per_class=3)
    (corrupt / "hstripes" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    hollow = tmp_path / "hollow"
    make_image_folder(hollow, classes=("circle", "hstripes"), per_class=3)
    (hollow / "vstripes").mkdir()
    (tmp_path / "empty.keras").write_bytes(b"")
    (tmp_path / "text.keras").write_text("just some text")
    values = dict(tmp=tmp_path, empty=empty, single=single, corrupt=corrupt, hollow=hollow,
                  emptyfile=tmp_path / "empty.keras", textfile=tmp_path / "text.keras")
    if any("weights}" in a for a in args):
        values.update(request.getfixturevalue("weight_files"))
    args = [a.format(**values) for a in args]
    out = tmp_path / "out" / "model.h"
    out.parent.mkdir()
    if "-o" not in args and args[0] in ("gen", "train"):
        args += ["-o", str(out)]
    before = set(os.listdir(tmp_path))
    result = CliRunner().invoke(main, args)
    assert_one_line_error(result.exit_code, result.stderr, fragment)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert not out.exists()
    assert os.listdir(out.parent) == []
    assert set(os.listdir(tmp_path)) == before  # no stray temporary files either


# ---------------------------------------------------------------------------- real subprocesses
def test_subprocess_version_help_and_boards(subprocs):
    subprocs.start("version", "boards")
    code, out, err = subprocs.result("version")
    assert code == 0 and micronets.__version__ in out
    code, out, err = subprocs.result("boards")
    assert code == 0 and "stm32f446re" in out and "esp32-s3" in out


def test_subprocess_errors(subprocs):
    subprocs.start("bad_input", "unknown_arch", *(["missing_weights"] if HAVE_COMPILER else []))
    code, out, err = subprocs.result("bad_input")
    assert_one_line_error(code, err, "HxWxC")
    assert not (subprocs.path / "bad.h").exists()
    code, out, err = subprocs.result("unknown_arch")
    assert_one_line_error(code, err, "unknown architecture")
    if HAVE_COMPILER:
        code, out, err = subprocs.result("missing_weights")
        assert_one_line_error(code, err, "weights file not found")
        assert not (subprocs.path / "w.h").exists()


@needs_compiler
def test_subprocess_gen(subprocs):
    code, out, err = subprocs.result("gen")
    assert code == 0, err
    assert err.strip() == ""  # TensorFlow's start-up chatter is kept off the terminal
    assert "class Nano" in (subprocs.path / "nano.h").read_text()
    assert "Arena (RAM)" in out


@needs_compiler
def test_subprocess_info_json(subprocs):
    from micronets import PicoMobileNet

    code, out, err = subprocs.result("info")
    assert code == 0, err
    data = json.loads(out)
    board = data.pop("board")
    assert data == api_summary(PicoMobileNet(input_shape=(32, 32, 1)))
    assert board["fits"] is True and board["board"] == "stm32f446re"


@needs_compiler
def test_subprocess_train(subprocs):
    code, out, err = subprocs.result("train")
    assert code == 0 or (code == 1 and "near chance" in err), err  # 3 epochs on 36 images: either is honest
    assert "Test accuracy (Keras):" in out
    assert "circle" in (subprocs.path / "train.h").read_text()  # the class names array


def test_console_script_installed():
    script = shutil.which("micronets", path=os.path.dirname(sys.executable))
    if script is None:
        pytest.skip("package not installed with its console script")
    assert os.access(script, os.X_OK)
