"""The wheel carries the templates and the embedded harness, and works outside the checkout."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_wheel_ships_templates_and_exports_from_an_install(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path / "dist"), ROOT], check=True, capture_output=True)
    (wheel,) = glob.glob(str(tmp_path / "dist" / "micronets_mcu-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for needed in ("micronets/templates/header.h.j2", "micronets/templates/kernels/conv_depthwise.h.j2",
                   "micronets/embedded/mps2_an386.ld", "micronets/embedded/startup.cpp"):
        assert needed in names, needed
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), wheel],
                   check=True, capture_output=True)
    code = ("import micronets, sys; from micronets.compiler.emit import templates_dir;"
            "assert micronets.__file__.startswith(sys.argv[1]), micronets.__file__;"
            "assert templates_dir().startswith(sys.argv[1]), templates_dir();"
            "n = micronets.PicoMobileNet(num_classes=3, input_shape=(24, 24, 1)); n.build(); n.export(sys.argv[2])")
    env = dict(os.environ, PYTHONPATH=str(target))
    subprocess.run([sys.executable, "-c", code, str(target), str(tmp_path / "m.h")], check=True, env=env,
                   cwd=tmp_path, capture_output=True)
    assert "class PicoMobileNet" in (tmp_path / "m.h").read_text()
