"""Loss and gradients of a module written by `peerc export --torch`, in training mode (test helper).

usage: python3 grad_export.py MODULE.py WEIGHTS.safetensors INPUTS.safetensors TARGETS_NAME OUT.safetensors
The loss is peerc's: the model's scalar output, or the mean cross-entropy of its logits against
the targets input, plus the program's aux_loss terms. Writes loss, grad.NAME for every parameter, buffer.NAME after the step.
"""
import importlib.util
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

module_path, weights, inputs_path, targets_name, out_path = sys.argv[1:6]
spec = importlib.util.spec_from_file_location("exported", module_path)
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
model = mod.load_peerc(weights).train()
inputs = load_file(inputs_path)
out = model(**{name: inputs[name] for name, _dtype, _shape in mod.INPUTS})
if out.dim() == 0:
    loss = out
else:
    loss = F.cross_entropy(out.reshape(-1, out.shape[-1]), inputs[targets_name].long().reshape(-1))
loss = loss + getattr(model, "aux_loss", 0.0)  # the program's aux_loss terms
loss.backward()
result = {"loss": loss.detach().reshape(1)}
for name, p in model.named_parameters():
    g = p.grad if p.grad is not None else torch.zeros_like(p)
    result["grad." + name] = (g.to_dense() if g.is_sparse else g).contiguous()
for name, b in model.named_buffers():
    result["buffer." + name] = b.contiguous()
save_file({k: v.to(torch.float64) for k, v in result.items()}, out_path)
print(f"loss {loss.item():.12g} ({loss.dtype})")
