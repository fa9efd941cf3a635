// Node 20's V8 runs relaxed SIMD only behind --experimental-wasm-relaxed-simd (on by default from
// V8 11.4, Node 22). Without it the contraction kernels have no fused multiply-add and the CLI
// ran them on plain SIMD128 (the scoring GEMM and the training step's contractions 10-20% slower).
// V8's wasm feature flags are read when a module is compiled, and workers share the process's
// flags, so turning it on before any module exists is enough. `--plain-simd` still picks the plain
// path, and every backend's describe() says which one runs.
import { setFlagsFromString } from 'node:v8';
import { wasmFeatures } from '../../codegen/wasm/module.js';

/** Turns on relaxed SIMD where this engine has it behind a flag; whether the engine now runs it. */
export function enableRelaxedSimd(): boolean {
  if (wasmFeatures().relaxedSimd) return true;
  if (process.env.PEERC_RELAXED_SIMD === '0') return false;
  try {
    setFlagsFromString('--experimental-wasm-relaxed-simd');
  } catch {
    return false; // an engine without the flag: plain SIMD128, as describe() says
  }
  return wasmFeatures().relaxedSimd;
}

enableRelaxedSimd();
