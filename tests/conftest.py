import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(__file__))  # tests/netutil.py

import warnings  # noqa: E402

warnings.filterwarnings("ignore", message="The structure of `inputs` doesn't match")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same random state (Keras' initialisers, numpy's and Python's
    global generators), whichever worker runs it and whatever ran before it there: with xdist the
    order differs from run to run, and a test that drew unlucky initial weights failed once in CI
    (an unlivened sub-model's output varied by 9e-4 across inputs, under the 1e-3 floor)."""
    import keras

    keras.utils.set_random_seed(0)
