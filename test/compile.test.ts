// peerc compile: the emitted TypeScript passes tsc --strict, its Node bundle runs and agrees
// with the reference interpreter, and the generated code is reviewed through goldens.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { interpret } from '../src/interp/interpreter.js';
import { seededWeights } from '../src/io/tensors.js';
import { optimize } from '../src/passes/pipeline.js';
import { emitModule } from '../codegen/emit.js';
import { compileToDir } from '../runtime/cli/compile.js';
import { Executor } from '../runtime/executor.js';
import { compileOk, sampleInputs, smallExample } from './helpers.js';

const root = join(import.meta.dirname, '..');
const tmp = mkdtempSync(join(root, '.tmp-compile-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const examples = readdirSync(join(root, 'examples')).filter((f) => f.endsWith('.peer'));

describe('emitted TypeScript', () => {
  for (const f of examples)
    it(`${f}: golden`, async () => {
      const program = readFileSync(join(root, 'examples', f), 'utf8');
      const m = compileOk(program, `examples/${f}`);
      const { text } = emitModule(optimize(m), { source: `examples/${f}`, lowering: 'fused', runtimeImport: 'peerc/runtime', program: { text: program, set: '' } });
      await expect(text).toMatchFileSnapshot(join(root, 'test', 'golden', 'emitted', f.replace('.peer', '.ts')));
    });

  it('passes tsc --strict --noEmit, and its Node bundle agrees with the reference', async () => {
    const written: string[] = [];
    for (const f of ['pkm.peer', 'byte_lm.peer']) {
      const src = join(tmp, f);
      writeFileSync(src, smallExample(f));
      const m = compileOk(smallExample(f), f);
      const files = await compileToDir(m, `examples/${f}`, tmp, 'fused', { text: smallExample(f), set: '' });
      written.push(files[0]!);
      const mod = await import(pathToFileURL(files[1]!).href);
      const className = Object.keys(mod).find((k) => /^[A-Z]/.test(k) && typeof mod[k] === 'function')!;
      const model = mod[className].fromSeed(3, { backend: 'cpu' });
      expect(model.backend).toBe('cpu');
      const inputs = sampleInputs(m, 4);
      const result = await model.forward(Object.fromEntries([...inputs].map(([k, t]) => [k, { shape: t.shape, data: t.data }])));
      const ref = interpret(m, inputs, seededWeights(m, 3)).outputs[0]!;
      const out = result.output ?? result.output_0;
      expect(out.shape).toEqual(ref.shape);
      out.data.forEach((v: number, i: number) => expect(Math.abs(v - ref.data[i]!)).toBeLessThan(1e-4 * (1 + Math.abs(ref.data[i]!))));
      model.destroy();
      // The same module trains: a few steps on one batch lower its loss, and the trained model runs.
      const training = mod[`${className}Training`].fromSeed(3, { backend: 'cpu', optimizer: { kind: 'adam', lr: 0.01, schedule: 'constant' } });
      const batch = Object.fromEntries([...inputs].map(([k, t]) => [k, { shape: t.shape, data: t.data }]));
      const lead = out.shape.slice(0, -1), classes = out.shape.at(-1)!;
      const targets = { shape: lead, data: Array.from({ length: lead.reduce((a: number, b: number) => a * b, 1) }, (_, i) => (i * 7) % classes) };
      const first = await training.step(batch, targets);
      let last = first;
      for (let i = 0; i < 15; i++) last = await training.step(batch, targets);
      expect(last.loss).toBeLessThan(first.loss);
      const trained = training.model();
      const after = await trained.forward(batch);
      expect((after.output ?? after.output_0).shape).toEqual(out.shape);
      trained.destroy();
      training.destroy();
      expect(readFileSync(files.find((f) => f.endsWith('.browser.mjs'))!, 'utf8')).toContain('createKernel');
    }
    writeFileSync(join(tmp, 'tsconfig.json'), JSON.stringify({
      compilerOptions: { strict: true, noEmit: true, target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', skipLibCheck: true, noUncheckedIndexedAccess: true, types: ['node'], paths: { 'peerc/runtime': [join(root, 'runtime', 'api.ts')] } },
      files: [...written, join(root, 'types.d.ts')],
    }));
    const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    expect(() => execFileSync(process.execPath, [tsc, '-p', join(tmp, 'tsconfig.json')], { encoding: 'utf8' })).not.toThrow();
  });
});

describe("the emitted Training class's checkpoints", () => {
  it('save() then fromCheckpoint() goes on exactly as an uninterrupted run; peerc info and run read the checkpoint; weights alone are refused', async () => {
    const dir = mkdtempSync(join(tmp, 'ckpt-'));
    const m = compileOk(smallExample('pkm.peer'), 'pkm.peer');
    const files = await compileToDir(m, 'examples/pkm.peer', dir, 'fused', { text: smallExample('pkm.peer'), set: '' });
    const mod = await import(pathToFileURL(files[1]!).href);
    const Training = mod[Object.keys(mod).find((k) => k.endsWith('Training'))!];
    const options = { backend: 'cpu', optimizer: { kind: 'adam', lr: 0.01, schedule: 'constant' } };
    const inputs = sampleInputs(m, 4);
    const batch = Object.fromEntries([...inputs].map(([k, t]) => [k, { shape: t.shape, data: t.data }]));
    const out = interpret(m, inputs, seededWeights(m, 3)).outputs[0]!;
    const lead = out.shape.slice(0, -1), classes = out.shape.at(-1)!;
    const targets = { shape: lead, data: Array.from({ length: lead.reduce((a, b) => a * b, 1) }, (_, i) => (i * 5) % classes) };
    const straight = Training.fromSeed(3, options);
    const losses: number[] = [];
    for (let i = 0; i < 8; i++) losses.push((await straight.step(batch, targets)).loss);
    const first = Training.fromSeed(3, options);
    for (let i = 0; i < 4; i++) await first.step(batch, targets);
    const bytes: Uint8Array = await first.save();
    first.destroy();
    const resumed = Training.fromCheckpoint(bytes, { backend: 'cpu' });
    expect(resumed.stepCount).toBe(4);
    const after: number[] = [];
    for (let i = 0; i < 4; i++) after.push((await resumed.step(batch, targets)).loss);
    expect(after).toEqual(losses.slice(4));
    // A fresh optimizer (fromSafetensors) does not: Adam's moments and step count matter.
    const fresh = Training.fromSafetensors(bytes, options);
    expect((await fresh.step(batch, targets)).loss).toBe(after[0]); // same weights, same first loss
    expect((await fresh.step(batch, targets)).loss).not.toBe(after[1]);
    const path = join(dir, 'saved.safetensors');
    writeFileSync(path, bytes);
    const peerc = (...args: string[]) => execFileSync(process.execPath, [join(root, 'dist', 'peerc.js'), ...args], { encoding: 'utf8' });
    expect(peerc('info', path)).toContain('step 4');
    expect(() => Training.fromCheckpoint(new Uint8Array(readFileSync(path)), { backend: 'cpu', optimizer: { kind: 'sgd' } })).toThrow(/PEER0501|trained with adam/);
    const program = join(dir, 'pkm.peer');
    writeFileSync(program, smallExample('pkm.peer'));
    peerc('init', program, '--inputs', '--tokens', '4', '--seed', '1', '--out', join(dir, 'in.safetensors'));
    expect(peerc('run', program, '--weights', path, '--inputs', join(dir, 'in.safetensors'), '--out', join(dir, 'out.safetensors'))).toContain('wrote');
    const weightsOnly = join(dir, 'w.safetensors');
    peerc('init', program, '--seed', '1', '--out', weightsOnly);
    expect(() => Training.fromCheckpoint(new Uint8Array(readFileSync(weightsOnly)), { backend: 'cpu' })).toThrow(/optimizer/);
    for (const t of [straight, resumed, fresh]) t.destroy();
  }, 300_000);
});

describe('generated kernels', () => {
  it('the fused PEER kernels at T = 2 (golden)', async () => {
    const m = compileOk(readFileSync(join(root, 'bench', 'peer_h4.peer'), 'utf8').replace(/const N = .*/, 'const N = 32^2'));
    const ex = new Executor(optimize(m, { lowering: 'fused' }), seededWeights(m, 1), 'cpu');
    await ex.forward(sampleInputs(m, 1));
    const sources = ex.kernelSources().join('\n\n');
    ex.destroy();
    expect(sources).toMatch(/^\/\/ product_retrieve:combine: /m);
    expect(sources).not.toMatch(/^\/\/ (gather|topk|take_along):/m); // no materialised gathers or candidate top-k
    await expect(sources + '\n').toMatchFileSnapshot(join(root, 'test', 'golden', 'kernels', 'peer_h4.fused.js'));
  });

  it('the fused PEER layer as peerc WGSL at T = 3 (golden; planned without a device)', async () => {
    const m = compileOk(readFileSync(join(root, 'bench', 'peer_h4.peer'), 'utf8').replace(/const N = .*/, 'const N = 32^2'));
    const ex = new Executor(optimize(m, { lowering: 'fused' }), seededWeights(m, 1), 'webgpu');
    // The kernels are generated when the steps are planned; running them needs a device, which may be missing here.
    await ex.forward(sampleInputs(m, 1)).catch((e: Error) => expect(e.message).toMatch(/backend 'webgpu' is not available/));
    const sources = ex.kernelSources().join('\n\n');
    ex.destroy();
    for (const own of ['batched matmul', 'product_retrieve: ', 'expert_act: ', 'expert_out: ']) expect(sources).toContain(`// ${own}`);
    await expect(sources + '\n').toMatchFileSnapshot(join(root, 'test', 'golden', 'kernels', 'peer_h4.fused.wgsl'));
  });
});
