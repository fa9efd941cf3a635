"""Runs a model written by `peerc export --onnx` in ONNX Runtime on safetensors inputs (test helper).

usage: python3 run_onnx.py MODEL.onnx INPUTS.safetensors OUT.safetensors
Inputs are cast to each graph input's type (int64 for index inputs); outputs are written in float64.
"""
import sys

import numpy as np
import onnxruntime as ort
from safetensors.numpy import load_file, save_file

model_path, inputs_path, out_path = sys.argv[1:4]
session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
inputs = load_file(inputs_path)
feed = {}
for i in session.get_inputs():
    feed[i.name] = inputs[i.name].astype(np.int64 if i.type == "tensor(int64)" else np.float32)
outs = session.run(None, feed)
save_file({f"output_{i}": np.ascontiguousarray(o.astype(np.float64)) for i, o in enumerate(outs)}, out_path)
print(f"ran {len(session.get_inputs())} inputs -> {[list(o.shape) for o in outs]} with onnxruntime {ort.__version__}")
