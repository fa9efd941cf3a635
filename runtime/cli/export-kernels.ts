// Which kernels `peerc export --torch` writes for the fused ops: --kernels triton|eager, or by
// default what this machine's python3 can run fast (Triton kernels where Triton and a CUDA GPU
// are present), with a note saying which and why, so a CPU-only default is never silent.
import { spawnSync } from 'node:child_process';
import type { TorchKernels } from '../../codegen/torch.js';
import { UsageError } from '../../src/io/usage-error.js';

export interface KernelChoice {
  kernels: TorchKernels;
  /** Why, when chosen by default. */
  note?: string;
}

/** What python3 here says about Triton and CUDA: 'triton+cuda', or the reason they are not both there. */
function probePython(): { ok: true } | { ok: false; why: string } {
  const code = 'import importlib.util, sys\nif importlib.util.find_spec("triton") is None: print("no-triton"); sys.exit()\nimport torch\nprint("cuda" if torch.cuda.is_available() else "no-cuda")';
  const r = spawnSync(process.env.PEERC_PYTHON ?? 'python3', ['-c', code], { encoding: 'utf8', timeout: 60_000 });
  const said = r.status === 0 ? r.stdout.trim() : '';
  if (said === 'cuda') return { ok: true };
  if (said === 'no-triton') return { ok: false, why: 'python3 here has no triton' };
  if (said === 'no-cuda') return { ok: false, why: 'python3 here has triton but torch sees no CUDA GPU' };
  return { ok: false, why: 'python3 with torch was not found here' };
}

export function chooseKernels(flag: string | undefined): KernelChoice {
  if (flag === 'triton' || flag === 'eager') return { kernels: flag };
  if (flag !== undefined) throw new UsageError(`--kernels takes triton or eager, not '${flag}'`);
  const probe = probePython();
  if (probe.ok) return { kernels: 'triton', note: 'Triton kernels for the fused ops (python3 here has triton and a CUDA GPU; --kernels eager for plain PyTorch ops)' };
  return { kernels: 'eager', note: `the fused ops are eager PyTorch ops: ${probe.why} (--kernels triton writes Triton kernels anyway; they fall back to these ops, with a warning, where Triton cannot run)` };
}
