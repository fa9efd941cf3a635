// The peerc subcommands.
import { compileSource, decodeSource, type CompileResult } from '../../src/frontend.js';
import { printModule } from '../../src/ir/print.js';
import type { IRModule } from '../../src/ir/graph.js';
import { entryFunction, interpret } from '../../src/interp/interpreter.js';
import { loadInputs, loadWeights, readFileChecked, seededInputs, seededWeights, toWrite, UsageError } from '../../src/io/tensors.js';
import { writeSafetensorsFile } from '../../src/io/safetensors-file.js';
import { ONNX_EXPORT, optimize, passNames, runPasses } from '../../src/passes/pipeline.js';
import { verifyModule } from '../../src/ir/verify.js';
import { parseArgs, setOverrides, type FlagSpec } from './args.js';
import { ProgramErrors } from './errors.js';
import { runDemo } from './demo.js';
import { moduleInfo } from './info.js';
import { runBench } from './bench.js';
import { runTrainBench } from './bench-train.js';
import type { OptimizerKind } from '../train/optim.js';
import { compileToDir } from './compile.js';
import { BACKENDS, isBackendName, resolveBackend, type BackendName } from '../backends/info.js';
import { Executor, toFloat32 } from '../executor.js';
import { runTrain } from './train.js';
import { compileTraining } from '../../src/autodiff/differentiate.js';
import { CompileError, diagnostic } from '../../src/diagnostics/diagnostic.js';
import { readCheckpoint } from '../train/checkpoint.js';
import { setOf } from '../train/settings.js';
import { checkpointProgram } from '../train/checkpoint-program.js';
import { writeFileDurably } from '../../src/io/durable.js';
import { runSample } from './sample.js';
import { checkFiniteOutputs } from '../../src/interp/input-checks.js';
import { fusedSummary, unfusedPatterns } from '../../src/passes/fusion-notes.js';
import { simdSettings, threadsUnavailable } from '../pool.js';
import { emitTorch, torchClassName, torchModule } from '../../codegen/torch.js';
import { emitTorchTrain } from '../../codegen/torch-train.js';
import { torchTrainSpec } from './export-train.js';
import { chooseKernels } from './export-kernels.js';
import { runFormat } from './fmt.js';
import { startServer } from '../lsp/server.js';
import { emitOnnx } from '../../codegen/onnx/export.js';
import { ensureDir } from '../../src/io/files.js';
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { PEERC_VERSION } from './version.js';
import { compareRuns } from './compare.js';
import { runSweep } from './sweep.js';
import { buildPlayground, playgroundDir, servePlayground } from './playground.js';

/** Whether the backend `auto` picks here reads parameter tables in place while training. */
function autoBackendReadsTablesInPlace(): boolean {
  try {
    return resolveBackend('auto').tablesInPlace === true;
  } catch {
    return false;
  }
}

/** The patterns a fused lowering left unfused, as `file:line:col: note: ...` lines (empty when none). */
export function fusionNoteLines(fused: IRModule, options: { retrievalOnly?: boolean } = {}): string {
  return unfusedPatterns(fused, options).map((n) => `${n.span ? `${n.span.file}:${n.span.line}:${n.span.col}: ` : ''}note: ${n.message}\n`).join('');
}

export interface Command {
  summary: string;
  run(args: string[]): Promise<number> | number;
}

function oneFile(positional: string[], command: string): string {
  if (positional.length !== 1) throw new UsageError(`'peerc ${command}' takes one .peer file (got ${positional.length})`);
  return positional[0]!;
}

/** Reads and compiles a file (with --entry and --set from `flags`); program errors end the command with exit status 1. */
export function compileFile(path: string, flags: ReadonlyMap<string, unknown> = new Map()): CompileResult & { module: IRModule } {
  const decoded = decodeSource(readFileChecked(path), path);
  if ('error' in decoded) throw new ProgramErrors([decoded.error], new Map());
  const r = compileSource(decoded.text, path, { entry: flags.get('entry') as string | undefined, set: setOverrides(flags) });
  if (!r.module) throw new ProgramErrors(r.diagnostics, r.sources);
  return r as CompileResult & { module: IRModule };
}

/** A count flag (whole number >= 1, checked by the parser) or its default. */
function atLeastOne(flags: Map<string, string | number | boolean>, name: string, fallback: number): number {
  const v = (flags.get(name) as number | undefined) ?? fallback;
  if (v < 1) throw new UsageError(`--${name} needs a whole number >= 1, not ${v}`);
  return v;
}

const entryFlag: FlagSpec = { entry: 'string', set: 'repeated' };

export const COMMANDS: Record<string, Command> = {
  fmt: {
    summary: 'fmt FILE|DIR... [--check] | --stdin      rewrite .peer files in the canonical layout (comments kept)',
    run(args) {
      const p = parseArgs(args, { check: 'boolean', stdin: 'boolean' }, 'fmt');
      return runFormat(p.positional, { check: p.flags.get('check') === true, stdin: p.flags.get('stdin') === true });
    },
  },
  lsp: {
    summary: 'lsp [--stdio]                          the language server (LSP over stdio) for editors',
    run(args) {
      parseArgs(args, { stdio: 'boolean' }, 'lsp');
      startServer();
      // The server runs until the editor closes the connection (it exits the process then).
      return new Promise<number>(() => {});
    },
  },
  check: {
    summary: 'check FILE [--entry LAYER]            check names, dtypes and shapes; report every error',
    run(args) {
      const p = parseArgs(args, entryFlag, 'check');
      const file = oneFile(p.positional, 'check');
      const r = compileFile(file, p.flags);
      const fns = r.module.functions.size;
      process.stdout.write(`${file}: ok (${r.module.params.length} parameters, ${fns} function${fns === 1 ? '' : 's'}${r.module.entry ? `, entry @${r.module.entry}` : ', no model'})\n`);
      if (r.module.entry) process.stdout.write(fusionNoteLines(optimize(r.module, { lowering: 'fused' })));
      return 0;
    },
  },
  ir: {
    summary: `ir FILE [--dump-after PASS] [--entry L] [--train] [--explain-fusion]  print the IR after a pass (${['check', ...passNames()].join(', ')}); --train: the training program; --explain-fusion: what fused and why not`,
    run(args) {
      const p = parseArgs(args, { ...entryFlag, 'dump-after': 'string', train: 'boolean', 'explain-fusion': 'boolean' }, 'ir');
      const file = oneFile(p.positional, 'ir');
      const explain = p.flags.get('explain-fusion') === true;
      const after = (p.flags.get('dump-after') as string | undefined) ?? (explain ? 'fuse-dce' : 'dce');
      if (after !== 'check' && !passNames().includes(after)) throw new UsageError(`unknown pass '${after}'; passes are: check, ${passNames().join(', ')}`);
      const r = compileFile(file, p.flags);
      let m = r.module;
      if (p.flags.get('train')) {
        if (!m.entry) throw new UsageError(`${file} has no model to train; pass --entry LAYER`);
        try {
          // As `peerc train` compiles it on the default backend (fused expert reads where it reads tables in place).
          m = compileTraining(m, { gradients: true, fuseExpertReads: autoBackendReadsTablesInPlace() }).module;
        } catch (e) {
          if (e instanceof CompileError) throw new ProgramErrors([e.diagnostic], r.sources);
          throw e;
        }
      } else if (after !== 'check') {
        if (!m.entry) throw new UsageError(`${file} has no model to optimise; pass --entry LAYER or use --dump-after check`);
        m = optimize(m, { stopAfter: after });
      }
      const problems = verifyModule(m);
      if (problems.length) throw new Error(`IR verification failed after ${after}: ${problems[0]}`);
      if (explain) {
        if (!r.module.entry) throw new UsageError(`${file} has no model to fuse; pass --entry LAYER`);
        const fused = p.flags.get('train') ? m : optimize(r.module, { lowering: 'fused' });
        const lines = [...fusedSummary(fused), ...unfusedPatterns(fused, { retrievalOnly: p.flags.get('train') === true }).map((n) => `not fused${n.span ? ` (${n.span.file}:${n.span.line}:${n.span.col})` : ''}: ${n.message}`)];
        process.stdout.write((lines.length ? lines : ['no fusion patterns in this program']).map((l) => `# ${l}\n`).join('') + '\n');
      }
      process.stdout.write(printModule(m));
      return 0;
    },
  },
  info: {
    summary: 'info FILE|CHECKPOINT [--json] [--entry L]  parameters (names, shapes, dtypes), inputs, outputs, training settings',
    run(args) {
      const p = parseArgs(args, { ...entryFlag, json: 'boolean' }, 'info');
      const file = oneFile(p.positional, 'info');
      if (file.endsWith('.safetensors')) return checkpointInfo(file, p.flags.get('json') === true);
      const r = compileFile(file, p.flags);
      const info = moduleInfo(r.module);
      process.stdout.write(p.flags.get('json') ? JSON.stringify(info, null, 2) + '\n' : info.text);
      return 0;
    },
  },
  run: {
    summary: 'run FILE (--weights W.safetensors | --seed S) --inputs I.safetensors --out O.safetensors [--backend B] [--train-mode: reference backend only]',
    run(args) {
      const p = parseArgs(args, { ...entryFlag, weights: 'string', seed: 'integer', inputs: 'string', out: 'string', 'train-mode': 'boolean', backend: 'string', lowering: 'string', threads: 'integer', 'plain-simd': 'boolean' }, 'run');
      simdFlags(p.flags, 'reference');
      const file = oneFile(p.positional, 'run');
      const backend = (p.flags.get('backend') as string | undefined) ?? 'reference';
      const lowering = (p.flags.get('lowering') as string | undefined) ?? 'fused';
      if (backend !== 'reference' && !isBackendName(backend)) throw new UsageError(`unknown backend '${backend}'; backends are: reference, auto, ${Object.keys(BACKENDS).join(', ')}`);
      if (lowering !== 'naive' && lowering !== 'fused') throw new UsageError(`--lowering is naive or fused, not '${lowering}'`);
      if (backend !== 'reference') resolveBackend(backend as BackendName | 'auto'); // unavailable backends fail before any work
      const inputsPath = p.flags.get('inputs') as string | undefined;
      const outPath = p.flags.get('out') as string | undefined;
      if (!inputsPath || !outPath) throw new UsageError("'peerc run' needs --inputs I.safetensors and --out O.safetensors");
      if (p.flags.has('weights') === p.flags.has('seed')) throw new UsageError("'peerc run' needs exactly one of --weights W.safetensors or --seed S");
      const r = compileFile(file, p.flags);
      const m = r.module;
      const fn = entryFunction(m);
      const weights = p.flags.has('seed') ? seededWeights(m, p.flags.get('seed') as number) : loadWeights(m, p.flags.get('weights') as string);
      const inputs = loadInputs(fn, inputsPath);
      const training = p.flags.get('train-mode') === true;
      const name = (i: number, n: number) => (n === 1 ? 'output' : `output_${i}`);
      if (backend === 'reference') {
        const result = interpret(m, inputs, weights, { training });
        const tensors = result.outputs.map((t, i) => toWrite(name(i, result.outputs.length), t));
        for (const [buf, t] of result.bufferUpdates) tensors.push(toWrite(`buffer.${buf}`, t));
        writeSafetensorsFile(outPath, tensors, { producer: 'peerc run (float64 reference interpreter)', entry: m.entry });
        const dims = [...result.dims].map(([k, v]) => `${k} = ${v}`).join(', ');
        process.stdout.write(`wrote ${outPath}: ${tensors.map((t) => `${t.name} [${t.shape.join(', ')}]`).join(', ')}${dims ? ` (${dims})` : ''}\n`);
        return 0;
      }
      if (training) throw new UsageError('--train-mode runs on the reference backend only (training on gpu.js backends comes with peerc train)');
      return (async () => {
        const ex = new Executor(optimize(m, { lowering }), weights, backend as BackendName | 'auto');
        try {
          const r = await ex.forward(inputs);
          checkFiniteOutputs(r.outputs);
          const tensors = r.outputs.map((t, i) => ({ name: name(i, r.outputs.length), dtype: 'F32' as const, shape: t.shape, element: (j: number) => t.data[j]! }));
          writeSafetensorsFile(outPath, tensors, { producer: `peerc run (${ex.backend.name}, ${lowering})`, entry: m.entry });
          process.stdout.write(`wrote ${outPath}: ${tensors.map((t) => `${t.name} [${t.shape.join(', ')}]`).join(', ')} (backend ${ex.describe()}, ${lowering} lowering, ${ex.kernelCount()} kernels)\n`);
          for (const n of ex.notes()) process.stdout.write(`note: ${n}\n`);
          return 0;
        } finally {
          ex.destroy();
        }
      })();
    },
  },
  compile: {
    summary: 'compile FILE -o DIR [--lowering fused|naive]   emit a typed TypeScript module and ESM bundles (Node, browser)',
    async run(args) {
      const p = parseArgs(args, { ...entryFlag, o: 'string', out: 'string', lowering: 'string' }, 'compile');
      const file = oneFile(p.positional, 'compile');
      const outDir = (p.flags.get('o') ?? p.flags.get('out')) as string | undefined;
      if (!outDir) throw new UsageError("'peerc compile' needs -o DIR");
      const lowering = (p.flags.get('lowering') as string | undefined) ?? 'fused';
      if (lowering !== 'naive' && lowering !== 'fused') throw new UsageError(`--lowering is naive or fused, not '${lowering}'`);
      const r = compileFile(file, p.flags);
      if (!r.module.entry) throw new UsageError(`${file} has no model to compile; pass --entry LAYER`);
      const written = await compileToDir(r.module, file, outDir, lowering, { text: r.sources.get(file) ?? '', set: setOverrides(p.flags).map(([n, v]) => `${n}=${v}`).join(' ') });
      process.stdout.write(written.map((w) => `wrote ${w}\n`).join(''));
      return 0;
    },
  },
  compare: {
    summary: 'compare RUN_DIR... [--plots DIR]     runs side by side: losses, bits/byte, tokens/s, expert usage, cost per token; seeds as mean ± std',
    run(args) {
      const p = parseArgs(args, { plots: 'string' }, 'compare');
      process.stdout.write(compareRuns(p.positional, p.flags.get('plots') as string | undefined));
      const plots = p.flags.get('plots') as string | undefined;
      if (plots) process.stdout.write(`wrote ${join(plots, 'compare-loss-step.svg')}, ${join(plots, 'compare-loss-time.svg')}\n`);
      return 0;
    },
  },
  sweep: {
    summary: 'sweep FILE.json                      a grid of programs x --set values x seeds, one run each (skips finished, resumes stopped), then compare',
    run(args) {
      const p = parseArgs(args, {}, 'sweep');
      if (p.positional.length !== 1) throw new UsageError("'peerc sweep' takes one sweep file (experiments/NAME.json)");
      return runSweep(p.positional[0]!, process.argv[1]!, (line) => process.stdout.write(line + '\n'));
    },
  },
  export: {
    summary: 'export FILE --torch -o DIR | --onnx -o M.onnx (--seed S | --weights W)   the model for PyTorch (nn.Module, load_peerc) or ONNX Runtime',
    run(args) {
      const p = parseArgs(args, { ...entryFlag, torch: 'boolean', onnx: 'boolean', o: 'string', out: 'string', seed: 'integer', weights: 'string', kernels: 'string' }, 'export');
      const file = oneFile(p.positional, 'export');
      const out = (p.flags.get('o') ?? p.flags.get('out')) as string | undefined;
      if (p.flags.get('torch') === p.flags.get('onnx')) throw new UsageError("'peerc export' needs one target: --torch or --onnx");
      if (!out) throw new UsageError(`'peerc export' needs -o ${p.flags.get('torch') ? 'DIR' : 'MODEL.onnx'}`);
      if (p.flags.has('kernels') && !p.flags.get('torch')) throw new UsageError("--kernels is for 'peerc export --torch' (the ONNX model runs ONNX Runtime's kernels)");
      const r = compileFile(file, p.flags);
      if (!r.module.entry) throw new UsageError(`${file} has no model to export; pass --entry LAYER`);
      if (p.flags.get('torch')) {
        const fused = torchModule(r.module);
        const choice = chooseKernels(p.flags.get('kernels') as string | undefined);
        const py = emitTorch(fused, file, PEERC_VERSION, { kernels: choice.kernels });
        ensureDir(out);
        const path = join(out, py.fileName);
        writeFileDurably(path, py.text);
        process.stdout.write(`wrote ${path}: class ${torchClassName(r.module.entry)} and load_peerc(path) (PyTorch, ${r.module.params.length} parameters and buffers)\n`);
        if (choice.note) process.stdout.write(`note: ${choice.note}\n`);
        for (const note of py.notes) process.stdout.write(`note: ${note}\n`);
        const spec = torchTrainSpec(r.module, file, r.sources.get(file)!, p.flags);
        if ('skipped' in spec) {
          process.stdout.write(`note: train.py not written: ${spec.skipped}\n`);
          return 0;
        }
        const trainPath = join(out, 'train.py');
        const train = emitTorchTrain(fused, spec);
        writeFileDurably(trainPath, train.script);
        writeFileDurably(join(out, 'train.json'), train.config);
        const sharded = train.rowSharded;
        process.stdout.write(`wrote ${trainPath} and ${join(out, 'train.json')} (its settings): torchrun --nproc-per-node N ${trainPath} (FSDP2${sharded.length ? `; ${sharded.join(', ')} sharded by rows` : ''}; ${spec.settings.task} task)\n`);
        // A @sparse table FSDP2 keeps gets dense gradients there: say so rather than let it pass.
        const dense = fused.params.filter((q) => q.sparse && !sharded.includes(q.name)).map((q) => q.name);
        if (dense.length) process.stdout.write(`note: train.py keeps @sparse ${dense.join(', ')} under FSDP2 with dense gradients (updated lazily on the rows that got one): only 2-D tables read by gathers and expert ops shard by rows\n`);
        return 0;
      }
      // ONNX carries the weights: seeded ones or a weights file, converted one tensor at a time.
      if (p.flags.has('weights') === p.flags.has('seed')) throw new UsageError("'peerc export --onnx' needs the weights: exactly one of --weights W.safetensors or --seed S");
      const tensors = p.flags.has('seed') ? seededWeights(r.module, p.flags.get('seed') as number) : loadWeights(r.module, p.flags.get('weights') as string);
      const m = runPasses(r.module, ONNX_EXPORT);
      const exported = emitOnnx(m, { get: (n) => toFloat32(tensors.get(n)!) }, out, `peerc ${PEERC_VERSION}`);
      const written = [out];
      // The external data first: a model file on disk always has its data beside it.
      if (exported.external) {
        const ext = join(dirname(resolve(out)), exported.external.name.split('/').pop()!);
        writeFileDurably(ext, exported.external.chunks);
        written.push(ext);
      }
      writeFileDurably(out, exported.model);
      process.stdout.write(`wrote ${written.join(' and ')}: ONNX opset ${exported.opset}, @${r.module.entry}, ${r.module.params.length} weights${exported.external ? ' (large ones as external data)' : ''}\n`);
      return 0;
    },
  },
  bench: {
    summary: 'bench FILE [--tokens B] [--backend B] [--runs R] [--json] [--train]  fused vs naive kernels vs the reference interpreter; --train: the training step',
    run(args) {
      const p = parseArgs(args, { ...entryFlag, tokens: 'integer', backend: 'string', runs: 'integer', json: 'boolean', 'skip-naive': 'boolean', 'skip-reference': 'boolean', 'skip-ort': 'boolean', train: 'boolean', threads: 'integer', 'plain-simd': 'boolean', optimizer: 'string' }, 'bench');
      simdFlags(p.flags);
      const r = compileFile(oneFile(p.positional, 'bench'), p.flags);
      const backend = (p.flags.get('backend') as string | undefined) ?? 'auto';
      if (!isBackendName(backend)) throw new UsageError(`unknown backend '${backend}'; backends are: auto, ${Object.keys(BACKENDS).join(', ')}`);
      const tokens = atLeastOne(p.flags, 'tokens', 256), runs = atLeastOne(p.flags, 'runs', 5);
      const optimizer = p.flags.get('optimizer') as string | undefined;
      if (optimizer !== undefined && !p.flags.get('train')) throw new UsageError('--optimizer is for bench --train (the forward has none)');
      if (optimizer !== undefined && !['sgd', 'adam', 'adamw'].includes(optimizer)) throw new UsageError(`--optimizer takes sgd, adam or adamw, not '${optimizer}'`);
      if (p.flags.get('train')) return runTrainBench(r.module, { tokens, backend, runs, json: p.flags.get('json') === true, optimizer: optimizer as OptimizerKind | undefined });
      return runBench(r.module, {
        tokens,
        backend,
        runs,
        json: p.flags.get('json') === true,
        naive: !p.flags.get('skip-naive'),
        reference: !p.flags.get('skip-reference'),
        ort: !p.flags.get('skip-ort'),
      });
    },
  },
  init: {
    summary: 'init FILE --seed S --out W.safetensors [--f64]   write the seeded initial weights\n' +
      '  peerc init FILE --inputs --tokens T [--dim NAME=V] --seed S --out I.safetensors   write seeded inputs for peerc run',
    run(args) {
      const p = parseArgs(args, { ...entryFlag, seed: 'integer', out: 'string', f64: 'boolean', inputs: 'boolean', tokens: 'integer', dim: 'string' }, 'init');
      const outPath = p.flags.get('out') as string | undefined;
      if (!outPath || !p.flags.has('seed')) throw new UsageError(`'peerc init' needs --seed S and --out ${p.flags.get('inputs') ? 'I' : 'W'}.safetensors`);
      const seed = p.flags.get('seed') as number;
      const r = compileFile(oneFile(p.positional, 'init'), p.flags);
      if (p.flags.get('inputs')) {
        if (!r.module.entry) throw new UsageError('the program has no model to make inputs for; pass --entry LAYER');
        const tokens = atLeastOne(p.flags, 'tokens', 8);
        const sizes = new Map<string, number>();
        for (const spec of ((p.flags.get('dim') as string | undefined) ?? '').split(',').filter(Boolean)) {
          const m = /^\s*([A-Za-z_]\w*)\s*=\s*(\d+)\s*$/.exec(spec);
          if (!m || Number(m[2]) < 1) throw new UsageError(`--dim takes NAME=SIZE[,NAME=SIZE] with sizes >= 1, not '${spec}'`);
          sizes.set(m[1]!, Number(m[2]));
        }
        const inputs = seededInputs(r.module, tokens, seed, sizes);
        writeSafetensorsFile(outPath, [...inputs].map(([n, t]) => toWrite(n, t, p.flags.get('f64') ? 'F64' : 'F32')), { producer: 'peerc init --inputs', seed: String(seed) });
        process.stdout.write(`wrote ${outPath}: ${[...inputs].map(([n, t]) => `${n} ${t.dtype}[${t.shape.join(', ')}]`).join(', ')}\n`);
        return 0;
      }
      for (const f of ['tokens', 'dim']) if (p.flags.has(f)) throw new UsageError(`--${f} is for --inputs`);
      const w = seededWeights(r.module, seed);
      writeSafetensorsFile(outPath, [...w].map(([n, t]) => toWrite(n, t, p.flags.get('f64') ? 'F64' : 'F32')), { producer: 'peerc init', seed: String(seed) });
      process.stdout.write(`wrote ${outPath}: ${w.size} tensors\n`);
      return 0;
    },
  },
  train: {
    summary: 'train FILE [--data TEXT | --task recall] [--steps N] [--batch B] [--seq S] [--lr LR] [--backend B] [--seed S] [--out DIR] [--resume]\n' +
      '                                               train with progress, validation, metrics, plots and checkpoints (docs/training.md)\n' +
      '  peerc train [FILE] --resume --out DIR        continue a run (without FILE: the program its checkpoint embeds)',
    run(args) {
      const p = parseArgs(args, {
        ...entryFlag, data: 'string', task: 'string', steps: 'integer', batch: 'integer', seq: 'integer', lr: 'number', backend: 'string', seed: 'integer', out: 'string', resume: 'boolean', force: 'boolean',
        optimizer: 'string', schedule: 'string', warmup: 'integer', clip: 'number', 'weight-decay': 'number', beta1: 'number', beta2: 'number',
        'eval-every': 'integer', 'eval-batches': 'integer', 'checkpoint-every': 'integer', 'stop-at': 'integer', threads: 'integer', 'plain-simd': 'boolean', profile: 'boolean',
      }, 'train');
      simdFlags(p.flags);
      // `--resume --out RUN_DIR` without FILE trains the program the checkpoint embeds.
      if (!p.positional.length && p.flags.get('resume') === true) return resumeEmbedded(p.flags);
      const file = oneFile(p.positional, 'train');
      const decoded = decodeSource(readFileChecked(file), file);
      if ('error' in decoded) throw new ProgramErrors([decoded.error], new Map());
      const r = compileFile(file, p.flags);
      if (!r.module.entry) throw new UsageError(`${file} has no model to train; declare one with 'model' or pass --entry LAYER`);
      return runTrain({ file, source: decoded.text, module: r.module, sources: r.sources, flags: p.flags });
    },
  },
  sample: {
    summary: 'sample CHECKPOINT --prompt TEXT [--tokens N] [--temperature T] [--seed S] [--backend B]   generate text from a trained byte-level model',
    run(args) {
      const p = parseArgs(args, { prompt: 'string', tokens: 'integer', temperature: 'number', seed: 'integer', backend: 'string', threads: 'integer', 'plain-simd': 'boolean' }, 'sample');
      simdFlags(p.flags);
      if (p.positional.length !== 1) throw new UsageError("'peerc sample' takes one checkpoint (RUN_DIR/checkpoint.safetensors)");
      const backend = (p.flags.get('backend') as string | undefined) ?? 'auto';
      if (!isBackendName(backend)) throw new UsageError(`unknown backend '${backend}'; backends are: auto, ${Object.keys(BACKENDS).join(', ')}`);
      const temperature = (p.flags.get('temperature') as number | undefined) ?? 0.8;
      if (temperature < 0) throw new UsageError('--temperature must be >= 0 (0 picks the most likely byte)');
      return runSample(p.positional[0]!, {
        prompt: (p.flags.get('prompt') as string | undefined) ?? '',
        tokens: atLeastOne(p.flags, 'tokens', 200),
        temperature,
        seed: (p.flags.get('seed') as number | undefined) ?? 0,
        backend: backend as BackendName | 'auto',
      }, (b) => process.stdout.write(b));
    },
  },
  playground: {
    summary: 'playground [--port P] [--host H] | --build DIR   the editor, IR, kernels, bench and training in a browser page',
    async run(args) {
      const p = parseArgs(args, { port: 'integer', host: 'string', build: 'string' }, 'playground');
      if (p.positional.length) throw new UsageError(`'peerc playground' takes no files (got ${p.positional.join(' ')}); the page has an editor and the examples`);
      const build = p.flags.get('build') as string | undefined;
      if (build !== undefined) {
        if (p.flags.has('port') || p.flags.has('host')) throw new UsageError('--build writes static files; --port and --host are for serving');
        const [dir, headers, note] = buildPlayground(build);
        process.stdout.write(`wrote the playground to ${dir}\nserve it with the headers in ${headers} (see ${note}): the page needs cross-origin isolation for wasm threads\n`);
        return 0;
      }
      const port = (p.flags.get('port') as number | undefined) ?? 8080;
      if (port < 0 || port > 65535) throw new UsageError(`--port is 0..65535 (0 picks a free port), not ${port}`);
      const host = (p.flags.get('host') as string | undefined) ?? '127.0.0.1';
      const server = await servePlayground(playgroundDir(), port, host);
      const addr = server.address() as { port: number };
      const shown = host.includes(':') ? `[${host}]` : host;
      process.stdout.write(`peerc playground: http://${shown}:${addr.port}/  (cross-origin isolated; Ctrl+C stops it)\n`);
      if (host !== '127.0.0.1' && host !== 'localhost' && host !== '::1') process.stdout.write(`note: --host ${host} makes the page reachable from other machines\n`);
      await new Promise<void>((done) => {
        const stop = () => server.close(() => done());
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      return 0;
    },
  },
  demo: {
    summary: 'demo [--tokens T] [--seed S]               check and evaluate the paper\'s PEER layer (N = 1024^2) on seeded weights',
    run(args) {
      const p = parseArgs(args, { tokens: 'integer', seed: 'integer' }, 'demo');
      return runDemo(atLeastOne(p.flags, 'tokens', 8), (p.flags.get('seed') as number | undefined) ?? 0);
    },
  },
};

/** `peerc info RUN_DIR/checkpoint.safetensors`: where the run stands, then the info of the program it embeds. */
function checkpointInfo(path: string, json: boolean): number {
  const { meta } = readCheckpoint(path, { tensors: false });
  const run = JSON.parse(meta.run) as { set?: string; steps?: number; task?: string; data?: string; optimizer?: { kind?: string; lr?: number } };
  const r = checkpointProgram(meta);
  if (!r.module) throw new ProgramErrors(r.diagnostics, r.sources);
  const info = moduleInfo(r.module);
  const checkpoint = { file: meta.file, step: meta.step, steps: run.steps, task: run.task, data: run.data, set: run.set ?? '', optimizer: run.optimizer?.kind, lr: run.optimizer?.lr, backend: meta.backend };
  if (json) process.stdout.write(JSON.stringify({ checkpoint, ...info }, null, 2) + '\n');
  else process.stdout.write(`checkpoint of ${meta.file || 'an embedded program'}: step ${meta.step} of ${run.steps}, ${run.task} task${run.data ? ` on ${run.data}` : ''}, ${run.optimizer?.kind} lr ${run.optimizer?.lr}${run.set ? `, --set ${run.set}` : ''} (trained on ${meta.backend})\n\n${info.text}`);
  return 0;
}

/** Resumes a run from the program embedded in its checkpoint (compiled with the run's --set). */
function resumeEmbedded(flags: Map<string, string | number | boolean>): Promise<number> {
  const out = flags.get('out') as string | undefined;
  if (out === undefined) throw new UsageError("'peerc train --resume' without a .peer file needs --out RUN_DIR (it trains the program that run's checkpoint embeds)");
  const ckpt = join(out, 'checkpoint.safetensors');
  if (!existsSync(ckpt)) throw new UsageError(`--resume: no checkpoint at ${ckpt} (pass the --out RUN_DIR of the run to continue)`);
  const { meta } = readCheckpoint(ckpt, { tensors: false });
  const run = JSON.parse(meta.run) as { set?: string };
  if (flags.has('set') && setOf(flags) !== (run.set ?? '')) throw new CompileError(diagnostic('PEER0706', null, { flag: 'set', was: run.set || 'none', now: setOf(flags) || 'none' }));
  const r = checkpointProgram(meta);
  if (!r.module) throw new ProgramErrors(r.diagnostics, r.sources);
  if (!flags.has('set') && run.set) flags.set('set', run.set.split(' ').join('\n'));
  return runTrain({ file: r.file, source: meta.source, module: r.module, sources: r.sources, flags });
}

/** --threads N and --plain-simd: how the wasm-simd backend runs, for this command. */
function simdFlags(flags: Map<string, unknown>, fallback = 'auto'): void {
  // Only wasm-simd has threads of its own and a SIMD path: on any other backend the flags would be ignored.
  const backend = (flags.get('backend') as string | undefined) ?? fallback;
  if ((flags.has('threads') || flags.has('plain-simd')) && !(isBackendName(backend) && resolveBackend(backend).pool))
    throw new UsageError(`--threads and --plain-simd apply to the wasm-simd backend, not '${backend}'`);
  if (flags.has('threads')) {
    const n = flags.get('threads') as number;
    if (n < 1) throw new UsageError(`--threads must be at least 1, not ${n}`);
    // More threads than cores only make the workers wait for each other (the pool spins on shared memory).
    const cores = availableParallelism();
    if (n > cores) throw new UsageError(`--threads ${n}: this machine has ${cores} core${cores === 1 ? '' : 's'}; pass --threads ${cores} or fewer`);
    const why = n > 1 ? threadsUnavailable() : null;
    if (why) throw new UsageError(`--threads ${n}: ${why}`);
    simdSettings.threads = n;
  }
  if (flags.get('plain-simd') === true) simdSettings.relaxed = false;
}

export function usage(): string {
  return [
    'peerc: a compiler for PEER layers (Parameter Efficient Expert Retrieval)',
    '',
    'usage: peerc COMMAND ...',
    '',
    ...Object.values(COMMANDS).map((c) => `  peerc ${c.summary}`),
    '',
    'peerc help COMMAND (or peerc COMMAND --help) lists a command\'s options.',
    'Exit status: 0 ok, 1 errors in the program, its data or a path, 2 bad usage, 3 a bug in peerc (please report it).',
    'Docs: docs/language.md',
    '',
  ].join('\n');
}

