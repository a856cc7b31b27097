"""Sketch folders (``micronets gen --sketch``), the Arduino/PlatformIO library files, and
cross-compile checks of a generated sketch for every board family with a Debian toolchain.

The sketch's ``.ino`` is compiled against ``tests/arduino_shim`` - a minimal stand-in for the
Arduino core (Serial.begin/print/println with the core's overload set, micros, millis, delay,
setup/loop; printing through stdout) written for these tests, NOT a real Arduino core. So these
checks prove that the sketch, the generated header and the sample image compile and link with
``-Werror`` for each CPU and floating-point ABI, and (on the host and on the emulated Cortex-M4)
that the sketch prints the class Keras predicts (an int8 sketch: the class and probability of the
int8 header's own host build); they do not build against the vendors' Arduino cores (PlatformIO
downloads those, which needs internet access). Tools are Debian packages (gcc-arm-none-eabi
libnewlib-arm-none-eabi, gcc-xtensa-lx106, g++): a missing tool fails these tests.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

import micronets
from micronets import sketch
from micronets.boards import BOARDS, find_board

REPO = Path(__file__).resolve().parents[1]
SHIM = Path(__file__).resolve().parent / "arduino_shim"
WARN = ["-Wall", "-Wextra", "-Werror"]

#: board families the project lists that a Debian cross-compiler builds: name -> (flags, what
#: `readelf -A` must show: CPU architecture and whether floats travel in VFP registers)
ARM_TARGETS = {
    "cortex-m0plus": (["-mcpu=cortex-m0plus", "-mthumb", "-mfloat-abi=soft"], "v6S-M", False),
    "cortex-m4f": (["-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"], "v7E-M", True),
    "cortex-m7-dp": (["-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-d16", "-mfloat-abi=hard"], "v7E-M", True),
    "cortex-m33": (["-mcpu=cortex-m33", "-mthumb", "-mfpu=fpv5-sp-d16", "-mfloat-abi=hard"], "v8-M.mainline", True),
}


def _run(cmd, **kw):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))}\n{proc.stderr}{proc.stdout}"
    return proc


@pytest.fixture(scope="module")
def small_sketch(tmp_path_factory):
    """A sketch of a small PicoMobileNet (24x24x1, 4 classes) for the STM32F446RE, with
    non-trivial weights so that the predicted class depends on the image."""
    import keras

    keras.utils.set_random_seed(3)
    net = micronets.PicoMobileNet(num_classes=4, input_shape=(24, 24, 1))
    net.build()
    rng = np.random.default_rng(3)
    for var in net.model.weights:
        if var.name.split("/")[-1] in ("kernel", "depthwise_kernel", "bias"):
            var.assign(rng.normal(0.0, 0.5, tuple(var.shape)).astype(np.float32))
    directory = tmp_path_factory.mktemp("sk") / "Small_Net-1"
    compiled, paths = sketch.generate_sketch(net.model, directory, classname="Small", arch="small pico",
                                             class_names=["cat", "dog \"quoted\"", "bird", "fish"],
                                             board="nucleo_f446re")
    return net, compiled, directory, paths


NAMES = ["cat", "dog \"quoted\"", "bird", "fish"]


@pytest.fixture(scope="module")
def int8_sketch(small_sketch, tmp_path_factory):
    """The same net quantised to int8 (TFLite's converter, calibrated on 32 handwritten digits at
    the model's input size, scaled to [0, 1] as training data is) as a sketch for the RP2040."""
    net = small_sketch[0]
    calibration = np.stack([sketch.sample_frame((24, 24, 1), i)[0] for i in range(1, 33)]).astype(np.float32) / 255.0
    directory = tmp_path_factory.mktemp("sk8") / "Small8"
    compiled, paths = sketch.generate_sketch(net.model, directory, classname="Small8", arch="small pico int8",
                                             class_names=NAMES, board="pico", quantize="int8",
                                             calibration=calibration)
    return net, compiled, directory, paths


# --------------------------------------------------------------------------- the folder
def test_sketch_folder_has_every_file(small_sketch):
    _, compiled, directory, paths = small_sketch
    assert sorted(p.name for p in paths) == sorted(["Small_Net-1.ino", "model.h", "sample_image.h", "platformio.ini"])
    assert sorted(os.listdir(directory)) == sorted(p.name for p in paths)  # no temporary leftovers
    assert not [p for p in directory.parent.iterdir() if p.name.startswith(".")]
    ino = (directory / "Small_Net-1.ino").read_text()
    assert "net.predict(sample_image)" in ino and "Small::classNames[cls]" in ino
    assert '#include "model.h"' in ino and "class Small" in (directory / "model.h").read_text()
    cfg = configparser.ConfigParser()
    cfg.read(directory / "platformio.ini")
    assert cfg["platformio"]["src_dir"] == "." and cfg["platformio"]["default_envs"] == "nucleo_f446re"
    assert [s for s in cfg.sections() if s.startswith("env:")] == ["env:nucleo_f446re"]
    assert cfg["env:nucleo_f446re"]["board"] == "nucleo_f446re" and cfg["env"]["framework"] == "arduino"
    sample = (directory / "sample_image.h").read_text()
    assert "static const uint8_t sample_image[576]" in sample and "sample_label = -1" in sample


def test_int8_sketch_folder(int8_sketch):
    """An int8 sketch: the same four files, the int8 header (uint8 camera-frame entry point,
    classNames[]), the same sample digit as a float sketch, the chosen board's env."""
    _, compiled, directory, paths = int8_sketch
    assert compiled.quantize == "int8"
    assert sorted(p.name for p in paths) == sorted(["Small8.ino", "model.h", "sample_image.h", "platformio.ini"])
    assert sorted(os.listdir(directory)) == sorted(p.name for p in paths)
    header = (directory / "model.h").read_text()
    assert "Arithmetic   : int8" in header and "predict(const uint8_t* input)" in header
    assert "class Small8 : public micronets_Small8::names<0>" in header and '"dog \\"quoted\\"",' in header
    ino = (directory / "Small8.ino").read_text()
    assert "net.predict(sample_image)" in ino and "Small8::classNames[cls]" in ino and "The model is int8" in ino
    frame, _ = sketch.sample_frame((24, 24, 1))
    assert (directory / "sample_image.h").read_text() == sketch.sample_header(frame, None, _)
    cfg = configparser.ConfigParser()
    cfg.read(directory / "platformio.ini")
    assert [s for s in cfg.sections() if s.startswith("env:")] == ["env:pico"]


def test_every_board_has_a_platformio_env():
    for key, board in BOARDS.items():
        env = sketch.PIO_ENVS[key]
        assert find_board(env.env) is board, env  # the env name is a name --board accepts
        assert env.board in (board.key, *board.aliases), env
    everything = sketch.platformio_ini(sketch.board_envs(None))
    assert everything.count("[env:") == len(BOARDS)


def test_repository_platformio_ini_builds_the_library_example():
    expected = sketch.platformio_ini(sketch.board_envs(None), "examples/Classify", "examples/Classify/Classify.ino")
    assert (REPO / "platformio.ini").read_text() == expected, (
        "platformio.ini is written by micronets.sketch.platformio_ini(board_envs(None), 'examples/Classify', ...)")


def test_sample_frame_is_a_resized_digit():
    from sklearn.datasets import load_digits

    frame, source = sketch.sample_frame((16, 8, 3), index=5)
    assert frame.shape == (16, 8, 3) and frame.dtype == np.uint8 and "digit #5" in source
    digit = np.round(load_digits().images[5] * 255.0 / 16.0).astype(np.uint8)
    np.testing.assert_array_equal(frame[::2, :, 1], digit)  # each row twice, each column once
    np.testing.assert_array_equal(frame[:, :, 0], frame[:, :, 2])


# --------------------------------------------------------------------------- nothing half-written
@pytest.fixture(scope="module")
def tiny_compiled():
    import keras

    inp = keras.Input((4, 4, 1))
    out = keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(inp))
    from micronets.compiler import compile_model

    return compile_model(keras.Model(inp, out), classname="Tiny", class_names=["a", "b", "c"])


def _tiny_sketch(compiled, name):
    frame = np.arange(16, dtype=np.uint8).reshape(4, 4, 1)
    return sketch.render_sketch(compiled, name, frame, 1, "a test ramp")


def test_bad_names_and_folders_write_nothing(tmp_path, tiny_compiled):
    for bad in ("has space", "-dash", "x" * 64, "ümlaut"):
        with pytest.raises(ValueError, match="not a valid Arduino sketch name"):
            sketch.check_sketch_dir(tmp_path / bad)
    with pytest.raises(OSError, match="does not exist"):
        sketch.check_sketch_dir(tmp_path / "missing" / "Sk")
    (tmp_path / "File").write_text("x")
    with pytest.raises(OSError, match="is a file"):
        sketch.check_sketch_dir(tmp_path / "File")
    with pytest.raises(ValueError, match="unknown board 'uno'"):
        sketch.board_envs("uno")
    with pytest.raises(ValueError, match="must be written to a folder named Sk"):
        sketch.write_sketch(_tiny_sketch(tiny_compiled, "Sk"), tmp_path / "Other")
    assert sorted(os.listdir(tmp_path)) == ["File"]


def test_failure_midway_leaves_no_folder(tmp_path, tiny_compiled, monkeypatch):
    from micronets.compiler import export

    calls = []
    real = export.write_atomic

    def failing(path, data, *a, **kw):
        calls.append(path)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real(path, data, *a, **kw)

    monkeypatch.setattr(export, "write_atomic", failing)
    with pytest.raises(OSError, match="cannot write sketch .*Sk: No space left on device"):
        sketch.write_sketch(_tiny_sketch(tiny_compiled, "Sk"), tmp_path / "Sk")
    assert os.listdir(tmp_path) == []  # neither the folder nor its temporary twin


def test_existing_folder_keeps_foreign_files(tmp_path, tiny_compiled):
    target = tmp_path / "Sk"
    sketch.write_sketch(_tiny_sketch(tiny_compiled, "Sk"), target)
    (target / "notes.txt").write_text("mine")
    sketch.write_sketch(_tiny_sketch(tiny_compiled, "Sk"), target)  # regenerating replaces micronets' files
    assert (target / "notes.txt").read_text() == "mine"
    (target / "Sk.ino").write_text("// my own sketch\n")
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    with pytest.raises(OSError, match="Sk.ino exists and was not written by micronets"):
        sketch.write_sketch(_tiny_sketch(tiny_compiled, "Sk"), target)
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before


def test_int8_arguments_are_checked_before_anything_is_written(tmp_path):
    """generate_sketch's int8 arguments: each bad combination is one ValueError naming the cause,
    and no folder appears."""
    import keras

    inp = keras.Input((4, 4, 1))
    model = keras.Model(inp, keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(inp)))
    flat_in = keras.Input((16,))
    flat = keras.Model(flat_in, keras.layers.Dense(3)(flat_in))
    x = np.random.default_rng(0).uniform(0, 1, (20, 4, 4, 1)).astype(np.float32)
    cases = [
        (dict(model=model, quantize="int4"), "quantize must be None"),
        (dict(model=model, quantize="int8"), "needs calibration="),
        (dict(model=model, quantize="int8", calibration=x[:3]), "at least 16"),
        (dict(model=model, calibration=x), "calibration goes with quantize='int8'"),
        (dict(model=b"not a flatbuffer", calibration=x), "already quantised"),
        (dict(model=flat, quantize="int8", calibration=x.reshape(20, 16)), "one H x W x C image frame"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=re.escape(message)):
            sketch.generate_sketch(directory=tmp_path / "Sk", **kwargs)
    assert os.listdir(tmp_path) == []


def test_render_rejects_a_mismatched_frame(tiny_compiled):
    with pytest.raises(ValueError, match=r"the sample frame is \(5, 4, 1\), the model takes \(4, 4, 1\)"):
        sketch.render_sketch(tiny_compiled, "Sk", np.zeros((5, 4, 1), np.uint8), None, "x")
    with pytest.raises(ValueError, match="sample label 3 is not a class"):
        sketch.render_sketch(tiny_compiled, "Sk", np.zeros((4, 4, 1), np.uint8), 3, "x")


# --------------------------------------------------------------------------- compile and run
def _ino_sources(directory: Path):
    ino = directory / f"{directory.name}.ino"
    return ["-x", "c++", ino, "-x", "none", SHIM / "arduino_shim.cpp"]


def _check_printed_prediction(out, net, directory):
    """The sketch's Serial output names the class Keras predicts for the sample frame, with its
    probability to the 4 decimals printed."""
    assert "inputs 576, classes 4" in out, out
    frame = np.array(re.findall(r"\d+", (directory / "sample_image.h").read_text().split("{", 1)[1]), np.float32)
    probs = net.model.predict(frame.reshape(1, 24, 24, 1) / 255.0, verbose=0)[0]
    names = ["cat", 'dog "quoted"', "bird", "fish"]
    found = re.search(r"class (.*), probability (\d\.\d{4}), \d+ us per inference", out)
    assert found, out
    assert found.group(1) == names[int(np.argmax(probs))], (out, probs)
    assert abs(float(found.group(2)) - float(np.max(probs))) <= 1.5e-4, (out, probs)


def test_sketch_runs_on_the_host_and_prints_what_keras_predicts(small_sketch, tmp_path):
    """g++ -std=c++98 -pedantic: the sketch's own setup() and loop() run once against the shim."""
    net, _, directory, _ = small_sketch
    exe = tmp_path / "sketch"
    _run(["g++", "-std=c++98", "-pedantic", "-O2", *WARN, f"-I{SHIM}", *_ino_sources(directory), "-o", exe])
    _check_printed_prediction(_run([exe], timeout=30).stdout, net, directory)


def test_sketch_runs_on_the_emulated_cortex_m4(small_sketch, tmp_path):
    """The same sketch built for the Cortex-M4F with the QEMU harness's startup code and linker
    script (the shim printing through semihosting) runs on QEMU's mps2-an386."""
    from micronets.embedded import qemu

    net, _, directory, _ = small_sketch
    elf = tmp_path / "sketch.elf"
    _run([qemu.CXX, *qemu.CPU_FLAGS, "-O2", *qemu.WARN_FLAGS, *qemu.CXX_FLAGS, "-DMICRONETS_SHIM_SEMIHOSTING",
          f"-I{SHIM}", f"-I{qemu.HERE}", *_ino_sources(directory), qemu.HERE / "startup.cpp",
          qemu.HERE / "semihosting.cpp", f"-T{qemu.HERE / qemu.LINKER_SCRIPT}", *qemu.LINK_FLAGS, "-o", elf, "-lm"])
    proc = _run([qemu.QEMU, "-M", "mps2-an386", "-nographic", "-monitor", "none", "-serial", "none",
                 "-semihosting-config", "enable=on,target=native", "-kernel", elf], timeout=60)
    _check_printed_prediction(proc.stdout + proc.stderr, net, directory)


def _int8_expected(directory):
    """(class name, probability) the host build of the int8 header itself gives on the sample
    frame through predict(const uint8_t*): the first largest raw output, its dequantised value."""
    from micronets import host

    frame = np.array(re.findall(r"\d+", (directory / "sample_image.h").read_text().split("{", 1)[1]), np.uint8)
    raw, outputs = host.run_header_int8(str(directory / "model.h"), "Small8", frame.reshape(1, 24, 24, 1), entry="uint8")
    assert len(np.unique(raw[0])) > 1, raw  # the class depends on the image, not on a tie
    cls = int(np.argmax(raw[0]))
    return NAMES[cls], float(outputs[0, cls])


def _check_printed_int8(out, directory):
    assert "inputs 576, classes 4" in out, out
    name, proba = _int8_expected(directory)
    found = re.search(r"class (.*), probability (\d\.\d{4}), \d+ us per inference", out)
    assert found, out
    assert found.group(1) == name, (out, name, proba)
    assert abs(float(found.group(2)) - proba) <= 0.6e-4, (out, name, proba)


def test_int8_sketch_runs_on_the_host_and_prints_what_the_header_computes(int8_sketch, tmp_path):
    """g++ -std=c++98 -pedantic: the int8 sketch prints the class and probability of the int8
    header's own host build, and that class is the one the float Keras model predicts."""
    net, _, directory, _ = int8_sketch
    exe = tmp_path / "sketch8"
    _run(["g++", "-std=c++98", "-pedantic", "-O2", *WARN, f"-I{SHIM}", *_ino_sources(directory), "-o", exe])
    _check_printed_int8(_run([exe], timeout=30).stdout, directory)
    frame = np.array(re.findall(r"\d+", (directory / "sample_image.h").read_text().split("{", 1)[1]), np.float32)
    probs = net.model.predict(frame.reshape(1, 24, 24, 1) / 255.0, verbose=0)[0]
    assert _int8_expected(directory)[0] == NAMES[int(np.argmax(probs))], probs


def test_int8_sketch_runs_on_the_emulated_cortex_m4(int8_sketch, tmp_path):
    """The int8 sketch on QEMU's Cortex-M4F, where the header takes its DSP (SMLAD) path: the same
    class and probability as the portable path on the host."""
    from micronets.embedded import qemu

    _, _, directory, _ = int8_sketch
    elf = tmp_path / "sketch8.elf"
    _run([qemu.CXX, *qemu.CPU_FLAGS, "-O2", *qemu.WARN_FLAGS, *qemu.CXX_FLAGS, "-DMICRONETS_SHIM_SEMIHOSTING",
          f"-I{SHIM}", f"-I{qemu.HERE}", *_ino_sources(directory), qemu.HERE / "startup.cpp",
          qemu.HERE / "semihosting.cpp", f"-T{qemu.HERE / qemu.LINKER_SCRIPT}", *qemu.LINK_FLAGS, "-o", elf, "-lm"])
    assert "smlad" in _run([qemu.CXX.replace("g++", "objdump"), "-d", elf]).stdout
    proc = _run([qemu.QEMU, "-M", "mps2-an386", "-nographic", "-monitor", "none", "-serial", "none",
                 "-semihosting-config", "enable=on,target=native", "-kernel", elf], timeout=60)
    _check_printed_int8(proc.stdout + proc.stderr, directory)


@pytest.mark.parametrize("which", ["float", "int8"])
@pytest.mark.parametrize("target", sorted(ARM_TARGETS))
def test_sketch_cross_compiles_and_links(target, which, request, tmp_path):
    """The sketch + header + sample image, compiled with -Werror and linked against newlib
    (nano.specs + nosys.specs, the shim standing in for the Arduino core) for one CPU / float ABI;
    an int8 sketch gets the SMLAD kernels on the cores with the DSP extension (M4F, M7, M33) and
    the portable ones on the Cortex-M0+."""
    flags, arch, vfp_args = ARM_TARGETS[target]
    _, compiled, directory, _ = request.getfixturevalue("small_sketch" if which == "float" else "int8_sketch")
    elf = tmp_path / f"{target}.elf"
    _run(["arm-none-eabi-g++", *flags, "-O2", *WARN, "-fno-exceptions", "-fno-rtti", "-ffunction-sections",
          "-fdata-sections", f"-I{SHIM}", *_ino_sources(directory), "--specs=nano.specs", "--specs=nosys.specs",
          "-Wl,--gc-sections", "-o", elf, "-lm"])
    attrs = _run(["arm-none-eabi-readelf", "-A", elf]).stdout
    assert re.search(rf"Tag_CPU_arch: {re.escape(arch)}\b", attrs), attrs
    assert ("Tag_ABI_VFP_args: VFP registers" in attrs) == vfp_args, attrs
    if which == "int8":
        assert ("smlad" in _run(["arm-none-eabi-objdump", "-d", elf]).stdout) == (target != "cortex-m0plus")
    text = int(_run(["arm-none-eabi-size", "-B", elf]).stdout.splitlines()[-1].split()[0])
    assert text > compiled.summary()["weights_bytes"] + 576  # weights and the sample frame are linked in


@pytest.mark.parametrize("which", ["float", "int8"])
def test_sketch_compiles_for_xtensa_lx106(which, small_sketch, int8_sketch, tmp_path):
    """Compile-only smoke test for an Xtensa core (ESP8266's LX106: Debian has no ESP32-S3 LX7
    compiler); bare newlib headers, no C++ standard library."""
    _, _, directory, _ = small_sketch if which == "float" else int8_sketch
    _run(["xtensa-lx106-elf-g++", "-isystem", "/usr/include/newlib", "-O2", *WARN, "-fno-exceptions", "-fno-rtti",
          f"-I{SHIM}", "-x", "c++", "-c", directory / f"{directory.name}.ino", "-o", tmp_path / "sketch.o"])


# --------------------------------------------------------------------------- the library
def _properties():
    lines = (REPO / "library.properties").read_text(encoding="utf-8").splitlines()
    return dict(line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))


def test_library_properties_follow_the_arduino_spec():
    props = _properties()
    required = {"name", "version", "author", "maintainer", "sentence", "paragraph", "category", "url", "architectures"}
    assert required <= set(props), required - set(props)
    assert props["version"] == micronets.__version__
    assert props["category"] in {"Display", "Communication", "Signal Input/Output", "Sensors", "Device Control",
                                 "Timing", "Data Storage", "Data Processing", "Other"}
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9 _.-]*", props["name"])
    for header in props["includes"].split(","):
        assert (REPO / "src" / header.strip()).is_file(), header


def test_library_json_follows_the_platformio_spec():
    manifest = json.loads((REPO / "library.json").read_text(encoding="utf-8"))
    assert manifest["name"] == _properties()["name"] and manifest["version"] == micronets.__version__
    assert manifest["build"]["srcDir"] == "src" and "arduino" in manifest["frameworks"]
    for example in manifest["examples"]:
        for name in example["files"]:
            assert (REPO / example["base"] / name).is_file(), (example, name)
    for path in manifest["export"]["include"]:
        assert (REPO / path).exists(), path


def test_library_version_macro_matches_the_package():
    text = (REPO / "src" / "micronets.h").read_text()
    assert f'#define MICRONETS_VERSION "{micronets.__version__}"' in text
    major, minor, patch = micronets.__version__.split(".")[:3]
    for part, value in (("MAJOR", major), ("MINOR", minor), ("PATCH", patch)):
        assert f"#define MICRONETS_VERSION_{part} {int(value)}\n" in text


def test_arduino_compiles_only_src():
    """Arduino's recursive (1.5) layout compiles src/ and nothing else when src/ exists; PlatformIO
    is told the same in library.json. The Python package, tests and the harness stay outside."""
    assert (REPO / "src").is_dir()
    sources = [p for p in (REPO / "src").rglob("*") if p.suffix in (".c", ".cpp", ".S", ".h")]
    assert [p.name for p in sources] == ["micronets.h"]
    assert not [p for p in REPO.iterdir() if p.suffix in (".c", ".cpp", ".S", ".ino")]  # nothing at the root


def test_library_example_is_an_arduino_sketch():
    example = REPO / "examples" / "Classify"
    assert (example / "Classify.ino").is_file()  # the IDE lists examples/NAME/NAME.ino
    for name in ("model.h", "sample_image.h", "Classify.ino", "platformio.ini"):
        assert sketch.MARK in (example / name).read_text().splitlines()[0], name
    examples = [p for p in (REPO / "examples").iterdir() if p.is_dir()]
    assert all((p / f"{p.name}.ino").is_file() for p in examples), examples
    assert "predict(sample_image)" in (example / "Classify.ino").read_text()
    assert "static const uint8_t sample_image[1024]" in (example / "sample_image.h").read_text()


def _fit_reference(frame, width, height, channels):
    fh, fw, fc = frame.shape
    crop_w, crop_h = fw, fh
    if fw * height > fh * width:
        crop_w = fh * width // height
    else:
        crop_h = fw * height // width
    x0, y0 = (fw - crop_w) // 2, (fh - crop_h) // 2
    rows = y0 + np.arange(height) * crop_h // height
    cols = x0 + np.arange(width) * crop_w // width
    picked = frame[rows][:, cols].astype(np.uint32)
    if fc == channels:
        return picked.astype(np.uint8)
    if channels == 1:
        return ((77 * picked[..., 0] + 150 * picked[..., 1] + 29 * picked[..., 2]) >> 8).astype(np.uint8)[..., None]
    return np.repeat(picked, 3, axis=2).astype(np.uint8)


@pytest.mark.parametrize("frame_shape,size", [((120, 160, 3), (24, 24, 1)), ((48, 30, 1), (20, 40, 3)),
                                              ((7, 9, 3), (16, 16, 3)), ((5, 5, 1), (5, 5, 1))])
def test_fit_frame_matches_numpy(frame_shape, size, tmp_path):
    """micronets.h's fitFrame (C++98, -pedantic -Werror) against a numpy reference."""
    frame = np.random.default_rng(0).integers(0, 256, frame_shape, dtype=np.uint8)
    height, width, channels = size
    fh, fw, fc = frame_shape
    values = ", ".join(str(int(v)) for v in frame.reshape(-1))
    (tmp_path / "fit.cpp").write_text(f"""
#include <stdio.h>
#include "micronets.h"
static const uint8_t frame[{frame.size}] = {{{values}}};
static uint8_t input[{height * width * channels}];
int main() {{
    if (micronets::fitFrame(frame, 0, {fh}, {fc}, input, {width}, {height}, {channels})) return 2;
    if (micronets::fitFrame(frame, {fw}, {fh}, 2, input, {width}, {height}, {channels})) return 3;
    if (!micronets::fitFrame(frame, {fw}, {fh}, {fc}, input, {width}, {height}, {channels})) return 1;
    for (unsigned i = 0; i < sizeof(input); ++i) printf("%u\\n", (unsigned)input[i]);
    return 0;
}}
""")
    _run(["g++", "-std=c++98", "-pedantic", "-O2", *WARN, f"-I{REPO / 'src'}", tmp_path / "fit.cpp", "-o", tmp_path / "fit"])
    got = np.array(_run([tmp_path / "fit"]).stdout.split(), np.uint8).reshape(height, width, channels)
    np.testing.assert_array_equal(got, _fit_reference(frame, width, height, channels))
