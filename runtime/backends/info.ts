// The backends as data: what each can do, how to ask for it, and whether it is here.
// Measured on a 2-core machine (BENCHMARKS.md): wasm-simd (peerc's own SIMD128 contraction
// kernels and generated tasks on a worker pool) is the fastest there, then gpu.js webasm
// with threads; gpu.js's own automatic choice picks slower ones, so `auto` is ours.
import gpujs from 'gpu.js';
import { wasmFeatures } from '../../codegen/wasm/module.js';
import type { Backend, BackendInfo, BackendName, BackendOptions } from './backend.js';
import { GpujsBackend } from './gpujs/backend.js';
import { WasmSimdBackend } from './wasm-simd/backend.js';

const { GPU } = gpujs;

export type { BackendInfo, BackendName } from './backend.js';

/** What each backend is and can do, as data the executor, the trainer and the CLI read. */
export const BACKENDS: Record<BackendName, BackendInfo> = {
  cpu: { name: 'cpu', mode: 'cpu', asyncMode: false, kernelClass: 'CPUKernel', pool: false },
  webasm: { name: 'webasm', mode: 'webasm', asyncMode: false, kernelClass: 'WebAssemblyKernel', pool: false },
  'webasm-threads': { name: 'webasm-threads', mode: 'webasm', asyncMode: true, kernelClass: 'WebAssemblyKernel', pool: false },
  'wasm-simd': { name: 'wasm-simd', mode: 'webasm', asyncMode: true, kernelClass: 'WebAssemblyKernel', pool: true },
  headlessgl: { name: 'headlessgl', mode: 'headlessgl', asyncMode: false, kernelClass: 'HeadlessGLKernel', pool: false },
  webgl2: { name: 'webgl2', mode: 'webgl2', asyncMode: false, kernelClass: 'WebGL2Kernel', pool: false },
  webgpu: { name: 'webgpu', mode: 'webgpu', asyncMode: true, kernelClass: 'WebGPUKernel', pool: false },
};

/** The backend object for `info` (each backend is a folder beside this file). */
export function createBackend(info: BackendInfo, options: BackendOptions = {}): Backend {
  return info.pool ? new WasmSimdBackend(info, options) : new GpujsBackend(info);
}

export class BackendUnavailable extends Error {}

/** Why a backend cannot run here, or null when it can. */
export function unavailableReason(name: BackendName): string | null {
  switch (name) {
    case 'cpu':
      return null;
    case 'webasm':
      return GPU.isWebAssemblySupported ? null : 'this JavaScript engine has no WebAssembly';
    case 'webasm-threads':
      if (!GPU.isWebAssemblySupported) return 'this JavaScript engine has no WebAssembly';
      return typeof SharedArrayBuffer === 'undefined' ? 'SharedArrayBuffer is unavailable (a browser page needs COOP/COEP headers)' : null;
    case 'wasm-simd':
      if (!GPU.isWebAssemblySupported) return 'this JavaScript engine has no WebAssembly';
      if (!wasmFeatures().simd) return 'this WebAssembly engine has no SIMD128';
      return typeof SharedArrayBuffer === 'undefined' ? 'SharedArrayBuffer is unavailable (a browser page needs COOP/COEP headers)' : null;
    case 'headlessgl':
      // gpu.js loads the optional native 'gl' package itself and reports whether a context opens.
      return GPU.isHeadlessGLSupported
        ? null
        : "headless-gl cannot create a context: build the optional native package 'gl' (apt-get install libxi-dev libx11-dev libxext-dev libgl1-mesa-dev xvfb pkg-config; in a clone of peerc: npm run extras -- gl) and run under xvfb-run -a";
    case 'webgl2':
    case 'webgpu':
      // A page or a Web Worker of one (OffscreenCanvas for WebGL2, navigator.gpu for WebGPU).
      return typeof window === 'undefined' && typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope === 'undefined' ? `${name} runs only in a browser (load the esbuild bundle in a page)` : null;
  }
}

/** `auto`: the fastest backend measured on CPU-only machines that is available here. */
export function resolveBackend(name: BackendName | 'auto'): BackendInfo {
  if (name === 'auto') {
    for (const b of ['wasm-simd', 'webasm-threads', 'webasm', 'cpu'] as const) if (!unavailableReason(b)) return BACKENDS[b];
  }
  const info = BACKENDS[name as BackendName];
  if (!info) throw new BackendUnavailable(`unknown backend '${name}'; backends are: auto, ${Object.keys(BACKENDS).join(', ')}`);
  const why = unavailableReason(info.name);
  if (why) throw new BackendUnavailable(`backend '${name}' is not available: ${why}`);
  return info;
}

export function isBackendName(s: string): s is BackendName | 'auto' {
  return s === 'auto' || s in BACKENDS;
}
