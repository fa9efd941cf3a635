// The backends as data: what each can do, how to ask for it, and whether it is here.
// Measured on a 2-core machine (BENCHMARKS.md): wasm-simd (peerc's own SIMD128 contraction
// kernels and generated tasks on a worker pool) is the fastest there, then gpu.js webasm
// with threads; gpu.js's own automatic choice picks slower ones, so `auto` is ours.
import gpujs from 'gpu.js';
import { wasmFeatures } from '../../codegen/wasm/module.js';
import { BackendUnavailable, type Backend, type BackendInfo, type BackendOptions } from './backend.js';

export { BackendUnavailable };
import { GpujsBackend } from './gpujs/backend.js';
import { WasmSimdBackend } from './wasm-simd/backend.js';
import { PlainJsBackend } from './plain-js/backend.js';
import { WebGpuBackend } from './webgpu/backend.js';
import { webgpuUnavailable } from './webgpu/device.js';

const { GPU } = gpujs;

export type { BackendInfo } from './backend.js';

const NO_WASM = 'this JavaScript engine has no WebAssembly';
const NO_SAB = 'SharedArrayBuffer is unavailable (a browser page needs COOP/COEP headers)';
// A page or a Web Worker of one (OffscreenCanvas for WebGL2, navigator.gpu for WebGPU).
const inBrowser = () => typeof window !== 'undefined' || typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope !== 'undefined';

/**
 * The registry: each backend's capabilities (data the executor, the trainer and the CLI read),
 * why it cannot run here (null when it can), and how to make one. A new backend is its folder
 * beside this file and one entry here.
 */
const REGISTRY = {
  cpu: { info: { name: 'cpu', mode: 'cpu', asyncMode: false, kernelClass: 'CPUKernel', pool: false }, unavailable: () => null, create: (i) => new GpujsBackend(i) },
  webasm: { info: { name: 'webasm', mode: 'webasm', asyncMode: false, kernelClass: 'WebAssemblyKernel', pool: false }, unavailable: () => (GPU.isWebAssemblySupported ? null : NO_WASM), create: (i) => new GpujsBackend(i) },
  'webasm-threads': {
    info: { name: 'webasm-threads', mode: 'webasm', asyncMode: true, kernelClass: 'WebAssemblyKernel', pool: false },
    unavailable: () => (!GPU.isWebAssemblySupported ? NO_WASM : typeof SharedArrayBuffer === 'undefined' ? NO_SAB : null),
    create: (i) => new GpujsBackend(i),
  },
  'wasm-simd': {
    info: { name: 'wasm-simd', mode: 'webasm', asyncMode: true, kernelClass: 'WebAssemblyKernel', pool: true, tablesInPlace: true },
    unavailable: () => (!GPU.isWebAssemblySupported ? NO_WASM : !wasmFeatures().simd ? 'this WebAssembly engine has no SIMD128' : typeof SharedArrayBuffer === 'undefined' ? NO_SAB : null),
    create: (i, o) => new WasmSimdBackend(i, o),
  },
  headlessgl: {
    info: { name: 'headlessgl', mode: 'headlessgl', asyncMode: false, kernelClass: 'HeadlessGLKernel', pool: false },
    // gpu.js loads the optional native 'gl' package itself and reports whether a context opens.
    unavailable: () => (GPU.isHeadlessGLSupported ? null : "headless-gl cannot create a context: build the optional native package 'gl' (apt-get install libxi-dev libx11-dev libxext-dev libgl1-mesa-dev xvfb pkg-config; in a clone of peerc: npm run extras -- gl) and run under xvfb-run -a"),
    create: (i) => new GpujsBackend(i),
  },
  webgl2: { info: { name: 'webgl2', mode: 'webgl2', asyncMode: false, kernelClass: 'WebGL2Kernel', pool: false, browserOnly: true }, unavailable: () => (inBrowser() ? null : 'webgl2 runs only in a browser (load the esbuild bundle in a page)'), create: (i) => new GpujsBackend(i) },
  'gpujs-webgpu': { info: { name: 'gpujs-webgpu', mode: 'webgpu', asyncMode: true, kernelClass: 'WebGPUKernel', pool: false, browserOnly: true }, unavailable: () => (inBrowser() ? null : "gpu.js's webgpu runs only in a browser (load the esbuild bundle in a page); peerc's own backend 'webgpu' also runs in Node"), create: (i) => new GpujsBackend(i) },
  // peerc's own WGSL; its device is asked for on the first run (asynchronously), where what is missing is said.
  webgpu: { info: { name: 'webgpu', mode: 'none', asyncMode: true, kernelClass: 'none', pool: false, tablesInPlace: true }, unavailable: webgpuUnavailable, create: (i, o) => new WebGpuBackend(i, o) },
  'plain-js': { info: { name: 'plain-js', mode: 'none', asyncMode: false, kernelClass: 'none', pool: false }, unavailable: () => null, create: (i) => new PlainJsBackend(i) },
} satisfies Record<string, { info: BackendInfo; unavailable: () => string | null; create: (info: BackendInfo, options: BackendOptions) => Backend }>;

export type BackendName = keyof typeof REGISTRY;

/** A registered backend's capabilities (its name one of the registry's). */
export type RegisteredBackend = BackendInfo & { name: BackendName };

/** Each backend's capabilities, by name. */
export const BACKENDS = Object.fromEntries(Object.entries(REGISTRY).map(([name, r]) => [name, r.info])) as Record<BackendName, RegisteredBackend>;

/** The backends that can run outside a browser (the CLI's choices). */
export const NODE_BACKENDS = (Object.keys(REGISTRY) as BackendName[]).filter((b) => !(REGISTRY[b].info as BackendInfo).browserOnly);

/** The backend object for `info` (each backend is a folder beside this file). */
export function createBackend(info: BackendInfo, options: BackendOptions = {}): Backend {
  return REGISTRY[info.name as BackendName].create(info, options);
}


/** Why a backend cannot run here, or null when it can. */
export function unavailableReason(name: BackendName): string | null {
  return REGISTRY[name].unavailable();
}

/** `auto`: the fastest backend measured on CPU-only machines that is available here. */
export function resolveBackend(name: BackendName | 'auto'): RegisteredBackend {
  if (name === 'auto') {
    for (const b of ['wasm-simd', 'webasm-threads', 'webasm', 'cpu'] as const) if (!unavailableReason(b)) return BACKENDS[b];
  }
  const info = BACKENDS[name as BackendName];
  if (!info) throw new BackendUnavailable(`unknown backend '${name}'; backends are: auto, ${Object.keys(BACKENDS).join(', ')}`);
  const why = unavailableReason(name as BackendName);
  if (why) throw new BackendUnavailable(`backend '${name}' is not available: ${why}`);
  return info;
}

export function isBackendName(s: string): s is BackendName | 'auto' {
  return s === 'auto' || s in BACKENDS;
}
