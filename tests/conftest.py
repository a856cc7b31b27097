import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(__file__))  # tests/netutil.py

import warnings  # noqa: E402

warnings.filterwarnings("ignore", message="The structure of `inputs` doesn't match")
