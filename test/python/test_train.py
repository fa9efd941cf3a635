"""pytest for codegen/python/train.py (the training loop `peerc export --torch` copies beside the
module): its random numbers, seeded weights and schedules are peerc's, bit for bit where peerc's
are exact. Needs torch, numpy, safetensors and the built CLI (npm run build); test/python-tools.test.ts
runs this file from `npm test` where pytest and torch are installed."""
import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest
from safetensors.numpy import load_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLI = os.path.join(ROOT, "dist", "peerc.js")


def peerc(*args):
    return subprocess.run(["node", CLI, *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def train(tmp_path_factory):
    out = tmp_path_factory.mktemp("export")
    peerc("export", os.path.join(ROOT, "examples", "recall.peer"), "--torch", "-o", str(out))
    os.environ["PEERC_TRAIN_CONFIG"] = str(out / "train.json")
    spec = importlib.util.spec_from_file_location("peerc_train_under_test", out / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    sys.path.remove(str(out))


def test_the_export_copies_the_packaged_script(train):
    with open(os.path.join(ROOT, "codegen", "python", "train.py"), encoding="utf-8") as packaged, open(train.__file__, encoding="utf-8") as copied:
        assert packaged.read() == copied.read()
    assert train.ENTRY == "recall" and train.LOSS == "logits"


# Golden values from src/interp/rng.ts (uniformAt, paramKey).
@pytest.mark.parametrize(("key", "i", "stream", "want"), [
    (12345, 0, 0, 0.39293745387674267),
    (12345, 7, 1, 0.11156046021768401),
    (99, 2**33 + 5, 11, 0.5247060241505404),
    (0, 123456, 22, 0.8458365554995242),
])
def test_uniform_at_is_peercs(train, key, i, stream, want):
    assert float(train.uniform_at(key, i, stream)) == want


@pytest.mark.parametrize(("seed", "name", "want"), [(7, "W", 750449685), (0, "Vals", 1808464162), (2**33 + 1, "E", 685630965)])
def test_param_key_is_peercs(train, seed, name, want):
    assert int(train.param_key(seed, name)) == want


def test_seeded_weights_match_peerc_init(train, tmp_path):
    path = tmp_path / "w.safetensors"
    peerc("init", os.path.join(ROOT, "examples", "recall.peer"), "--seed", "3", "--f64", "--out", str(path))
    weights = load_file(str(path))
    for p in train.PARAM_INFO:
        size = int(np.prod(p["shape"])) if p["shape"] else 1
        got = train.seeded(p, 3, 0, size).numpy()
        want = weights[p["name"]].reshape(-1).astype(np.float32)
        np.testing.assert_array_equal(got, want, err_msg=p["name"])
        part = train.seeded(p, 3, size // 3, size // 2).numpy()
        np.testing.assert_array_equal(part, want[size // 3:size // 2], err_msg=f"{p['name']} rows")


def test_learning_rate_warms_up_then_follows_the_cosine(train):
    c = {"lr": 1e-3, "warmup": 10, "schedule": "cosine", "steps": 110, "minLrRatio": 0.1}
    lr = train.learning_rate
    assert lr(c, 0) == pytest.approx(1e-4)
    assert lr(c, 9) == pytest.approx(1e-3)
    assert lr(c, 10) == pytest.approx(1e-3)
    assert lr(c, 60) == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5))
    assert lr(c, 110) == pytest.approx(1e-4)
    assert lr({**c, "schedule": "constant"}, 60) == pytest.approx(1e-3)
