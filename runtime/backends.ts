// The backends as data: what each can do, how to ask for it, and whether it is here.
// Measured on a 2-core machine (BENCHMARKS.md): wasm-simd (peerc's own SIMD128 contraction
// kernels and generated tasks on a worker pool) is the fastest there, then gpu.js webasm
// with threads; gpu.js's own automatic choice picks slower ones, so `auto` is ours.
import gpujs from 'gpu.js';
import { wasmFeatures } from '../codegen/wasm/module.js';

const { GPU } = gpujs;

export type BackendName = 'cpu' | 'webasm' | 'webasm-threads' | 'wasm-simd' | 'headlessgl' | 'webgl2' | 'webgpu';

export interface BackendInfo {
  name: BackendName;
  /** gpu.js `mode`. */
  mode: string;
  /** Calls return Promises; webasm splits kernels of >= 4096 cells across worker threads. */
  asyncMode: boolean;
  /** The class of a kernel that really runs on this backend (anything else is a fallback). */
  kernelClass: string;
  /** Loops whose bound is not a literal stop here silently; peerc only emits literal bounds. */
  loopLimit: number;
  /** Largest output texture side (GL), null where outputs are plain arrays. */
  maxTextureSize: number | null;
  kernelMaps: 'supported' | 'fall back to cpu' | 'throw';
  /** Most results a kernel may return as a vector. */
  arrayReturns: number;
  precision: 'single';
  runsIn: 'node' | 'node with headless-gl' | 'browser';
  /**
   * peerc's own backend: contractions in matrix-product form as its WebAssembly SIMD128
   * kernels (codegen/wasm), other ops as generated tasks (codegen/host), on a worker pool;
   * only kernels a task cannot take (2-D grids and views, vector returns) as gpu.js `mode`.
   */
  simdContractions?: boolean;
}

export const BACKENDS: Record<BackendName, BackendInfo> = {
  cpu: { name: 'cpu', mode: 'cpu', asyncMode: false, kernelClass: 'CPUKernel', loopLimit: Infinity, maxTextureSize: null, kernelMaps: 'supported', arrayReturns: 4, precision: 'single', runsIn: 'node' },
  webasm: { name: 'webasm', mode: 'webasm', asyncMode: false, kernelClass: 'WebAssemblyKernel', loopLimit: Infinity, maxTextureSize: null, kernelMaps: 'fall back to cpu', arrayReturns: 4, precision: 'single', runsIn: 'node' },
  'webasm-threads': { name: 'webasm-threads', mode: 'webasm', asyncMode: true, kernelClass: 'WebAssemblyKernel', loopLimit: Infinity, maxTextureSize: null, kernelMaps: 'fall back to cpu', arrayReturns: 4, precision: 'single', runsIn: 'node' },
  'wasm-simd': { name: 'wasm-simd', mode: 'webasm', asyncMode: true, kernelClass: 'WebAssemblyKernel', loopLimit: Infinity, maxTextureSize: null, kernelMaps: 'fall back to cpu', arrayReturns: 4, precision: 'single', runsIn: 'node', simdContractions: true },
  headlessgl: { name: 'headlessgl', mode: 'headlessgl', asyncMode: false, kernelClass: 'HeadlessGLKernel', loopLimit: 1000, maxTextureSize: 16384, kernelMaps: 'supported', arrayReturns: 4, precision: 'single', runsIn: 'node with headless-gl' },
  webgl2: { name: 'webgl2', mode: 'webgl2', asyncMode: false, kernelClass: 'WebGL2Kernel', loopLimit: 1000, maxTextureSize: 8192, kernelMaps: 'supported', arrayReturns: 4, precision: 'single', runsIn: 'browser' },
  webgpu: { name: 'webgpu', mode: 'webgpu', asyncMode: true, kernelClass: 'WebGPUKernel', loopLimit: 1000, maxTextureSize: null, kernelMaps: 'throw', arrayReturns: 4, precision: 'single', runsIn: 'browser' },
};

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
