"""Times a model written by `peerc export --onnx` in ONNX Runtime (CPU), the baseline a user
deploying the layer would compare against. Prints one JSON line: median ms of RUNS runs after a
warm-up, tokens/s, and the threads ONNX Runtime used.

usage: python3 bench/ort-peer.py MODEL.onnx TOKENS RUNS
"""
import json
import sys
import time

import numpy as np
import onnxruntime as ort

path, tokens, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
options = ort.SessionOptions()
session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
rng = np.random.default_rng(0)
feed = {}
for i in session.get_inputs():
    shape = [tokens if not isinstance(d, int) else d for d in i.shape]
    feed[i.name] = rng.integers(0, 2, shape).astype(np.int64) if i.type == "tensor(int64)" else rng.standard_normal(shape).astype(np.float32)
session.run(None, feed)
times = []
for _ in range(runs):
    t0 = time.perf_counter()
    session.run(None, feed)
    times.append((time.perf_counter() - t0) * 1000)
times.sort()
median = times[len(times) // 2]
print(json.dumps({"median_ms": median, "tokens_per_s": tokens / median * 1000, "onnxruntime": ort.__version__, "intra_op_threads": options.intra_op_num_threads}))
