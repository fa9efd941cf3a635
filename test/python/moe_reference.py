"""A top-2 mixture of SwiGLU experts written independently of peerc (test helper for
test/moe.test.ts): the router's top 2, softmax over the two logits, each expert run on the
tokens routed to it (a loop over experts with index_add, as Mixtral's reference code does), in
float64. Prints the output, the experts, and the mean cross-entropy of the output (as logits)
against the targets plus 0.01 times Switch's load-balancing loss, with its gradients, as JSON.

With --capacity F, each expert takes at most floor(F * T * 2 / E) slots, first choices before
second choices and tokens in order (Switch's and GShard's rule, counted here in plain loops);
a dropped slot's gate is 0. Also prints the share of slots dropped.

usage: python3 moe_reference.py WEIGHTS.safetensors INPUTS.safetensors [--capacity F]
"""
import math
import json
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

w = {k: v.to(torch.float64).requires_grad_(True) for k, v in load_file(sys.argv[1]).items()}
inputs = load_file(sys.argv[2])
x, targets = inputs["x"].to(torch.float64), inputs["targets"].to(torch.int64)

logits = x @ w["Wr"]
top, experts = torch.topk(logits, 2, dim=-1)
gates = torch.softmax(top, dim=-1)
num_experts = w["W1"].shape[0]
dropped = 0.0
if "--capacity" in sys.argv:
    factor = float(sys.argv[sys.argv.index("--capacity") + 1])
    tokens, choices = experts.shape
    capacity = math.floor(factor * tokens * choices / num_experts)
    taken = [0] * num_experts
    keep = torch.zeros(tokens, choices, dtype=torch.float64)
    for j in range(choices):
        for t in range(tokens):
            e = int(experts[t, j])
            if taken[e] < capacity:
                taken[e] += 1
                keep[t, j] = 1.0
    gates = gates * keep
    dropped = 1.0 - keep.mean().item()
y = torch.zeros_like(x)
for e in range(w["W1"].shape[0]):
    token, slot = torch.nonzero(experts == e, as_tuple=True)
    if token.numel() == 0:
        continue
    xe = x[token]
    h = F.silu(xe @ w["W1"][e].T) * (xe @ w["W3"][e].T)
    y = y.index_add(0, token, gates[token, slot, None] * (h @ w["W2"][e]))
# Switch's load-balancing loss, weight 0.01: E * sum_e (fraction of slots routed to e) * (mean router probability of e).
fraction = F.one_hot(experts, num_experts).to(torch.float64).mean(dim=(0, 1))
balance = num_experts * (fraction * torch.softmax(logits, dim=-1).mean(dim=0)).sum()
loss = F.cross_entropy(y, targets) + 0.01 * balance
loss.backward()
print(json.dumps({
    "output": y.detach().flatten().tolist(),
    "loss": loss.item(),
    "experts": experts.flatten().tolist(),
    "dropped": dropped,
    "grads": {k: v.grad.flatten().tolist() for k, v in w.items()},
}))
