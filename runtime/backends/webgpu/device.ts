/// <reference types="@webgpu/types" />
// The WebGPU device: navigator.gpu in a page or a Web Worker, Dawn's Node addon (the `webgpu`
// package) in Node. Asking is asynchronous, so the backend asks on its first run; what is
// missing (no navigator.gpu, an addon that does not load, no adapter: no Vulkan driver) is
// said in a BackendUnavailable error before any kernel runs.
import { BackendUnavailable } from '../backend.js';

export interface GpuHandle {
  device: GPUDevice;
  /** What the adapter is, for reports: e.g. 'nvidia ampere' or 'google swiftshader'. */
  adapter: string;
  /** Whether the adapter is a CPU emulation (SwiftShader, lavapipe): figures from it are not a GPU's. */
  software: boolean;
  subgroups: boolean;
  /** Validation errors outside any error scope, in order (the backend turns them into errors). */
  uncaptured: string[];
}

const inBrowser = () => typeof window !== 'undefined' || typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope !== 'undefined';

/** The GPU of a page, or Dawn's in Node; throws BackendUnavailable saying what is missing. */
async function gpuObject(): Promise<GPU> {
  if (inBrowser()) {
    const gpu = (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
    if (!gpu) throw new BackendUnavailable("backend 'webgpu' is not available: this page has no navigator.gpu (WebGPU needs a secure context, http://localhost or https, and a browser with WebGPU enabled)");
    return gpu;
  }
  // gpu.js brings an old Dawn (webgpu 0.2) for its own browser mode; peerc's needs 0.6 or later.
  const version = await dawnVersion();
  if (version && Number(version.split('.')[0]) === 0 && Number(version.split('.')[1]) < 6)
    throw new BackendUnavailable(`backend 'webgpu' is not available: the 'webgpu' package found is ${version} (gpu.js's); peerc's webgpu needs 0.6 or later: npm run extras -- webgpu (in a checkout) or npm install webgpu@0.6.2`);
  let mod: { create: (flags: string[]) => GPU; globals: object };
  try {
    // A variable specifier: bundlers leave Dawn's native addon to Node.
    const name = 'webgpu';
    mod = (await import(name)) as typeof mod;
  } catch (e) {
    const why = String((e as Error).message ?? e).split('\n')[0]!;
    const hint = /GLIBCXX/.test(why) ? ' (this build of Dawn needs the C++ runtime of GCC 13 or later)' : '';
    throw new BackendUnavailable(`backend 'webgpu' is not available: Dawn's Node addon (the npm package 'webgpu') did not load: ${why}${hint}`);
  }
  Object.assign(globalThis, mod.globals);
  // Dawn lives as long as the object create() returns is referenced: keep it for the process.
  return (dawnGpu ??= mod.create([]));
}

/** Why webgpu cannot run here, as far as is known without asking for a device (null: try it). */
export function webgpuUnavailable(): string | null {
  if (inBrowser()) return (globalThis as { navigator?: { gpu?: unknown } }).navigator?.gpu ? null : 'this page has no navigator.gpu (WebGPU needs a secure context, http://localhost or https, and a browser with WebGPU enabled)';
  try {
    import.meta.resolve('webgpu');
    return null;
  } catch {
    return "Dawn's Node addon, the npm package 'webgpu', is not installed (npm run extras -- webgpu in a checkout, or npm install webgpu@0.6.2)";
  }
}

/** The version of the 'webgpu' package Node resolves (undefined where it cannot be read). */
async function dawnVersion(): Promise<string | undefined> {
  try {
    // Variable specifiers: bundlers for the browser leave these Node modules alone.
    const fsName = 'node:fs';
    const fs = (await import(fsName)) as typeof import('node:fs');
    const pkg = new URL('package.json', import.meta.resolve('webgpu'));
    return (JSON.parse(fs.readFileSync(pkg, 'utf8')) as { version?: string }).version;
  } catch {
    return undefined;
  }
}

let shared: Promise<GpuHandle> | undefined;
let dawnGpu: GPU | undefined;

/** One device per process (a page or a Node process), asked for once. */
export function gpuDevice(): Promise<GpuHandle> {
  return (shared ??= openDevice().catch((e) => {
    shared = undefined;
    throw e;
  }));
}

async function openDevice(): Promise<GpuHandle> {
  const gpu = await gpuObject();
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter)
    throw new BackendUnavailable(
      inBrowser()
        ? "backend 'webgpu' is not available: the browser offers no WebGPU adapter (in Chromium without a GPU, start it with --enable-unsafe-webgpu; SwiftShader then emulates one)"
        : "backend 'webgpu' is not available: Dawn found no adapter; it needs a Vulkan driver (a GPU's, or Mesa's lavapipe from bookworm-backports: apt-get install -t bookworm-backports mesa-vulkan-drivers)",
    );
  const info = (adapter as GPUAdapter & { info?: GPUAdapterInfo }).info;
  const name = [info?.vendor, info?.architecture, info?.description].filter((s) => s).join(' ') || 'unknown adapter';
  const subgroups = adapter.features.has('subgroups' as GPUFeatureName);
  const l = adapter.limits;
  // The adapter's own limits, not the defaults: tables are bound whole up to maxStorageBufferBindingSize.
  const device = await adapter.requestDevice({
    // Asked for where the adapter has them: kernels with subgroup operations need the feature enabled.
    requiredFeatures: subgroups ? ['subgroups' as GPUFeatureName] : [],
    requiredLimits: {
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxBufferSize: l.maxBufferSize,
      maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
    },
  });
  device.lost.then((lost) => {
    if (lost.reason !== 'destroyed') shared = undefined;
  });
  const uncaptured: string[] = [];
  device.addEventListener('uncapturederror', (e) => uncaptured.push((e as GPUUncapturedErrorEvent).error.message));
  return { device, adapter: name, software: /swiftshader|lavapipe|llvmpipe/i.test(name), subgroups, uncaptured };
}
