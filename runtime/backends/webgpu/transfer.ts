/// <reference types="@webgpu/types" />
// Copies between host and GPU, counted for bench's per-forward figures (every webgpu backend of
// the process shares one device and one count).

/** Bytes moved each way so far; `params`: the part of `up` that wrote parameters' resident copies. */
export const moved = { up: 0, down: 0, params: 0 };

/** Copies data into a buffer (Dawn takes no views of shared memory: those are copied first); `param`: into a parameter's copy. */
export function upload(device: GPUDevice, buf: GPUBuffer, data: Float32Array | Uint32Array, param = false): void {
  moved.up += data.byteLength;
  if (param) moved.params += data.byteLength;
  if (data.length) device.queue.writeBuffer(buf, 0, data.buffer instanceof ArrayBuffer ? data : data.slice());
}

/** The first `floats` of a mapped-readable buffer, copied out. */
export async function mapped(staging: GPUBuffer, floats: number): Promise<Float32Array> {
  moved.down += floats * 4;
  await staging.mapAsync(1 /* GPUMapMode.READ */);
  const flat = new Float32Array(floats);
  flat.set(new Float32Array(staging.getMappedRange(), 0, floats));
  staging.unmap();
  return flat;
}

/** Copies a buffer's first `into.length` floats into `into` (through a mapped copy of them). */
export async function download(device: GPUDevice, buffer: GPUBuffer, into: Float32Array): Promise<void> {
  if (!into.length) return;
  device.pushErrorScope('validation');
  const staging = device.createBuffer({ size: into.byteLength, usage: 0x0001 | 0x0008 /* MAP_READ | COPY_DST */ });
  const encoder = device.createCommandEncoder();
  encoder.copyBufferToBuffer(buffer, 0, staging, 0, into.byteLength);
  device.queue.submit([encoder.finish()]);
  const err = await device.popErrorScope();
  if (err) throw new Error(`internal: the GPU refused a copy back to the host: ${err.message.split('\n')[0]}`);
  moved.down += into.byteLength;
  await staging.mapAsync(1 /* GPUMapMode.READ */);
  into.set(new Float32Array(staging.getMappedRange(), 0, into.length));
  staging.unmap();
  staging.destroy();
}
