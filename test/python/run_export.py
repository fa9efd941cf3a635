"""Runs a module written by `peerc export --torch` on safetensors inputs (test helper).

usage: python3 run_export.py MODULE.py WEIGHTS.safetensors INPUTS.safetensors OUT.safetensors
Outputs are written as output_0, output_1, ... in float64.
"""
import importlib.util
import sys

import torch
from safetensors.torch import load_file, save_file

module_path, weights, inputs_path, out_path = sys.argv[1:5]
spec = importlib.util.spec_from_file_location("exported", module_path)
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
model = mod.load_peerc(weights)
inputs = load_file(inputs_path)
with torch.no_grad():
    out = model(**{name: inputs[name] for name, _dtype, _shape in mod.INPUTS})
outs = out if isinstance(out, tuple) else (out,)
save_file({f"output_{i}": o.to(torch.float64).contiguous() for i, o in enumerate(outs)}, out_path)
print(f"ran {mod.ENTRY}: {', '.join(str(list(o.shape)) for o in outs)} in {next(model.parameters(), torch.empty(0)).dtype}")
