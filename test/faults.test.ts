// Nothing lost: the fault-injection suite. Writes that fail or come up short (PEERC_FAULTS, and a
// real small tmpfs where the machine allows mounting one), kills at chosen moments (mid-write,
// before the rename, after a metrics line), SIGTERM/SIGHUP, a closed stdout, two processes on one
// run folder, torn metrics, damaged checkpoints (every header field and offset mutated), and
// hostile sweep files. Every case asserts a documented exit status (0, 1, 2 or a signal's
// 128+n; never 3), a coded message, and that no earlier checkpoint, metrics line or output file
// was lost or silently changed.
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readCheckpoint } from '../runtime/train/checkpoint.js';
import { CompileError } from '../src/diagnostics/diagnostic.js';
import { parseMetrics } from '../runtime/train/metrics.js';

const root = join(import.meta.dirname, '..');
const cli = join(root, 'dist', 'peerc.js');
const tmp = mkdtempSync(join(tmpdir(), 'peerc-faults-'));
const at = (...p: string[]) => join(tmp, ...p);

interface Result {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** The CLI as a user runs it, with faults injected through the environment. */
function peerc(args: string[], faults = ''): Result {
  const r = spawnSync(process.execPath, [cli, ...args], { cwd: root, encoding: 'utf8', timeout: 300_000, env: { ...process.env, PEERC_FAULTS: faults } });
  const all = r.stdout + r.stderr;
  expect(all, 'no stack traces').not.toMatch(/\n\s+at .*:\d+:\d+\)?\n/);
  expect(all).not.toMatch(/internal error/);
  expect(r.status, all).not.toBe(3);
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

const recall = at('recall.peer');
writeFileSync(recall, readFileSync(join(root, 'examples', 'recall.peer'), 'utf8').replace('const K = 4096', 'const K = 256').replace('const N = 128^2', 'const N = 32^2'));
const common = ['--backend', 'cpu', '--eval-batches', '1'];
const train = (out: string, ...extra: string[]) => ['train', recall, '--steps', '4', '--checkpoint-every', '2', '--eval-every', '2', '--out', out, ...common, ...extra];
const bytes = (p: string) => readFileSync(p);
const leftovers = (dir: string) => readdirSync(dir).filter((f) => /tmp-\d+$/.test(f));
const metricsRows = (dir: string) => parseMetrics(readFileSync(join(dir, 'metrics.jsonl'), 'utf8')).rows;

/** A finished reference run: checkpoint and metrics of 4 uninterrupted steps. */
const reference = at('reference');
function referenceRun(): void {
  if (!existsSync(join(reference, 'checkpoint.safetensors'))) expect(peerc(train(reference)).status).toBe(0);
}
function sameWeights(dir: string): void {
  referenceRun();
  const a = readCheckpoint(join(reference, 'checkpoint.safetensors')), b = readCheckpoint(join(dir, 'checkpoint.safetensors'));
  expect(b.meta.step).toBe(a.meta.step);
  for (const [name, t] of a.tensors) expect(Buffer.from(b.tensors.get(name)!.data.buffer).equals(Buffer.from(t.data.buffer)), name).toBe(true);
}

describe('full disks and short writes (injected)', () => {
  for (const kind of ['enospc', 'short'] as const) {
    it(`${kind}: the second checkpoint fails; the first is kept, no temp file stays, --resume finishes the run`, () => {
      const out = at(`ck-${kind}`);
      const r = peerc(train(out), `${kind}-on=checkpoint.safetensors#2`);
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`error PEER0801: could not write .*checkpoint\\.safetensors: ${kind === 'enospc' ? 'no space is left on the device' : 'the device accepted only part of the data'}.*; the previous checkpoint\\.safetensors is unchanged`));
      expect(readCheckpoint(join(out, 'checkpoint.safetensors')).meta.step).toBe(2);
      expect(leftovers(out)).toEqual([]);
      expect(existsSync(join(out, '.peerc-lock'))).toBe(false);
      const again = peerc(['train', recall, '--resume', '--out', out, ...common]);
      expect(again.status, again.stderr).toBe(0);
      sameWeights(out);
    });
  }

  it('a metrics line that cannot be written stops the run at a whole line; the checkpoint is intact', () => {
    const out = at('metrics-full');
    const r = peerc(train(out), 'enospc-on=metrics.jsonl#6');
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/error PEER0801: could not write .*metrics\.jsonl: no space is left on the device/);
    const text = readFileSync(join(out, 'metrics.jsonl'), 'utf8');
    expect(text.endsWith('\n')).toBe(true);
    expect(parseMetrics(text).warnings).toEqual([]);
    expect(readCheckpoint(join(out, 'checkpoint.safetensors')).meta.step).toBe(2);
    expect(peerc(['train', recall, '--resume', '--out', out, ...common]).status).toBe(0);
    sameWeights(out);
  });

  it('a plot that cannot be written is a warning: the run and its checkpoint complete', () => {
    const out = at('plot-full');
    const r = peerc(train(out), 'enospc-on=loss.svg#1');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/warning: could not write .*loss\.svg: no space is left on the device/);
    sameWeights(out);
  });

  it('export --onnx, compile, init and run on a full disk: exit 1, PEER0801, the earlier file unchanged', () => {
    const model = at('exp', 'model.onnx');
    expect(peerc(['export', recall, '--onnx', '--seed', '1', '--out', model]).status).toBe(0);
    const before = bytes(model);
    const r = peerc(['export', recall, '--onnx', '--seed', '2', '--out', model], 'enospc-on=model.onnx#1');
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/PEER0801: could not write .*model\.onnx: no space is left on the device.*the previous model\.onnx is unchanged/);
    expect(bytes(model).equals(before)).toBe(true);
    expect(leftovers(at('exp'))).toEqual([]);

    const c = peerc(['compile', recall, '-o', at('compiled')], 'short-on=recall.mjs#1');
    expect(c.status).toBe(1);
    expect(c.stderr).toMatch(/PEER0801: could not write .*recall\.mjs: the device accepted only part of the data.*no file was written/);

    const w = at('w.safetensors');
    expect(peerc(['init', recall, '--seed', '1', '--out', w]).status).toBe(0);
    const wBefore = bytes(w);
    const i = peerc(['init', recall, '--seed', '2', '--out', w], 'enospc-on=w.safetensors#1');
    expect(i.status).toBe(1);
    expect(bytes(w).equals(wBefore)).toBe(true);
  });
});

describe('kills at chosen moments', () => {
  /** Kills the run at `point`; the checkpoint on disk must be the last complete one (`saved`, 0: none). */
  const killCase = (label: string, point: () => string, saved: number, temp: boolean) =>
    it(`SIGKILL at ${label}: the last whole checkpoint (step ${saved || 'none'}) survives; the next start cleans up and goes on`, () => {
      const out = at(`kill-${label.replace(/\W+/g, '-')}`);
      const r = peerc(train(out), `kill-at=${point()}`);
      expect(r.signal).toBe('SIGKILL');
      let go: Result;
      if (saved) {
        expect(readCheckpoint(join(out, 'checkpoint.safetensors')).meta.step).toBe(saved);
        go = peerc(['train', recall, '--resume', '--out', out, ...common]);
      } else {
        expect(existsSync(join(out, 'checkpoint.safetensors'))).toBe(false);
        go = peerc(train(out)); // no checkpoint: the folder never blocks a start
      }
      expect(go.status, go.stderr).toBe(0);
      // The dead process's lock is taken over and its temporary file removed, each with a note.
      expect(go.stdout).toMatch(/note: took over the lock of process \d+ .*no longer running/);
      if (temp) expect(go.stdout).toMatch(/note: removed 1 temporary file left by a stopped run/);
      expect(leftovers(out)).toEqual([]);
      sameWeights(out);
      expect(metricsRows(out).filter((x) => x.split === 'train').map((x) => x.step)).toEqual([1, 2, 3, 4]);
    });
  // Durable writes in order: metrics.jsonl (emptied), the checkpoints of steps 2 and 4, then the plots.
  killCase('the first write, before training', () => 'rename:1', 0, true);
  killCase('mid-write of the first checkpoint', () => 'write:3', 0, true);
  killCase('a metrics line before the first checkpoint', () => 'append:4', 0, false);
  killCase('mid-write of the second checkpoint', () => {
    referenceRun();
    // metrics (1 part), checkpoint 2 (header + one part a tensor), then 2 parts into checkpoint 4.
    const count = readCheckpoint(join(reference, 'checkpoint.safetensors')).tensors.size;
    return `write:${1 + (1 + count) + 2}`;
  }, 2, true);
  killCase('the fsync of the second checkpoint', () => 'fsync:3', 2, true);
  killCase('the rename of the second checkpoint', () => 'rename:3', 2, true);

  it('temp files of dead processes (old and new names) are removed at the next start, live ones kept', () => {
    const out = at('stale');
    mkdirSync(out, { recursive: true });
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    for (const f of [`.checkpoint.safetensors.peerc-tmp-${dead}`, `checkpoint.safetensors.tmp-${dead}`, `.loss.svg.peerc-tmp-${process.pid}`]) writeFileSync(join(out, f), 'x');
    const r = peerc(train(out));
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/note: removed 2 temporary files left by a stopped run/);
    expect(leftovers(out)).toEqual([`.loss.svg.peerc-tmp-${process.pid}`]);
  });
});

/** Starts a long training run in the background; resolves once its first validation printed. */
function longRun(out: string, checkpointEvery = 100000) {
  const child = spawn(process.execPath, [cli, 'train', recall, '--steps', '100000', '--checkpoint-every', String(checkpointEvery), '--eval-every', '100000', '--out', out, ...common], { cwd: root });
  let stdout = '', stderr = '';
  child.stderr.on('data', (d) => (stderr += String(d)));
  const started = new Promise<void>((resolve) => {
    child.stdout.on('data', (d) => {
      stdout += String(d);
      if (/step 0: validation loss/.test(stdout)) resolve();
    });
  });
  const killer = setTimeout(() => child.kill('SIGKILL'), 240_000);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => (clearTimeout(killer), resolve({ code, signal }))));
  return { child, started, exited, out: () => stdout, err: () => stderr };
}

describe('signals, closed output and two processes', () => {
  for (const [signal, code] of [['SIGTERM', 143], ['SIGHUP', 129]] as const) {
    it(`${signal} saves a checkpoint like Ctrl-C and exits ${code}`, async () => {
      const out = at(`sig-${signal}`);
      const run = longRun(out);
      await run.started;
      await new Promise((r) => setTimeout(r, 500));
      run.child.kill(signal);
      const { code: got } = await run.exited;
      expect(got).toBe(code);
      expect(run.out()).toMatch(new RegExp(`interrupted: checkpoint of step (\\d+) saved to .* \\(stopped by ${signal}\\)`));
      const step = Number(/checkpoint of step (\d+)/.exec(run.out())![1]);
      expect(readCheckpoint(join(out, 'checkpoint.safetensors')).meta.step).toBe(step);
      expect(existsSync(join(out, '.peerc-lock'))).toBe(false);
      expect(Math.max(...metricsRows(out).map((x) => x.step))).toBe(step);
    }, 300_000);
  }

  it('a closed stdout (peerc train | head) stops the output, not the run', async () => {
    const out = at('closed-stdout');
    const child = spawn(process.execPath, [cli, ...train(out)], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.once('data', () => child.stdout.destroy());
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code).toBe(0);
    sameWeights(out);
  }, 300_000);

  it('a second trainer or a --resume into a live run folder is PEER0709 naming the other process', async () => {
    const out = at('two');
    const run = longRun(out, 1);
    await run.started;
    while (!existsSync(join(out, 'checkpoint.safetensors'))) await new Promise((r) => setTimeout(r, 100));
    for (const args of [train(out, '--force'), ['train', recall, '--out', out, ...common], ['train', recall, '--resume', '--out', out, ...common]]) {
      const r = peerc(args);
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`error PEER0709: .*two is in use by process ${run.child.pid}.*peerc train`));
    }
    run.child.kill('SIGINT');
    expect((await run.exited).code).toBe(130);
    const lines = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n');
    const steps = lines.map((l) => JSON.parse(l) as { split: string; step: number }).filter((r) => r.split === 'train').map((r) => r.step);
    expect(new Set(steps).size).toBe(steps.length); // no step logged twice
    // Now the run is stopped, --resume may go on.
    expect(peerc(['train', recall, '--resume', '--out', out, '--steps', String(Math.max(...steps) + 1), ...common]).status).toBe(0);
  }, 300_000);

  it('a damaged lock file is replaced with a note', () => {
    const out = at('bad-lock');
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, '.peerc-lock'), '{"pid": 12');
    const r = peerc(train(out));
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/note: replaced a damaged lock file/);
  });
});

describe('metrics history', () => {
  it('a torn last line: compare and plots ignore it with a warning, --resume cuts it off and appends', () => {
    const out = at('torn');
    expect(peerc(train(out, '--stop-at', '2')).status).toBe(0);
    const before = readFileSync(join(out, 'metrics.jsonl'), 'utf8');
    writeFileSync(join(out, 'metrics.jsonl'), before + '{"step": 3, "split": "tra');
    const c = peerc(['compare', out]);
    expect(c.status, c.stderr).toBe(0);
    expect(c.stderr).toMatch(/warning: the last line of .*metrics\.jsonl is incomplete/);
    const r = peerc(['train', recall, '--resume', '--out', out, ...common]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/note: the last line of .*metrics\.jsonl was incomplete .*cut off/);
    const after = readFileSync(join(out, 'metrics.jsonl'), 'utf8');
    expect(after.startsWith(before)).toBe(true); // appended, never rewritten
    expect(after.slice(before.length).split('\n')[0]).toMatch(/"split":"resume"/);
    sameWeights(out);
  });

  it('lines past the checkpoint (a killed stretch) are superseded by the resume, not erased', () => {
    const out = at('superseded');
    expect(peerc(train(out), 'kill-at=append:6').signal).toBe('SIGKILL'); // after step 4's line, before its checkpoint
    const before = readFileSync(join(out, 'metrics.jsonl'), 'utf8');
    expect(peerc(['train', recall, '--resume', '--out', out, ...common]).status).toBe(0);
    const after = readFileSync(join(out, 'metrics.jsonl'), 'utf8');
    expect(after.startsWith(before)).toBe(true);
    expect(metricsRows(out).filter((x) => x.split === 'train').map((x) => x.step)).toEqual([1, 2, 3, 4]);
  });

  it('a garbage line in the middle is skipped with a warning naming the line', () => {
    const { rows, warnings } = parseMetrics('{"step":1,"split":"train","loss":1}\nnull\n{"step":2,"split":"train","loss":0.5}\n');
    expect(rows.map((r) => r.step)).toEqual([1, 2]);
    expect(warnings).toEqual(['line 2 of metrics.jsonl is not a metrics record; it is ignored']);
  });
});

/** Every field and offset of a good checkpoint, damaged one at a time. */
function damagedCheckpoints(good: Buffer): [string, Buffer][] {
  const n = Number(good.readBigUInt64LE(0));
  const header = JSON.parse(good.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] } | Record<string, string>>;
  const data = good.subarray(8 + n);
  const names = Object.keys(header).filter((k) => k !== '__metadata__');
  const build = (h: unknown, body: Buffer = data, len?: bigint) => {
    const json = Buffer.from(typeof h === 'string' ? h : JSON.stringify(h));
    const head = Buffer.alloc(8);
    head.writeBigUInt64LE(len ?? BigInt(json.length));
    return Buffer.concat([head, json, body]);
  };
  const edit = (f: (h: typeof header) => void) => {
    const h = structuredClone(header);
    f(h);
    return build(h);
  };
  const t = (h: typeof header, i: number) => h[names[i]!] as { dtype: unknown; shape: unknown; data_offsets: unknown };
  const meta = (h: typeof header) => h.__metadata__ as Record<string, unknown>;
  const cases: [string, Buffer][] = [
    ['empty file', Buffer.alloc(0)],
    ['4 bytes', good.subarray(0, 4)],
    ['header length 0', build('', data, 0n)],
    ['header length past the end', build(header, data, BigInt(good.length))],
    ['header length 2^63', build(header, data, 1n << 63n)],
    ['header null', build('null')],
    ['header an array', build('[]')],
    ['header a string', build('"x"')],
    ['header not JSON', build('{"a":')],
    ['header not UTF-8', build(Buffer.from([0x7b, 0xff, 0x7d]).toString('latin1'))],
    ['truncated by one byte', good.subarray(0, good.length - 1)],
    ['truncated in the header', good.subarray(0, 8 + Math.floor(n / 2))],
    ['a trailing byte', Buffer.concat([good, Buffer.from([0])])],
    ['metadata null', edit((h) => void (h.__metadata__ = null as never))],
    ['metadata value a number', edit((h) => void (meta(h).step = 3))],
    ['format wrong', edit((h) => void (meta(h).format = 'other/1'))],
    ['step negative', edit((h) => void (meta(h).step = '-1'))],
    ['step not a number', edit((h) => void (meta(h).step = 'abc'))],
    ['optimizerStep missing', edit((h) => void delete meta(h).optimizerStep)],
    ['run null', edit((h) => void (meta(h).run = 'null'))],
    ['run not JSON', edit((h) => void (meta(h).run = '{'))],
    ['run without steps', edit((h) => void (meta(h).run = '{}'))],
    ['resumes an object', edit((h) => void (meta(h).resumes = '{}'))],
    ['source missing', edit((h) => void delete meta(h).source)],
  ];
  for (const [i, name] of names.slice(0, 2).entries()) {
    cases.push(
      [`${name}: entry null`, edit((h) => void (h[name] = null as never))],
      [`${name}: dtype F16`, edit((h) => void (t(h, i).dtype = 'F16'))],
      [`${name}: dtype missing`, edit((h) => void delete (t(h, i) as Record<string, unknown>).dtype)],
      [`${name}: shape negative`, edit((h) => void (t(h, i).shape = [-1]))],
      [`${name}: shape fractional`, edit((h) => void (t(h, i).shape = [(t(h, i).shape as number[])[0]! + 0.5]))],
      [`${name}: shape null`, edit((h) => void (t(h, i).shape = null))],
      [`${name}: shape of another size`, edit((h) => void (t(h, i).shape = [...(t(h, i).shape as number[]), 2]))],
      [`${name}: offsets negative`, edit((h) => void (t(h, i).data_offsets = [-4, (t(h, i).data_offsets as number[])[1]! - 4]))],
      [`${name}: offsets swapped`, edit((h) => void (t(h, i).data_offsets = [...(t(h, i).data_offsets as number[])].reverse()))],
      [`${name}: offsets past the end`, edit((h) => { const [a, b] = t(h, i).data_offsets as number[]; t(h, i).data_offsets = [a! + data.length, b! + data.length]; })],
      [`${name}: offsets shifted by 4 (overlap or gap)`, edit((h) => { const [a, b] = t(h, i).data_offsets as number[]; t(h, i).data_offsets = [a! + 4, b! + 4]; })],
      [`${name}: offsets null`, edit((h) => void (t(h, i).data_offsets = null))],
      [`${name}: offsets of three`, edit((h) => void (t(h, i).data_offsets = [0, 4, 8]))],
    );
  }
  // Two tensors claiming the same bytes.
  cases.push(['two tensors on the same bytes', edit((h) => void (t(h, 1).data_offsets = t(h, 0).data_offsets))]);
  // NaN and infinity in a weight and in the optimizer's state.
  for (const [label, name, value] of [['NaN in a weight', names.find((x) => x.startsWith('param.'))!, NaN], ['infinity in the optimizer state', names.find((x) => x.startsWith('opt.'))!, Infinity]] as const) {
    const body = Buffer.from(data);
    const [from] = (header[name] as { data_offsets: [number, number] }).data_offsets;
    body.writeFloatLE(value, from + 4);
    cases.push([label, build(header, body)]);
  }
  return cases;
}

describe('damaged checkpoints are refused with a coded error naming the file (never exit 3)', () => {
  it('every mutated header field and offset, read directly and through --resume; the file itself is left as it was', () => {
    referenceRun();
    const good = bytes(join(reference, 'checkpoint.safetensors'));
    const cases = damagedCheckpoints(good);
    expect(cases.length).toBeGreaterThanOrEqual(50);
    const failures: string[] = [];
    for (const [label, damaged] of cases) {
      const file = at('damaged', label.replace(/[^\w]+/g, '-'), 'checkpoint.safetensors');
      mkdirSync(join(file, '..'), { recursive: true });
      writeFileSync(file, damaged);
      try {
        readCheckpoint(file, { finite: true });
        failures.push(`${label}: accepted`);
      } catch (e) {
        if (!(e instanceof CompileError)) failures.push(`${label}: ${(e as Error).message} (not a coded error)`);
        else if (!/^PEER0(600|605|708)$/.test(e.diagnostic.code)) failures.push(`${label}: ${e.diagnostic.code}`);
      }
    }
    expect(failures).toEqual([]);
  });

  it('through the CLI: --resume, sample and compare exit 1 with the code and the file; metrics and checkpoint untouched', () => {
    referenceRun();
    const good = bytes(join(reference, 'checkpoint.safetensors'));
    const cases = damagedCheckpoints(good);
    // A spread of the damage kinds (each CLI start costs a second or two).
    const picked = cases.filter((_, i) => i % 4 === 0 || /NaN|infinity|null|truncated/.test(cases[i]![0]));
    for (const [label, damaged] of picked) {
      const out = at('damaged-cli', label.replace(/[^\w]+/g, '-'));
      mkdirSync(out, { recursive: true });
      writeFileSync(join(out, 'checkpoint.safetensors'), damaged);
      copyFileSync(join(reference, 'metrics.jsonl'), join(out, 'metrics.jsonl'));
      const metricsBefore = bytes(join(out, 'metrics.jsonl'));
      for (const args of [['train', recall, '--resume', '--out', out, '--steps', '6', ...common], ['sample', join(out, 'checkpoint.safetensors'), '--prompt', 'a']]) {
        const r = peerc(args);
        expect(r.status, `${label}: ${args[0]}: ${r.stderr}`).toBe(1);
        expect(r.stderr, label).toMatch(/error PEER0(600|605|708): .*checkpoint\.safetensors/);
      }
      expect(bytes(join(out, 'checkpoint.safetensors')).equals(damaged), label).toBe(true);
      expect(bytes(join(out, 'metrics.jsonl')).equals(metricsBefore), label).toBe(true);
      if (!/NaN|infinity/.test(label)) {
        const c = peerc(['compare', out]);
        expect(c.status, label).toBe(1);
      }
    }
  }, 600_000);
});

describe('run folders a newcomer hits', () => {
  it('a failed start leaves no folder behind, and nothing blocks the next start', () => {
    const out = at('failed-start');
    const r = peerc(['train', recall, '--data', at('no-such.txt'), '--out', out, ...common]);
    expect(r.status).toBeGreaterThan(0);
    expect(existsSync(out)).toBe(false);
    expect(peerc(train(out)).status).toBe(0);
  });

  it('--resume accepts an edited comment, names a changed parameter (PEER0710), and runs without FILE from the embedded program', () => {
    const out = at('edited');
    expect(peerc(train(out, '--stop-at', '2')).status).toBe(0);
    const edited = at('edited.peer');
    writeFileSync(edited, '# a comment added after training started\n' + readFileSync(recall, 'utf8').replace(/\n/g, '\n\n'));
    const r = peerc(['train', edited, '--resume', '--out', out, '--stop-at', '3', ...common]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/differs from the checkpoint's copy in its text only/);
    const changed = at('changed.peer');
    writeFileSync(changed, readFileSync(recall, 'utf8').replace('const K = 256', 'const K = 128'));
    const bad = peerc(['train', changed, '--resume', '--out', out, ...common]);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/error PEER0710: --resume: .*changed\.peer no longer computes what the checkpoint was trained with: .*'\w+' was f32\[256, \d+\], now f32\[128, \d+\]/);
    const embedded = peerc(['train', '--resume', '--out', out, ...common]);
    expect(embedded.status, embedded.stderr).toBe(0);
    sameWeights(out);
  });

  it('--data is recognised by content: a moved copy resumes, other text is PEER0711', () => {
    const lm = at('lm.peer');
    writeFileSync(lm, readFileSync(join(root, 'examples', 'byte_lm.peer'), 'utf8').replace('const d = 128', 'const d = 16').replace('const N = 128^2', 'const N = 8^2').replace('const dk = 64', 'const dk = 8'));
    const text = at('text-a.txt');
    writeFileSync(text, 'the quick brown fox jumps over the lazy dog. '.repeat(100));
    const out = at('lm-run');
    const args = ['--batch', '2', '--seq', '16', '--steps', '4', '--eval-every', '2', '--eval-batches', '1', '--backend', 'cpu', '--out', out];
    expect(peerc(['train', lm, '--data', text, ...args, '--stop-at', '2']).status).toBe(0);
    const moved = at('moved.txt');
    renameSync(text, moved);
    const lost = peerc(['train', lm, '--resume', '--out', out, '--backend', 'cpu']);
    expect(lost.status).toBe(1);
    expect(lost.stderr).toMatch(/error PEER0711: --resume: .*text-a\.txt does not exist \(the run recorded this path; pass --data/);
    const other = at('other.txt');
    writeFileSync(other, 'something else entirely. '.repeat(100));
    const wrong = peerc(['train', lm, '--resume', '--out', out, '--data', other, '--backend', 'cpu']);
    expect(wrong.status).toBe(1);
    expect(wrong.stderr).toMatch(/error PEER0711: --resume: .*other\.txt is not the text this run was trained on/);
    const ok = peerc(['train', lm, '--resume', '--out', out, '--data', moved, '--backend', 'cpu']);
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/note: data: .*moved\.txt has the content of .*text-a\.txt/);
    expect(readCheckpoint(join(out, 'checkpoint.safetensors'), { tensors: false }).meta.step).toBe(4);
    // sample echoes the prompt, then continues it.
    const s = peerc(['sample', join(out, 'checkpoint.safetensors'), '--prompt', 'the quick', '--tokens', '8', '--backend', 'cpu']);
    expect(s.status, s.stderr).toBe(0);
    expect(s.stdout.startsWith('the quick')).toBe(true);
  });
});

describe('sweep files are checked like programs (PEER0802, exit 1)', () => {
  const cases: [string, unknown, RegExp][] = [
    ['null file', null, /the file must hold a JSON object, not null/],
    ['null program', { out: 'x', programs: [null] }, /"programs"\[0\] must be a \.peer file name, not null/],
    ['programs null', { out: 'x', programs: null }, /"programs" must list one or more \.peer files, not null/],
    ['set null', { out: 'x', programs: ['a.peer'], set: null }, /"set" must map const names to lists of values, not null/],
    ['set value null', { out: 'x', programs: ['a.peer'], set: { N: null } }, /"set"\."N" must be a non-empty list of values, not null/],
    ['set value empty', { out: 'x', programs: ['a.peer'], set: { N: [] } }, /"set"\."N" must be a non-empty list of values, not an empty list/],
    ['seed for seeds', { out: 'x', programs: ['a.peer'], seed: [1] }, /"seed" is not a sweep setting; did you mean "seeds"\?/],
    ['seeds empty', { out: 'x', programs: ['a.peer'], seeds: [] }, /"seeds" must be a non-empty list of whole numbers >= 0/],
    ['seeds negative', { out: 'x', programs: ['a.peer'], seeds: [-1] }, /"seeds"\[0\] must be a whole number >= 0, not -1/],
    ['points empty', { out: 'x', programs: ['a.peer'], points: [] }, /"points" must be a non-empty list/],
    ['point value null', { out: 'x', programs: ['a.peer'], points: [{ N: null }] }, /"points"\[0\]\."N" must be a number or a string, not null/],
    ['train not strings', { out: 'x', programs: ['a.peer'], train: [3] }, /"train"\[0\] must be a string/],
    ['out missing', { programs: ['a.peer'] }, /"out" must name a folder, not undefined/],
  ];
  for (const [label, spec, message] of cases) {
    it(label, () => {
      const f = at(`sweep-${label.replace(/\W+/g, '-')}.json`);
      writeFileSync(f, JSON.stringify(spec));
      const r = peerc(['sweep', f]);
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/error PEER0802: /);
      expect(r.stderr).toMatch(message);
    });
  }
});

describe('a sweep with a damaged run', () => {
  it('reports that run as failed, trains and compares the others', () => {
    const dir = at('sweep-damaged');
    mkdirSync(join(dir, 'runs', 'recall-seed1'), { recursive: true });
    writeFileSync(join(dir, 'runs', 'recall-seed1', 'checkpoint.safetensors'), 'not a checkpoint at all');
    copyFileSync(recall, join(dir, 'recall.peer'));
    writeFileSync(join(dir, 'grid.json'), JSON.stringify({ out: 'runs', programs: ['recall.peer'], seeds: [0, 1], train: ['--steps', '2', '--eval-every', '2', ...common] }));
    const r = peerc(['sweep', join(dir, 'grid.json')]);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/\[2\/2\] recall-seed1: not run: PEER0600: .*checkpoint\.safetensors is not a valid safetensors file/);
    expect(r.stdout).toMatch(/failed: recall-seed1 \(damaged checkpoint\)/);
    expect(readCheckpoint(join(dir, 'runs', 'recall-seed0', 'checkpoint.safetensors'), { tensors: false }).meta.step).toBe(2);
    expect(existsSync(join(dir, 'runs', 'compare.md'))).toBe(true);
  });
});

describe('a real full file system (tmpfs), where this machine lets tests mount one', () => {
  const mnt = at('tmpfs');
  mkdirSync(mnt, { recursive: true });
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mnt]).status === 0;
  if (!mounted) console.log('tmpfs cases skipped: mounting a tmpfs needs root and a mount namespace that allows it');
  it.skipIf(!mounted)('a checkpoint that does not fit: PEER0801 with the space left, the earlier checkpoint intact, no temp file', () => {
    try {
      const out = join(mnt, 'run');
      // 2 steps fit (one checkpoint of ~1.3 MB with Adam's moments); a filler then leaves too little room for the next.
      expect(peerc(train(out, '--stop-at', '2')).status).toBe(0);
      const free = statfsSync(mnt);
      writeFileSync(join(mnt, 'filler'), Buffer.alloc(Math.max(0, free.bavail * free.bsize - 300_000)));
      const r = peerc(['train', recall, '--resume', '--out', out, ...common]);
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/error PEER0801: could not write .*checkpoint\.safetensors: no space is left on the device \([\d.]+ (KiB|bytes) free\); the previous checkpoint\.safetensors is unchanged/);
      expect(readCheckpoint(join(out, 'checkpoint.safetensors')).meta.step).toBe(2);
      expect(leftovers(out)).toEqual([]);
      expect(parseMetrics(readFileSync(join(out, 'metrics.jsonl'), 'utf8')).warnings).toEqual([]);
    } finally {
      spawnSync('umount', [mnt]);
    }
  });
});
