// Messages between the playground page and its two workers: the compiler (checks as you type,
// info, IR per pass, the emitted module) and the kernels (run, bench, train on a backend).

/** A checker diagnostic located in the editor's text (offsets are UTF-16 indices, as CodeMirror's). */
export interface PageDiagnostic {
  code: string;
  message: string;
  /** Null where the error is not in the edited text (the prelude, a flag, no span). */
  from: number | null;
  to: number | null;
  line: number | null;
  col: number | null;
  /** The whole report as the CLI prints it: file:line:col, the line and a caret. */
  rendered: string;
}

export interface IRDump {
  pass: string;
  text: string;
}

export type CompilerRequest =
  | { kind: 'check'; version: number; source: string; file: string }
  | { kind: 'emit'; version: number; source: string; file: string; lowering: 'fused' | 'naive' };

export type CompilerReply =
  | {
      kind: 'checked';
      version: number;
      ms: number;
      diagnostics: PageDiagnostic[];
      /** Present when the program compiled and has a model. */
      info?: { text: string; entry: string | null; parameters: number; inputs: { name: string; dtype: string; shape: string[] }[]; train: TrainDefaults };
      ir?: IRDump[];
      fusion?: string[];
      /** Compiled but no model to run (a library of layers). */
      noModel?: boolean;
    }
  | { kind: 'emitted'; version: number; fileName: string; text: string }
  | { kind: 'failed'; version: number; message: string };

export type BrowserBackend = 'cpu' | 'webasm' | 'webasm-threads' | 'wasm-simd' | 'webgl2' | 'webgpu' | 'gpujs-webgpu';
export const BROWSER_BACKENDS: readonly BrowserBackend[] = ['webgpu', 'gpujs-webgpu', 'webgl2', 'wasm-simd', 'webasm-threads', 'webasm', 'cpu'];

export interface TrainSettingsIn {
  task: 'recall' | 'text';
  text?: Uint8Array;
  textName?: string;
  /** Unset: the program's train {} block, then peerc train's defaults. */
  steps?: number;
  batch?: number;
  seq?: number;
  lr?: number;
  evalEvery?: number;
}

/** The settings a run gets for each task when the page sets nothing (as `peerc train` with no flags). */
export interface TrainDefaults {
  task: 'recall' | 'text';
  perTask: Partial<Record<'recall' | 'text', { steps: number; batch: number; seq: number; lr: number; evalEvery: number }>>;
}

export type KernelRequest =
  | { kind: 'backends'; id: number }
  | { kind: 'run'; id: number; source: string; file: string; backend: BrowserBackend; lowering: 'fused' | 'naive'; seed: number; tokens: number }
  | { kind: 'bench'; id: number; source: string; file: string; backends: BrowserBackend[]; tokens: number; runs: number }
  | { kind: 'train'; id: number; source: string; file: string; backend: BrowserBackend; settings: TrainSettingsIn }
  | { kind: 'stop'; id: number }
  | { kind: 'resume'; id: number }
  | { kind: 'sample'; id: number; prompt: string; tokens: number; temperature: number }
  | { kind: 'checkpoint'; id: number };

export interface BackendAvailability {
  backend: BrowserBackend;
  /** Null when it can run here. */
  unavailable: string | null;
  /** The adapter or renderer (GPUs), threads and SIMD (wasm-simd). */
  device: string;
}

export interface OutputSummary {
  shape: number[];
  min: number;
  max: number;
  mean: number;
  std: number;
  head: number[];
}

export interface BenchRow {
  backend: BrowserBackend;
  unavailable?: string;
  error?: string;
  /** The backend every kernel ran on (checked: no silent fallback), with its details. */
  ran?: string;
  detail?: string;
  device?: string;
  fusedMs?: number;
  naiveMs?: number;
  fusedKernels?: number;
  naiveKernels?: number;
  /** max |fused - naive| / max |naive|. */
  fusedVsNaive?: number;
  /** Per-kernel milliseconds of the median fused and naive runs. */
  perKernel?: { lowering: 'fused' | 'naive'; label: string; ms: number }[];
}

export interface TrainPoint {
  step: number;
  split: 'train' | 'validation';
  loss: number;
  accuracy?: number;
  tokensPerS?: number;
  experts?: { param: string; usage: number; unevenness: number; cap?: number }[];
}

export type KernelReply =
  | { kind: 'backends'; id: number; list: BackendAvailability[]; isolated: boolean }
  | { kind: 'ran'; id: number; backend: string; detail: string; outputs: OutputSummary[]; ms: number; reference: { maxError: number } | { skipped: string }; kernels: string[]; timings: [string, number][] }
  | { kind: 'bench-row'; id: number; row: BenchRow }
  | { kind: 'bench-done'; id: number; tokens: number }
  | { kind: 'train-start'; id: number; describe: string; backend: string; data: string; steps: number; parameters: number }
  | { kind: 'train-point'; id: number; point: TrainPoint; counts?: [string, Float64Array][] }
  | { kind: 'train-stopped'; id: number; step: number; finished: boolean }
  | { kind: 'sampled'; id: number; text: string }
  | { kind: 'checkpoint'; id: number; bytes: Uint8Array; step: number }
  | { kind: 'error'; id: number; message: string; code?: string };
