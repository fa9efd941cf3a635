// A pool of worker threads over shared memory, the wasm-simd backend's threads: Node's
// worker_threads, or Web Workers in a cross-origin-isolated page. A task is generated source
// (codegen/host) or an export of a wasm module instantiated on a shared WebAssembly.Memory; a
// call splits a range of lanes into one part per thread, the calling thread taking the first,
// so work is never waiting on an idle caller. Arrays cross threads without copies only when
// they live in SharedArrayBuffers: `shared()` allocates such arrays, and a call copies any
// other input once (counted in its time) before the workers read it.

import type { PoolTask } from '../codegen/host/pool-task.js';
export type { PoolTask } from '../codegen/host/pool-task.js';

export type TaskArg = Float32Array | Int32Array | Float64Array | number;

interface WorkerLike {
  postMessage(msg: unknown): void;
  ref?(): void;
  unref?(): void;
  terminate(): unknown;
}

/** What a task may use besides its arguments: the wasm instances registered on the pool. */
export interface TaskContext {
  wasm: Record<string, WebAssembly.Exports>;
}

/**
 * The fast path's control block, one per worker (Int32 slots): the worker's state, tasks done,
 * messages handled, the task (key index, lanes, argument count) and an error flag; then the
 * arguments (a kind and a float64 each) and an error text. A call's round trip by postMessage
 * took about 50 us on this machine's two cores, and a training step makes some 40 of them;
 * by the control block it is a futex wake each way (no spinning: a spinning thread measured
 * slower, the step's other work losing more than the wake saved).
 */
const CTL = { state: 0, done: 1, recv: 2, key: 3, from: 4, to: 5, nargs: 6, error: 7, sent: 8 } as const;
/** Bytes of the control block's Int32 slots (CTL), before the arguments. */
const CTL_BYTES = 64;
const STATE = { idle: 0, waiting: 1, claimed: 2, task: 3, kick: 4 } as const;
const MAX_FAST_ARGS = 64;
const ERROR_BYTES = 2048;
/** How long a worker waits for the next call in the control block before going back to its event loop. */
const FAST_IDLE_MS = 200;

const WORKER_BODY = `
const fns = new Map();
const keys = [];
const ctx = { wasm: {} };
const arrays = new Map();
let fast = null;
/** Calls through the control block until kicked back to the event loop (or idle for a while). */
function fastLoop() {
  const c = fast.ctl;
  Atomics.store(c, ${CTL.state}, ${STATE.waiting});
  for (;;) {
    const s = Atomics.load(c, ${CTL.state});
    // A message posted before this worker said it was waiting (so not kicked): go and read it.
    if (s === ${STATE.waiting} && Atomics.load(c, ${CTL.sent}) !== Atomics.load(c, ${CTL.recv})) {
      if (Atomics.compareExchange(c, ${CTL.state}, ${STATE.waiting}, ${STATE.idle}) === ${STATE.waiting}) return;
      continue;
    }
    if (s === ${STATE.waiting}) {
      // No spin before sleeping: spinning measured slower (a training step's other work lost more than the wake saved).
      if (Atomics.wait(c, ${CTL.state}, ${STATE.waiting}, ${FAST_IDLE_MS}) === 'timed-out' && Atomics.compareExchange(c, ${CTL.state}, ${STATE.waiting}, ${STATE.idle}) === ${STATE.waiting}) return;
    } else if (s === ${STATE.claimed}) {
      Atomics.wait(c, ${CTL.state}, ${STATE.claimed}, 5);
    } else if (s === ${STATE.task}) {
      try {
        const n = c[${CTL.nargs}], args = new Array(n);
        for (let i = 0; i < n; i++) args[i] = fast.kinds[i] === 0 ? fast.nums[i] : arrays.get(fast.nums[i]);
        const fn = fns.get(keys[c[${CTL.key}]]);
        if (!fn) throw new Error('task ' + keys[c[${CTL.key}]] + ' was never defined on this worker');
        fn(args, c[${CTL.from}], c[${CTL.to}], ctx);
      } catch (e) {
        const text = new TextEncoder().encode(String((e && e.stack) || e)).subarray(0, ${ERROR_BYTES});
        fast.err.fill(0); fast.err.set(text);
        c[${CTL.error}] = 1;
      }
      Atomics.store(c, ${CTL.state}, ${STATE.waiting});
      Atomics.add(c, ${CTL.done}, 1);
      Atomics.notify(c, ${CTL.done});
    } else {
      Atomics.store(c, ${CTL.state}, ${STATE.idle});
      return;
    }
  }
}
function handle(msg, reply) {
  try {
    handleOne(msg, reply);
  } finally {
    if (fast) Atomics.add(fast.ctl, ${CTL.recv}, 1);
  }
  if (fast && msg.type === undefined) fastLoop();
}
function handleOne(msg, reply) {
  try {
    if (msg.type === 'fast') { const b = msg.buffer; fast = { ctl: new Int32Array(b, 0, ${CTL_BYTES / 4}), kinds: new Int32Array(b, ${CTL_BYTES}, ${MAX_FAST_ARGS}), nums: new Float64Array(b, ${CTL_BYTES + 4 * MAX_FAST_ARGS}, ${MAX_FAST_ARGS}), err: new Uint8Array(b, ${CTL_BYTES + 12 * MAX_FAST_ARGS}, ${ERROR_BYTES}) }; return; }
    if (msg.type === 'array') { arrays.set(msg.id, msg.array); return; }
    if (msg.type === 'forget') { arrays.delete(msg.id); return; }
    if (msg.type === 'define') { fns.set(msg.key, new Function('return (' + msg.source + ')')()); keys[msg.index] = msg.key; return; }
    if (msg.type === 'wasm') { ctx.wasm[msg.key] = new WebAssembly.Instance(msg.module, { env: { memory: msg.memory } }).exports; return; }
    if (msg.type === 'unwasm') { delete ctx.wasm[msg.key]; return; }
    const fn = fns.get(msg.key);
    if (!fn) throw new Error('task ' + msg.key + ' was never defined on this worker');
    const args = msg.args.map((a) => (typeof a === 'number' ? a : arrays.get(a.ref)));
    fn(args, msg.from, msg.to, ctx);
    reply({ id: msg.id });
  } catch (e) {
    reply({ id: msg.id, error: String((e && e.stack) || e) });
  }
}`;

type NodeWorkerModule = { Worker: new (src: string, opts: { eval: boolean }) => WorkerLike & { on(ev: string, f: (m: unknown) => void): void } };

function nodeBuiltin<T>(name: string): T | undefined {
  const proc = (globalThis as { process?: { getBuiltinModule?: (n: string) => unknown; versions?: { node?: string } } }).process;
  return proc?.versions?.node && proc.getBuiltinModule ? (proc.getBuiltinModule(name) as T) : undefined;
}

/** Cores this process may use: Node's availableParallelism, a browser's hardwareConcurrency. */
export function availableThreads(): number {
  const os = nodeBuiltin<{ availableParallelism?: () => number; cpus: () => unknown[] }>('node:os');
  if (os) return Math.max(1, os.availableParallelism?.() ?? os.cpus().length);
  const nav = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator;
  return Math.max(1, nav?.hardwareConcurrency ?? 1);
}

/** Why worker threads cannot run here, or null when they can. */
export function threadsUnavailable(): string | null {
  if (typeof SharedArrayBuffer === 'undefined') return 'SharedArrayBuffer is unavailable (a browser page needs COOP/COEP headers)';
  if (nodeBuiltin('node:worker_threads')) return null;
  if (typeof (globalThis as { Worker?: unknown }).Worker === 'function' && typeof Blob !== 'undefined') return null;
  return 'this JavaScript engine has neither worker_threads nor Web Workers';
}

export function isShared(a: TaskArg): boolean {
  return typeof a !== 'number' && a.buffer instanceof SharedArrayBuffer;
}

const WASM_PAGE = 65536;
/** wasm32's limit, less 64 MiB kept for a kernel's scratch beside the array. */
const WASM_BACKED_LIMIT = (65536 - 1) * WASM_PAGE - 64 * 2 ** 20;
const wasmBacked = new WeakMap<Float32Array, WebAssembly.Memory>();

/**
 * Where array `slot` of a group that a loop reads and writes in step starts past a 4 KiB
 * boundary. Large buffers all start on one, so element i of each shares its address's low 12
 * bits, and the CPU holds each load back behind the store just issued to another array (4K
 * aliasing): dense Adam ran 1.4x slower, lazy Adam's SIMD kernel 1.7x (wasm-simd/tables.ts).
 */
export function skewBytes(slot: number): number {
  return (slot * 1344) % 4096;
}

/**
 * A zero-filled float32 array that threads share (a plain one where SharedArrayBuffer is missing);
 * `skewSlot` > 0 starts it skewBytes(skewSlot) past its buffer's start.
 */
export function sharedFloat32(length: number, skewSlot = 0): Float32Array {
  if (typeof SharedArrayBuffer === 'undefined') return new Float32Array(length);
  const skew = skewBytes(skewSlot);
  return new Float32Array(new SharedArrayBuffer(4 * length + skew), skew, length);
}

/**
 * A zero-filled shared array for an expert table (an @sparse parameter): byte 0 of a shared
 * WebAssembly.Memory of its own, so the wasm-simd backend's kernels read and train it in place
 * (wasmMemoryOf) instead of copying a table that may be gigabytes (whose old copy the collector
 * would keep alive for a while). A plain shared array where that memory cannot be made.
 * Host JavaScript reads such memory several times slower than a plain buffer (measured: lazy
 * Adam 37 ms vs 134 ms per 16k rows of 256), so only tables the kernels own are made here.
 */
export function tableFloat32(length: number): Float32Array {
  const bytes = 4 * length;
  if (typeof SharedArrayBuffer !== 'undefined' && typeof WebAssembly !== 'undefined' && bytes <= WASM_BACKED_LIMIT) {
    try {
      const memory = new WebAssembly.Memory({ initial: Math.max(1, Math.ceil(bytes / WASM_PAGE)), maximum: 65536 - 1, shared: true });
      const a = new Float32Array(memory.buffer, 0, length);
      wasmBacked.set(a, memory);
      return a;
    } catch {
      // An engine that refuses the memory (address space): a plain shared buffer does as well.
    }
  }
  return sharedFloat32(length);
}

/** A parameter's float32 array: a table's (tableFloat32) for @sparse parameters, else a shared one. */
export function paramFloat32(p: { readonly sparse: boolean }, length: number): Float32Array {
  return p.sparse ? tableFloat32(length) : sharedFloat32(length);
}

/** The WebAssembly.Memory whose byte 0 `a` is (sharedFloat32 made it there), if any. */
export function wasmMemoryOf(a: Float32Array): WebAssembly.Memory | undefined {
  return wasmBacked.get(a);
}

/**
 * A shared output buffer made on first use and kept across calls: a step's shapes are fixed, and
 * a fresh multi-megabyte array per call costs more in page faults than the kernel itself.
 */
export function keptShared(length: number): () => Float32Array {
  let buf: Float32Array | undefined;
  return () => (buf ??= sharedFloat32(length));
}

/** `a` itself when threads can read it, else a shared copy. */
export function toShared<T extends Float32Array | Int32Array | Float64Array>(a: T, skewSlot = 0): T {
  if (isShared(a) || typeof SharedArrayBuffer === 'undefined') return a;
  const C = a.constructor as new (b: SharedArrayBuffer, offset: number, length: number) => T;
  const skew = skewBytes(skewSlot);
  const out = new C(new SharedArrayBuffer(a.byteLength + skew), skew, a.length);
  out.set(a as never);
  return out;
}

export class WorkerPool {
  private readonly workers: WorkerLike[] = [];
  private readonly local = new Map<string, (args: TaskArg[], from: number, to: number, ctx: TaskContext) => void>();
  private readonly defined = new Set<string>();
  private readonly ctx: TaskContext = { wasm: {} };
  private readonly pending = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
  private nextId = 0;
  private inFlight = 0;
  /**
   * Shared arrays are sent to the workers once and named by number afterwards: a SharedArrayBuffer
   * sent per call arrives as a new object, and the worker's heap counts its whole size (1 GiB per
   * expert table) as new external memory each time, which kept V8's collector busy on both cores.
   */
  private readonly arrayIds = new WeakMap<object, number>();
  private nextArray = 0;
  private readonly forget = typeof FinalizationRegistry === 'function' ? new FinalizationRegistry<number>((id) => this.workers.forEach((_, p) => this.send(p, { type: 'forget', id }))) : undefined;
  /** Each worker's control block (undefined where this thread may not block: a browser's main thread). */
  private readonly fast: { ctl: Int32Array; kinds: Int32Array; nums: Float64Array; err: Uint8Array }[] | undefined;
  private readonly keyIndex = new Map<string, number>();
  /** Calls made through the control blocks and by message (tests read these). */
  readonly calls = { fast: 0, message: 0 };

  /** Posts to worker p, first kicking it out of its control-block loop so that it reads its messages. */
  private send(p: number, msg: unknown): void {
    const f = this.fast?.[p];
    // Counted before the kick: a worker about to wait sees the count or is kicked (never neither).
    if (f) {
      Atomics.add(f.ctl, CTL.sent, 1);
      if (Atomics.compareExchange(f.ctl, CTL.state, STATE.waiting, STATE.kick) === STATE.waiting) Atomics.notify(f.ctl, CTL.state);
    }
    this.workers[p]!.postMessage(msg);
  }

  private arrayRef(a: Float32Array | Int32Array | Float64Array): { ref: number } {
    let id = this.arrayIds.get(a);
    if (id === undefined) {
      id = this.nextArray++;
      this.arrayIds.set(a, id);
      this.workers.forEach((_, p) => this.send(p, { type: 'array', id, array: a }));
      this.forget?.register(a, id);
    }
    return { ref: id };
  }

  /** `threads` counts the caller: a pool of 2 is the calling thread and one worker. */
  constructor(readonly threads: number) {
    if (!(Number.isInteger(threads) && threads >= 1)) throw new RangeError(`threads must be a whole number >= 1, not ${threads}`);
    if (threads > 1) {
      const why = threadsUnavailable();
      if (why) throw new Error(`cannot start ${threads} threads: ${why}`);
    }
    for (let i = 1; i < threads; i++) this.workers.push(this.spawn());
    if (this.workers.length > 0 && mayBlock()) {
      this.fast = this.workers.map((_, p) => {
        const buffer = new SharedArrayBuffer(CTL_BYTES + 12 * MAX_FAST_ARGS + ERROR_BYTES);
        const f = { ctl: new Int32Array(buffer, 0, CTL_BYTES / 4), kinds: new Int32Array(buffer, CTL_BYTES, MAX_FAST_ARGS), nums: new Float64Array(buffer, CTL_BYTES + 4 * MAX_FAST_ARGS, MAX_FAST_ARGS), err: new Uint8Array(buffer, CTL_BYTES + 12 * MAX_FAST_ARGS, ERROR_BYTES) };
        // The 'fast' message itself is counted by the worker once it has the block.
        Atomics.store(f.ctl, CTL.sent, 1);
        this.send(p, { type: 'fast', buffer });
        return f;
      });
    }
  }

  private spawn(): WorkerLike {
    const onReply = (m: { id: number; error?: string }) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.error) p.reject(new Error(`worker task failed: ${m.error}`));
      else p.resolve();
    };
    const wt = nodeBuiltin<NodeWorkerModule>('node:worker_threads');
    if (wt) {
      const w = new wt.Worker(`${WORKER_BODY}\nconst { parentPort } = require('node:worker_threads');\nparentPort.on('message', (m) => handle(m, (r) => parentPort.postMessage(r)));`, { eval: true });
      w.on('message', (m) => onReply(m as { id: number; error?: string }));
      w.on('error', (e) => {
        for (const p of this.pending.values()) p.reject(e as Error);
        this.pending.clear();
      });
      w.unref?.();
      return w;
    }
    const src = `${WORKER_BODY}\nself.onmessage = (e) => handle(e.data, (r) => self.postMessage(r));`;
    const url = URL.createObjectURL(new Blob([src], { type: 'text/javascript' }));
    const W = (globalThis as unknown as { Worker: new (u: string) => WorkerLike & { onmessage: ((e: { data: unknown }) => void) | null } }).Worker;
    const w = new W(url);
    w.onmessage = (e) => onReply(e.data as { id: number; error?: string });
    return w;
  }

  /** Makes `task` callable on every thread (compiled once per thread). */
  define(task: PoolTask): void {
    if (this.defined.has(task.key)) return;
    this.local.set(task.key, new Function(`return (${task.source})`)() as never);
    const index = this.keyIndex.size;
    this.keyIndex.set(task.key, index);
    this.workers.forEach((_, p) => this.send(p, { type: 'define', key: task.key, source: task.source, index }));
    this.defined.add(task.key);
  }

  /** Instantiates a wasm module on every thread over one shared memory, as ctx.wasm[key]. */
  defineWasm(key: string, module: WebAssembly.Module, memory: WebAssembly.Memory): WebAssembly.Exports {
    if (!this.ctx.wasm[key]) {
      this.ctx.wasm[key] = new WebAssembly.Instance(module, { env: { memory } }).exports;
      this.workers.forEach((_, p) => this.send(p, { type: 'wasm', key, module, memory }));
    }
    return this.ctx.wasm[key]!;
  }

  /** Drops the instances of `key` on every thread (its memory is freed once nothing else holds it). */
  forgetWasm(key: string): void {
    delete this.ctx.wasm[key];
    this.workers.forEach((_, p) => this.send(p, { type: 'unwasm', key }));
  }

  /**
   * Runs `task` over lanes [0, lanes), split into contiguous parts (multiples of `grain`),
   * one per thread; below `minLanes` per extra thread the caller does it all. `outputs`: the
   * arguments the task writes (plain arrays among them are copied back; pass shared ones).
   */
  async run(task: PoolTask, args: TaskArg[], lanes: number, options: { grain?: number; minLanes?: number; outputs?: number[] } = {}): Promise<void> {
    this.define(task);
    const grain = options.grain ?? 1;
    const parts = Math.max(1, Math.min(this.threads, Math.floor(lanes / Math.max(grain, options.minLanes ?? grain))));
    const fn = this.local.get(task.key)!;
    if (parts === 1) {
      fn(args, 0, lanes, this.ctx);
      return;
    }
    const shared = args.map((a, i) => (typeof a === 'number' || isShared(a) ? a : this.staged(`${task.key}:${i}`, a)));
    const refs = shared.map((a) => (typeof a === 'number' ? a : this.arrayRef(a)));
    const per = Math.ceil(lanes / parts / grain) * grain;
    if (this.fastRun(task, shared, refs, lanes, parts, per, fn)) {
      for (const i of options.outputs ?? []) if (shared[i] !== args[i]) (args[i] as Float32Array).set(shared[i] as Float32Array);
      return;
    }
    this.calls.message++;
    const waits: Promise<void>[] = [];
    if (this.inFlight++ === 0) for (const w of this.workers) w.ref?.();
    try {
      for (let p = 1; p < parts; p++) {
        const from = Math.min(lanes, p * per), to = Math.min(lanes, from + per);
        if (from >= to) continue;
        const id = this.nextId++;
        waits.push(new Promise<void>((resolve, reject) => this.pending.set(id, { resolve, reject })));
        this.send(p - 1, { id, key: task.key, args: refs, from, to });
      }
      fn(shared, 0, Math.min(lanes, per), this.ctx);
      await Promise.all(waits);
    } finally {
      if (--this.inFlight === 0) for (const w of this.workers) w.unref?.();
    }
    // Outputs the caller passed as plain arrays got shared copies: copy the results back.
    for (const i of options.outputs ?? []) if (shared[i] !== args[i]) (args[i] as Float32Array).set(shared[i] as Float32Array);
  }

  /**
   * The call through the control blocks, when every worker it needs waits in one having handled
   * all its messages; false (nothing done) otherwise, and the call goes by message. The calling
   * thread blocks until the workers are done (it has nothing else to do meanwhile).
   */
  private fastRun(task: PoolTask, shared: TaskArg[], refs: (number | { ref: number })[], lanes: number, parts: number, per: number, fn: (args: TaskArg[], from: number, to: number, ctx: TaskContext) => void): boolean {
    if (!this.fast || refs.length > MAX_FAST_ARGS) return false;
    const claimed: number[] = [];
    for (let p = 1; p < parts; p++) {
      if (Math.min(lanes, p * per) >= lanes) continue;
      const f = this.fast[p - 1]!;
      // A worker waiting in its block handles no messages, so its count cannot move under us.
      if (Atomics.load(f.ctl, CTL.recv) === Atomics.load(f.ctl, CTL.sent) && Atomics.compareExchange(f.ctl, CTL.state, STATE.waiting, STATE.claimed) === STATE.waiting) {
        claimed.push(p);
        continue;
      }
      for (const q of claimed) {
        Atomics.store(this.fast[q - 1]!.ctl, CTL.state, STATE.waiting);
        Atomics.notify(this.fast[q - 1]!.ctl, CTL.state);
      }
      return false;
    }
    const key = this.keyIndex.get(task.key)!;
    const before = claimed.map((p) => {
      const f = this.fast![p - 1]!, from = Math.min(lanes, p * per);
      refs.forEach((r, i) => {
        f.kinds[i] = typeof r === 'number' ? 0 : 1;
        f.nums[i] = typeof r === 'number' ? r : r.ref;
      });
      f.ctl[CTL.key] = key;
      f.ctl[CTL.from] = from;
      f.ctl[CTL.to] = Math.min(lanes, from + per);
      f.ctl[CTL.nargs] = refs.length;
      f.ctl[CTL.error] = 0;
      const done = Atomics.load(f.ctl, CTL.done);
      Atomics.store(f.ctl, CTL.state, STATE.task);
      Atomics.notify(f.ctl, CTL.state);
      return done;
    });
    this.calls.fast++;
    let failure: string | undefined;
    try {
      fn(shared, 0, Math.min(lanes, per), this.ctx);
    } finally {
      claimed.forEach((p, i) => {
        const f = this.fast![p - 1]!;
        while (Atomics.load(f.ctl, CTL.done) === before[i]) Atomics.wait(f.ctl, CTL.done, before[i]!, 1000);
        if (f.ctl[CTL.error]) failure ??= new TextDecoder().decode(f.err.slice(0, f.err.indexOf(0) < 0 ? f.err.length : f.err.indexOf(0)));
      });
    }
    if (failure !== undefined) throw new Error(`worker task failed: ${failure}`);
    return true;
  }

  private readonly staging = new Map<string, Float32Array | Int32Array | Float64Array>();

  /** A shared copy of a plain input, in a buffer kept per task argument (fresh pages per call cost more than the copy). */
  private staged<T extends Float32Array | Int32Array | Float64Array>(key: string, a: T): T {
    let buf = this.staging.get(key) as T | undefined;
    if (!buf || buf.length !== a.length || buf.constructor !== a.constructor) {
      buf = toShared(a, 3); // skewed: a task's gradient beside the weights and moments
      this.staging.set(key, buf);
      return buf;
    }
    buf.set(a as never);
    return buf;
  }

  destroy(): void {
    for (const w of this.workers) w.terminate();
    this.workers.length = 0;
  }
}

/** Whether this thread may block in Atomics.wait (not a browser's main thread). */
function mayBlock(): boolean {
  try {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 1, 0);
    return true;
  } catch {
    return false;
  }
}

const pools = new Map<number, WorkerPool>();

/** One pool per thread count per process: executors share it (workers sleep, unreferenced, when idle). */
export function workerPool(threads = defaultThreads()): WorkerPool {
  let p = pools.get(threads);
  if (!p) pools.set(threads, (p = new WorkerPool(threads)));
  return p;
}

/** Process-wide wasm-simd settings from the command line (--threads, --plain-simd); undefined: the defaults. */
export const simdSettings: { threads?: number; relaxed?: boolean } = {};

/** --threads when given, PEERC_THREADS when set, else the cores available (at most 16). */
export function defaultThreads(): number {
  if (simdSettings.threads !== undefined) return simdSettings.threads;
  const env = nodeBuiltin<{ env: Record<string, string | undefined> }>('node:process')?.env.PEERC_THREADS;
  if (env !== undefined && /^\d+$/.test(env) && Number(env) >= 1) return Number(env);
  return threadsUnavailable() ? 1 : Math.min(16, availableThreads());
}
