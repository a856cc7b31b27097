"""micronets search: limits parsing, a tiny real search whose front fits, resume after an
interrupt, two workers on one storage, a real PostgreSQL server, CLI errors.

Data: scikit-learn's bundled 8x8 digits (4 classes x 24 images, written as PNG folders), searched at
8x8 / 12x12 inputs with 1 epoch per trial so the whole file runs in about a minute on 2 cores."""

import dataclasses
import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

optuna = pytest.importorskip("optuna", reason="the search needs Optuna (pip install -e '.[search]')")

from micronets.cli import main  # noqa: E402
from micronets.search import Candidate, make_limits, pareto_front, parse_bytes, parse_count  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def digits_folder(root, classes=4, per_class=24):
    from sklearn.datasets import load_digits

    d = load_digits()
    for c in range(classes):
        folder = os.path.join(root, f"digit{c}")
        os.makedirs(folder, exist_ok=True)
        for i, k in enumerate(np.flatnonzero(d.target == c)[:per_class]):
            Image.fromarray((d.images[k] * 15).astype(np.uint8)).save(os.path.join(folder, f"{i:03d}.png"))
    return str(root)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return digits_folder(tmp_path_factory.mktemp("digits"))


def _compiled_figures(net):
    """RAM (object + uint8 frame) and flash (weights) of a net, straight from the compiler."""
    from micronets.compiler import compile_model

    s = compile_model(net.model, classname="Check").summary()
    return int(s["object_bytes"]) + int(np.prod(s["input_shape"])), int(s["weights_bytes"]), int(s["macs"])


def _study(storage, name):
    return optuna.load_study(study_name=name, storage=storage)


def _candidates(study):
    """Trials that fitted and were trained (an interrupted one, FAIL, does not count)."""
    return [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("status") == "candidate"
            and t.state != optuna.trial.TrialState.FAIL]


# ---------------------------------------------------------------------------- limits
def test_limits_text_is_parsed_or_refused_clearly():
    for text in ("64 KB", "64KB", "64kb", "64K", "64KiB", "65536", 65536):
        assert parse_bytes(text) == 65536, text
    assert parse_bytes("1.5MB") == 1536 * 1024
    assert parse_count("5M") == 5_000_000 and parse_count("500k") == 500_000 and parse_count("2.5M") == 2_500_000
    for bad in ("64 KBx", "abc", "", "KB", "-5KB", "0", "64 K B", "1.5", "64 GB"):
        with pytest.raises(ValueError, match="is not a size|positive whole number"):
            parse_bytes(bad, "RAM limit")
    with pytest.raises(ValueError, match="is not a count"):
        parse_count("5 MACs")
    # a board's flash is counted less its code allowance; an explicit limit only lowers a board's
    lim = make_limits("stm32f446re", max_ram="64KB")
    assert (lim.ram_bytes, lim.flash_bytes, lim.board) == (65536, 512 * 1024 - 64 * 1024, "stm32f446re")
    assert make_limits("stm32f446re", max_ram="1MB").ram_bytes == 128 * 1024
    with pytest.raises(ValueError, match="give a board, or both"):
        make_limits(None, max_ram="64KB")
    with pytest.raises(ValueError, match="unknown board"):
        make_limits("arduino-uno-r9")


def test_pareto_front_keeps_exactly_the_undominated():
    def c(n, acc, macs):
        return Candidate(n, {}, acc, macs, 1, 1, 1, 1, 1)

    cs = [c(0, 0.5, 100), c(1, 0.6, 200), c(2, 0.55, 300), c(3, 0.6, 150), c(4, 0.4, 50), c(5, 0.4, 60)]
    assert [x.trial for x in pareto_front(cs)] == [3, 0, 4]


def test_pruning_rule_stops_a_candidate_that_cheaper_ones_beat_at_the_same_epoch():
    """Optuna cannot prune multi-objective trials; the search's own rule: stop after an epoch when
    ``peers`` finished candidates with no more MACs were better after that same epoch."""
    from optuna.trial import TrialState, create_trial

    from micronets.search import _pruning_callback

    study = optuna.create_study(directions=["maximize", "minimize"])
    for macs, curve in ((1000, [0.50, 0.70, 0.80]), (2000, [0.60, 0.75, 0.85]), (9000, [0.90, 0.95, 0.97])):
        study.add_trial(create_trial(state=TrialState.COMPLETE, values=[curve[-1], macs],
                                     user_attrs={"status": "candidate", "macs": macs, "val_accuracy_curve": curve}))

    class Model:
        stop_training = False

    def run(macs, accuracies, epochs=3, peers=2):
        trial = study.ask()
        cb = _pruning_callback(trial, study, macs, epochs, peers, lambda m: None)
        model = Model()
        cb.set_model(model)
        for epoch, acc in enumerate(accuracies):
            cb.on_epoch_end(epoch, {"val_accuracy": acc})
            if model.stop_training:
                break
        assert study.trials[trial.number].user_attrs["val_accuracy_curve"] == accuracies[:len(cb.curve)]
        study.tell(trial, state=TrialState.PRUNED)
        return cb.pruned_at

    assert run(3000, [0.45, 0.65, 0.9]) == 1  # both cheaper ones beat 0.45 after epoch 1
    assert run(3000, [0.55, 0.65, 0.9]) == 2  # only one beat 0.55 after epoch 1; both beat 0.65 after epoch 2
    assert run(3000, [0.65, 0.80, 0.5]) is None  # the last epoch is never pruned
    assert run(1500, [0.40, 0.40]) is None  # a single cheaper peer is not enough
    assert run(12000, [0.55], peers=3, epochs=2) is None  # two of three better
    assert run(12000, [0.45], peers=3, epochs=2) == 1  # the costly peer counts for a costlier net
    assert run(3000, [0.1, 0.1, 0.1], peers=0) is None  # pruning off


def test_mobilenet_width_knob_builds_the_named_sizes_at_width_one_and_round_trips(tmp_path):
    import micronets
    from micronets.models.mobilenet import MOBILENETS, MobileNetV1

    for depth in ("pico", "milli"):
        a = MobileNetV1(10, (32, 32, 1), depth=depth, width=1.0, batch_norm=True).build()
        b = MOBILENETS[depth](10, (32, 32, 1), batch_norm=True).build()
        assert [w.shape for w in a.model.weights] == [w.shape for w in b.model.weights]
    half = MobileNetV1(4, (16, 16, 1), depth="micro", width=0.5, stem_stride=1, name="Half").build()
    assert [int(layer.filters) for layer in half.model.layers if layer.name.endswith("_pw")] == \
        [3, 6, 6, 12, 12, 12, 12, 12]
    path = str(tmp_path / "half.keras")
    half.save(path)
    again = micronets.load(path)
    assert type(again) is MobileNetV1 and again.hyperparameters() == half.hyperparameters()
    assert again.describe().startswith("Half(16x16x1")
    for bad in (dict(depth="huge"), dict(width=0), dict(stem_stride=0)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            MobileNetV1(4, (16, 16, 1), **bad)


def test_cli_refuses_bad_limits_with_one_line(tmp_path, digits):
    runner = CliRunner()
    for bad in ("64 KBx", "lots"):
        r = runner.invoke(main, ["search", "--data", digits, "--max-ram", bad, "--max-flash", "8KB",
                                 "-o", str(tmp_path / "b.h")])
        assert r.exit_code == 2, r.output
        assert f"'{bad}' is not a size" in r.output and "64KB" in r.output
    r = runner.invoke(main, ["search", "--data", digits, "--max-macs", "many", "--max-ram", "8KB",
                             "--max-flash", "8KB", "-o", str(tmp_path / "b.h")])
    assert r.exit_code == 2 and "'many' is not a count" in r.output
    r = runner.invoke(main, ["search", "--data", digits, "--max-ram", "64 KB", "-o", str(tmp_path / "b.h")])
    assert r.exit_code != 0 and "give --board, or both --max-ram and --max-flash" in r.output
    assert os.listdir(tmp_path) == []


def test_cli_board_too_small_for_the_smallest_candidate(tmp_path, digits):
    """One clear error before any trial, and nothing written (not even the study file)."""
    r = CliRunner().invoke(main, ["search", "--data", digits, "--max-ram", "100", "--max-flash", "64KB",
                                  "--family", "mobilenet", "--resolutions", "8,12", "-o", str(tmp_path / "best.h")])
    assert r.exit_code == 1, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: the limits cannot fit even the smallest mobilenet "
                                                   "candidate"), r.stderr
    assert "Traceback" not in r.output
    assert "RAM" in lines[0] and "> 100 B" in lines[0]
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------- a real tiny search
def test_tiny_phinet_search_reports_a_front_that_fits(tmp_path, digits):
    import micronets

    out = str(tmp_path / "best.h")
    lines = []
    # tight enough that some PhiNets are refused (the head alone is 1280 * alpha wide): 7 of the
    # seeded sampler's first 10 draws; the other 3 (4 or 5 layers) train fast
    result = micronets.search(digits, out, max_ram="8KB", max_flash="48KB", family="phinet", trials=3,
                              epochs_per_trial=1, final_epochs=1, resolutions=(12, 16), sampler_seed=1,
                              check_cpp=False, plots=False, log=lines.append)
    limits = result.limits
    assert (limits.ram_bytes, limits.flash_bytes) == (8 * 1024, 48 * 1024)
    study = _study(result.storage, result.study)
    assert result.storage == "sqlite:///" + str(tmp_path / "best_search.db")
    assert len(_candidates(study)) == 3 and result.counts["trained"] == 3

    # every candidate in the front fits when compiled again here, from its hyperparameters
    from micronets.search import make_space

    space = make_space("phinet", (12, 16), 1)
    assert result.front and result.chosen is result.front[0]
    for c in result.front:
        net = space.net(c.params, 4).build()
        ram, flash, macs = _compiled_figures(net)
        assert ram <= limits.ram_bytes and flash <= limits.flash_bytes, (c, ram, flash)
        assert (ram, flash, macs) == (c.ram_bytes, c.flash_bytes, c.macs)
        assert 0 <= c.val_accuracy <= 1
    # the rejected ones were over a limit, got no training and are out of the front
    for t in study.get_trials(deepcopy=False):
        if t.user_attrs.get("status") == "rejected" and "macs" in t.user_attrs:
            a = t.user_attrs
            assert a["ram_bytes"] > limits.ram_bytes or a["flash_bytes"] > limits.flash_bytes
            assert t.state == optuna.trial.TrialState.PRUNED and "val_accuracy_curve" not in a
            assert max(t.constraints.values()) > 0
    # the chosen one, trained to the end and exported (header, card with the front, front PNG/JSON)
    assert os.path.isfile(out) and os.path.isfile(str(tmp_path / "best_front.png"))
    card = json.load(open(str(tmp_path / "best.json")))
    assert card["search"]["chosen_trial"] == result.chosen.trial
    assert card["ram_object_bytes"] + int(np.prod(card["input_shape"])) <= limits.ram_bytes
    assert card["flash_weights_bytes"] <= limits.flash_bytes
    front = json.load(open(str(tmp_path / "best_front.json")))
    assert [c["trial"] for c in front["front"]] == [c.trial for c in result.front]
    assert "micronets search" in open(out).read()
    with open(str(tmp_path / "best_front.png"), "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    # the front's Cortex-M4 instructions (float32 headers, one inference each under QEMU)
    from micronets.embedded.qemu import CXX, QEMU

    if shutil.which(CXX) and shutil.which(QEMU):
        assert all(c.m4_instructions > c.macs for c in result.front), result.m4_note
        assert [c["m4_instructions"] for c in front["front"]] == [c.m4_instructions for c in result.front]
        assert "float32 header" in result.m4_note
    else:
        assert "not found" in result.m4_note
    # the seeded sampler's first random candidates include some over the limits: rejected, logged, free
    assert result.counts["rejected"] >= 1
    assert result.counts["rejected"] == sum("rejected before training" in line for line in lines)


# ---------------------------------------------------------------------------- resume
def test_interrupted_study_resumes_to_the_total_without_repeating(tmp_path, digits):
    import micronets

    out = str(tmp_path / "r.h")
    kw = dict(max_ram="4KB", max_flash="16KB", family="mobilenet", epochs_per_trial=1, final_epochs=0,
              resolutions=(8, 12), sampler_seed=3, m4=False)
    seen = []

    def interrupt_second(line):
        if ": training " in line:
            seen.append(line)
            if len(seen) == 2:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        micronets.search(digits, out, trials=3, log=interrupt_second, **kw)
    storage = "sqlite:///" + str(tmp_path / "r_search.db")
    before = {t.number: t.values for t in _study(storage, "r").get_trials()
              if t.state == optuna.trial.TrialState.COMPLETE}
    assert len(before) == 1
    assert sorted(os.listdir(tmp_path)) == ["r_search.db"]  # no front, no header: nothing half-done

    with pytest.raises(ValueError, match="already exists.*--resume"):
        micronets.search(digits, out, trials=3, **kw)
    # the CLI continues it
    cli = ["search", "--data", digits, "--max-ram", "4 KB", "--max-flash", "16384", "--family", "mobilenet",
           "--epochs-per-trial", "1", "--final-epochs", "0", "--resolutions", "8,12", "--trials", "3", "--no-m4",
           "-o", out]
    r = CliRunner().invoke(main, cli)
    assert r.exit_code == 1 and "already exists" in r.output and "--resume" in r.output
    r = CliRunner().invoke(main, cli + ["--resume"])
    assert r.exit_code == 0, r.output
    assert "1 of 3 candidates trained so far\n" in r.output  # the interrupted trial failed: not counted
    assert "Pareto front of study r" in r.output and "3 trained" in r.output and "Every row compiled again" in r.output
    assert "M4 instr." not in r.output and "not measured (turned off" in r.output
    study = _study(storage, "r")
    trials = study.get_trials()
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))
    assert len(_candidates(study)) == 3
    done = {t.number: t.values for t in trials if t.state == optuna.trial.TrialState.COMPLETE}
    assert all(done[n] == v for n, v in before.items())  # the first one kept as it was
    failed = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
    assert len(failed) == 1 and failed[0].user_attrs["status"] == "candidate"  # the interrupted one
    assert {"r_front.png", "r_front.json"} <= set(os.listdir(tmp_path)) and "r.h" not in os.listdir(tmp_path)

    # a study of another search is refused, not mixed in
    with pytest.raises(ValueError, match="different search.*limits"):
        micronets.search(digits, out, trials=3, resume=True, **dict(kw, max_ram="3KB"))


# ---------------------------------------------------------------------------- workers
WORKER = textwrap.dedent("""
    import os, sys, time
    import keras  # the slow import before the barrier, so both workers start searching together
    import micronets.search as S
    barrier, me, other = sys.argv[1:4]
    open(os.path.join(barrier, me), "w").close()
    while not os.path.exists(os.path.join(barrier, other)):
        time.sleep(0.05)
    r = S.search(sys.argv[4], sys.argv[5], max_ram="4KB", max_flash="16KB", family="mobilenet", trials=int(sys.argv[6]),
                 epochs_per_trial=1, final_epochs=0, resolutions=(8, 12), storage=sys.argv[7], study="shared",
                 resume=True, m4=False)
    print("FRONT", sorted(c.trial for c in r.front))
""")


def _run_workers(tmp_path, digits, storage, trials):
    barrier = tempfile.mkdtemp(dir=str(tmp_path))
    script = str(tmp_path / "worker.py")
    with open(script, "w") as fh:
        fh.write(WORKER)
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    procs = [subprocess.Popen([sys.executable, script, barrier, me, other, digits, str(tmp_path / f"{me}.h"),
                               str(trials), storage], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env, cwd=str(tmp_path))
             for me, other in (("a", "b"), ("b", "a"))]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (o, e) in zip(procs, outs):
        assert p.returncode == 0, e[-3000:]
    return [o for o, _ in outs]


@pytest.mark.parametrize("message", [
    "UNIQUE constraint failed: alembic_version.version_num",  # SQLite (seen under load in CI-like runs)
    'duplicate key value violates unique constraint "alembic_version_pkc"',  # PostgreSQL
    "table studies already exists",
])
def test_open_storage_retries_when_another_worker_creates_the_tables_first(monkeypatch, message):
    """Workers started together race to create Optuna's tables; the loser must retry, not fail."""
    from micronets import search as S

    calls = []

    def storage(url, **kwargs):
        calls.append(url)
        if len(calls) == 1:
            raise RuntimeError(message)
        return "storage"

    monkeypatch.setattr(optuna.storages, "RDBStorage", storage)
    monkeypatch.setattr(S.time, "sleep", lambda s: None)
    assert S.open_storage("sqlite:///x.db") == "storage" and len(calls) == 2


def test_open_storage_names_a_real_failure_at_once(monkeypatch):
    from micronets import search as S

    calls = []

    def storage(url, **kwargs):
        calls.append(url)
        raise RuntimeError("unable to open database file")

    monkeypatch.setattr(optuna.storages, "RDBStorage", storage)
    with pytest.raises(ValueError, match="cannot open the storage sqlite:///x.db: unable to open database file"):
        S.open_storage("sqlite:///x.db")
    assert len(calls) == 1


def test_two_workers_share_one_study_without_duplicates(tmp_path, digits):
    storage = "sqlite:///" + str(tmp_path / "shared.db")
    outs = _run_workers(tmp_path, digits, storage, trials=4)
    study = _study(storage, "shared")
    cands = _candidates(study)
    assert len(cands) == 4  # the total, not 4 each
    numbers = [t.number for t in study.get_trials()]
    assert len(numbers) == len(set(numbers))
    workers = {t.user_attrs["worker"] for t in cands}
    assert len(workers) == 2, [(t.number, t.user_attrs["worker"]) for t in cands]  # both worked
    assert outs[0].splitlines()[-1] == outs[1].splitlines()[-1]  # and report the same front


# ---------------------------------------------------------------------------- PostgreSQL
def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def postgres():
    """A throwaway PostgreSQL server (Debian's binaries), as an unprivileged user when run as root."""
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bins:
        pytest.skip("PostgreSQL is not installed (Debian package postgresql; scripts/setup.sh installs it)")
    pytest.importorskip("psycopg", reason="psycopg (3) is not installed (the search extra)")
    bindir = os.path.dirname(bins[-1])
    root = tempfile.mkdtemp(prefix="micronets-pg-")
    prefix = []
    if os.geteuid() == 0:
        import pwd

        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(root, ignore_errors=True)
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
        os.chown(root, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    data, port = os.path.join(root, "data"), _free_port()
    try:
        r = subprocess.run(prefix + [os.path.join(bindir, "initdb"), "-D", data, "-A", "trust", "-U", "postgres",
                                     "--no-sync", "-E", "UTF8"], capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            pytest.skip(f"initdb failed: {r.stderr.strip()[-300:]}")
        r = subprocess.run(prefix + [os.path.join(bindir, "pg_ctl"), "-D", data, "-l", os.path.join(root, "log"),
                                     "-w", "-t", "60", "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1 "
                                     "-c fsync=off", "start"], capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            pytest.skip(f"PostgreSQL did not start: {r.stderr.strip()[-300:]}")
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(prefix + [os.path.join(bindir, "pg_ctl"), "-D", data, "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def test_search_on_a_real_postgresql_server(tmp_path, digits, postgres):
    import micronets

    kw = dict(max_ram="4KB", max_flash="16KB", family="mobilenet", epochs_per_trial=1, final_epochs=0,
              resolutions=(8,), storage=postgres, study="pg", sampler_seed=5, m4=False)
    first = micronets.search(digits, str(tmp_path / "pg.h"), trials=1, **kw)
    second = micronets.search(digits, str(tmp_path / "pg.h"), trials=2, resume=True, **kw)
    assert second.storage == postgres and first.counts["trained"] == 1 and second.counts["trained"] == 2
    study = _study(postgres, "pg")
    assert len(_candidates(study)) == 2
    assert not os.path.exists(str(tmp_path / "pg_search.db"))  # nothing went to the default SQLite file
    with pytest.raises(ValueError, match=r"cannot open the storage postgresql://postgres:\*\*\*@127.0.0.1:1/x"):
        micronets.search(digits, str(tmp_path / "x.h"), trials=1,
                         **dict(kw, storage="postgresql://postgres:secret@127.0.0.1:1/x"))


# ---------------------------------------------------------------------------- int8
def test_int8_sizes_do_not_depend_on_the_weights_or_the_calibration():
    """What lets an int8 search measure untrained candidates: arena, object and weight bytes come
    from the graph and the shapes only."""
    from micronets.search import int8_weights_floor, make_space, measure

    net = make_space("phinet", (8,), 1).net(dict(resolution=8, alpha=0.25, beta=1.0, t0=4, num_layers=5,
                                                 first_conv_filters=16, b1_filters=16, b2_filters=32,
                                                 conv5_percent=0.5, first_conv_stride=1), 4).build()
    rng = np.random.default_rng(0)

    def calib(n):  # other images, the same range (the input quantisation follows the min and max)
        x = rng.uniform(0, 1, (n, 8, 8, 1))
        x[0, 0, 0, 0], x[1, 0, 0, 0] = 0.0, 1.0
        return x

    a = measure(net.model, "int8", calib(16))
    # other weights (1-D ones positive: BatchNorm variances must stay valid)
    net.model.set_weights([(rng.standard_normal(w.shape) * 3 if w.ndim > 1 else rng.uniform(0.5, 2, w.shape))
                           .astype(np.float32) for w in net.model.get_weights()])
    b = measure(net.model, "int8", calib(20))
    assert a == b and a.arena_bytes > 0 and a.weights_bytes > 0
    # the one way the calibration counts: inputs not spanning [0, 1] need the 256-byte input table
    c = measure(net.model, "int8", rng.uniform(0, 0.9, (16, 8, 8, 1)))
    assert dataclasses.replace(a, weights_bytes=a.weights_bytes + 256) == c
    assert a != measure(net.model)  # and they are the int8 header's, not the float one's
    # the floor that rejects a candidate without converting it is below the real weight bytes
    assert 0 < int8_weights_floor(net.model) < a.weights_bytes


def test_tiny_int8_search_front_fits_as_int8_and_exports_an_int8_header(tmp_path, digits):
    import micronets
    from micronets.compiler.int8 import compile_keras_int8
    from micronets.embedded.qemu import CXX, QEMU
    from micronets.search import make_space

    out = str(tmp_path / "q.h")
    kw = dict(max_ram="4KB", max_flash="16KB", family="mobilenet", epochs_per_trial=1, resolutions=(8,),
              sampler_seed=3, plots=False)
    lines = []
    result = micronets.search(digits, out, trials=1, final_epochs=1, quantize="int8", log=lines.append, **kw)
    assert result.quantize == "int8" and result.front and result.chosen is result.front[0]
    from micronets.data import load_image_folder

    x = load_image_folder(digits, (8, 8, 1))[0][::3]  # other images of the same range (0 .. 240/255)
    for c in result.front:  # each fits when compiled again as int8 (untrained, other calibration)
        net = make_space("mobilenet", (8,), 1).net(c.params, 4).build()
        s = compile_keras_int8(net.model, x).summary()
        # flash as the search counts it: each layer's widest parameter layout, whatever the values
        ram, flash = s["object_bytes"] + int(np.prod(s["input_shape"])), s["weights_bytes_bound"]
        assert (ram, flash, s["macs"]) == (c.ram_bytes, c.flash_bytes, c.macs)
        assert s["weights_bytes"] <= flash
        assert ram <= result.limits.ram_bytes and flash <= result.limits.flash_bytes
        assert ram != _compiled_figures(net)[0]  # not the float figures
    # the exported header (trained weights, its own calibration) is int8 with the same sizes
    card = json.load(open(str(tmp_path / "q.json")))
    assert card["quantize"] == "int8" and card["search"]["quantize"] == "int8"
    assert card["ram_object_bytes"] + 64 == result.chosen.ram_bytes
    assert card["flash_weights_bytes"] <= result.chosen.flash_bytes  # the header's own layouts: never more
    assert "Arithmetic   : int8" in open(out).read()
    assert card["test"]["accuracy_int8"] is not None  # the int8 header ran on the test images
    assert card["float_header"]["file"] == "q_float.h" and os.path.isfile(str(tmp_path / "q_float.h"))
    front = json.load(open(str(tmp_path / "q_front.json")))
    assert front["quantize"] == "int8"
    # candidates whose int8 kernels alone exceed the flash limit were rejected before any conversion
    study = _study(result.storage, result.study)
    floored = [t for t in study.get_trials() if "flash_floor_bytes" in t.user_attrs]
    assert floored and all(t.user_attrs["flash_floor_bytes"] > result.limits.flash_bytes
                           and t.constraints["flash"] > 0 for t in floored)
    # Cortex-M4 instructions of the front, or a note saying why not
    if shutil.which(CXX) and shutil.which(QEMU):
        for c, row in zip(result.front, front["front"]):
            assert c.m4_instructions > c.macs > 0 and row["m4_instructions"] == c.m4_instructions
            assert row["macs_per_instruction"] == pytest.approx(c.macs / c.m4_instructions)
        assert "QEMU" in result.m4_note and any("Cortex-M4 instructions per inference" in ln for ln in lines)
    else:
        assert "not measured" in result.m4_note and all(c.m4_instructions is None for c in result.front)

    # the study records its quantisation: resuming it as a float32 search is refused (CLI: one line)
    r = CliRunner().invoke(main, ["search", "--data", digits, "--max-ram", "4KB", "--max-flash", "16KB",
                                  "--family", "mobilenet", "--epochs-per-trial", "1", "--resolutions", "8",
                                  "--trials", "2", "--final-epochs", "0", "--resume", "--no-m4", "-o", out])
    assert r.exit_code == 1 and "different search (it differs in: quantize)" in r.output, r.output
    assert len(r.stderr.strip().splitlines()) == 1


def test_m4_is_skipped_with_a_clear_note_without_the_emulator_and_bad_quantize_is_refused(tmp_path, monkeypatch,
                                                                                           digits):
    import micronets
    from micronets.search import measure_front_m4

    monkeypatch.setenv("PATH", str(tmp_path))  # neither arm-none-eabi-g++ nor qemu-system-arm
    front = [Candidate(0, {"resolution": 8}, 0.5, 100, 1, 1, 1, 1, 1)]
    note = measure_front_m4(front, None, 4, "int8", None, None, 0, lambda m: None)
    assert note.startswith("Cortex-M4 instructions not measured: arm-none-eabi-g++ and qemu-system-arm not found")
    assert "apt-get install gcc-arm-none-eabi " in note and note.endswith("qemu-system-arm)")
    assert front[0].m4_instructions is None
    with pytest.raises(ValueError, match="quantize='int4' is not supported"):
        micronets.search(digits, str(tmp_path / "x.h"), max_ram="4KB", max_flash="16KB", quantize="int4")
    assert os.listdir(tmp_path) == []
