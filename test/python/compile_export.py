"""torch.compile(fullgraph=True) of a module written by `peerc export --torch --kernels triton`
(test helper): the custom ops' fake implementations trace, and the compiled forward and gradients
equal the uncompiled ones. Run under TRITON_INTERPRET=1 on the CPU (backend aot_eager: no C++
compiler needed).

usage: python3 compile_export.py MODULE.py
"""
import importlib.util
import sys

import torch

spec = importlib.util.spec_from_file_location("exported", sys.argv[1])
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
cls = next(v for v in vars(mod).values() if isinstance(v, type) and issubclass(v, torch.nn.Module) and v.__module__ == mod.__name__)
torch.manual_seed(0)
model = cls(dtype=torch.float64).train()
for _name, p in model.named_parameters():
    p.data.normal_(0, 0.3)
x = {name: torch.randn([5] + [int(s) for s in shape[1:]], dtype=torch.float64) for name, _dtype, shape in mod.INPUTS}


def step(run):
    model.zero_grad(set_to_none=True)
    y = run(**x)
    y.pow(2).mean().backward()
    return y.detach(), {n: p.grad.to_dense().clone() for n, p in model.named_parameters() if p.grad is not None}


y0, g0 = step(model)
y1, g1 = step(torch.compile(model, backend="aot_eager", fullgraph=True))
assert g0.keys() == g1.keys(), (g0.keys(), g1.keys())
err = max([float((y1 - y0).abs().max())] + [float((g1[n] - g0[n]).abs().max()) for n in g0])
assert err < 1e-12, err
print(f"compiled (fullgraph) = eager: largest difference {err:.1e} over the output and {len(g0)} gradients")
