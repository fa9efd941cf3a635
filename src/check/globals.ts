// Global declarations: constants (evaluated lazily, cycles reported), parameters with their
// initializers and training attributes, and the train settings block.
import type { Attribute, Decl, Expr, Span } from '../../grammar/ast.js';
import { CompileError, fail, type Diagnostic } from '../diagnostics/diagnostic.js';
import type { InitSpec, ParamInfo, ParamOptim, ParamOptimizerKind, TrainValue } from '../ir/graph.js';
import { INITIALIZERS } from './builtins.js';
import { asDim, asNumber, asString, type Value } from './values.js';

export type ConstDecl = Extract<Decl, { kind: 'const' }>;
export type ParamDecl = Extract<Decl, { kind: 'param' }>;
export type TrainDecl = Extract<Decl, { kind: 'train' }>;

export interface ExprEvaluator {
  /** Evaluates a compile-time expression (no tensors) in the global scope. */
  evalConst(e: Expr): Value;
  text(s: Span): string;
}

export function paramInfo(d: ParamDecl, ev: ExprEvaluator): ParamInfo {
  if (d.type.dims === null || (d.type.dtype !== 'f32' && (d.type.dtype !== 'index' || d.role !== 'buffer')))
    fail('PEER0204', d.type.span, { what: `the type of ${d.role} '${d.name}'`, expected: d.role === 'buffer' ? 'a tensor type like [h, dk, d] or index[V, 2]' : 'an f32 tensor type like [h, dk, d]', found: d.type.dtype },
      d.type.dtype === 'index' ? [`an integer tensor is not trained: declare it as a buffer (buffer ${d.name}: index[...] = randint(0, n)) or pass it as an index input of the model`] : []);
  const dtype = d.type.dtype;
  const shape = d.type.dims.map((e) => {
    const dim = asDim(ev.evalConst(e), `a dimension of '${d.name}'`, e.span, ev.text(e.span));
    if (dim.value === undefined)
      fail('PEER0204', e.span, { what: `a dimension of ${d.role} '${d.name}'`, expected: 'a constant', found: `the symbolic dimension ${dim}` });
    if (dim.value < 1) fail('PEER0404', e.span, { expr: ev.text(e.span), value: dim.value });
    return dim.value;
  });
  const init = d.init ? initSpec(d.init, ev) : d.role === 'buffer' ? { kind: 'constant' as const, value: 0 } : { kind: 'normal' as const, mean: 0, std: 0.02 };
  if (dtype === 'index') checkIndexInit(d, init);
  else if (init.kind === 'randint') fail('PEER0407', d.init!.span, { detail: `randint(low, high) draws integers for index buffers; '${d.name}' is f32: use uniform(low, high)` });
  if (dtype === 'index' && d.attributes.length)
    fail('PEER0208', d.attributes[0]!.span, { name: `attribute '@${d.attributes[0]!.name}' on the index buffer '${d.name}'`, allowed: 'none: an index buffer is not trained' });
  let lrMultiplier = 1, sparse = false, weightDecay = d.role === 'param' && shape.length >= 2;
  let lrDecay: { to: number; over: number } | undefined;
  let optim: ParamOptim | undefined;
  for (const a of d.attributes) {
    if (a.name === 'lr') ({ lrMultiplier, lrDecay } = lrAttribute(a, ev));
    else if (a.name === 'sparse') sparse = true;
    else if (a.name === 'no_decay') weightDecay = false;
    else if (a.name === 'optim') optim = optimAttribute(a, ev);
    else fail('PEER0208', a.span, { name: `attribute '@${a.name}'`, allowed: '@lr(multiplier), @lr(multiplier, to=m, over=steps), @sparse, @no_decay, @optim(kind, lr=, wd=, clip=, schedule=)' });
  }
  if (optim?.lr !== undefined && (lrMultiplier !== 1 || lrDecay)) {
    const at = d.attributes.find((a) => a.name === 'lr')!;
    fail('PEER0407', at.span, { detail: `'${d.name}' has an absolute learning rate in @optim(lr=...); a multiplier @lr on top of it would be a second rate: keep one` });
  }
  return { name: d.name, role: d.role, dtype, shape, init, lrMultiplier, ...(lrDecay ? { lrDecay } : {}), sparse, weightDecay, ...(optim ? { optim } : {}), span: d.nameSpan };
}

const OPTIM_KINDS: readonly ParamOptimizerKind[] = ['sgd', 'adam', 'adamw', 'adagrad'];

/**
 * @optim(kind, lr=x, wd=x, clip=x, schedule="cosine"|"constant"): the kind as a bare name or a
 * string, every setting optional and named.
 */
function optimAttribute(a: Attribute, ev: ExprEvaluator): ParamOptim {
  const out: { -readonly [K in keyof ParamOptim]: ParamOptim[K] } = {};
  const number = (e: Expr, what: string, ok: (v: number) => boolean, need: string) => {
    const v = asNumber(ev.evalConst(e), what, e.span);
    if (!ok(v)) fail('PEER0407', e.span, { detail: `${what} must be ${need}, not ${v}` });
    return v;
  };
  const word = (e: Expr): string | undefined => (e.kind === 'name' ? e.name : e.kind === 'string' ? e.value : undefined);
  a.args.forEach((arg, i) => {
    if (!arg.name) {
      const kind = word(arg.value);
      if (i !== 0 || !kind || !OPTIM_KINDS.includes(kind as ParamOptimizerKind))
        fail('PEER0203', arg.span, { callee: '@optim', name: i === 0 ? (kind ?? '(positional)') : '(positional)', allowed: `; its first argument is the optimizer (${OPTIM_KINDS.join(', ')}), then lr=, wd=, clip=, schedule=` });
      out.kind = kind as ParamOptimizerKind;
    } else if (arg.name === 'lr') out.lr = number(arg.value, '@optim lr=', (v) => v > 0, 'positive');
    else if (arg.name === 'wd') out.weightDecay = number(arg.value, '@optim wd=', (v) => v >= 0, '0 or more');
    else if (arg.name === 'clip') out.clip = number(arg.value, '@optim clip=', (v) => v > 0, 'positive');
    else if (arg.name === 'schedule') {
      const s = word(arg.value);
      if (s !== 'cosine' && s !== 'constant') fail('PEER0407', arg.value.span, { detail: `@optim schedule= is "cosine" or "constant", not ${ev.text(arg.value.span)}` });
      out.schedule = s;
    } else fail('PEER0203', arg.span, { callee: '@optim', name: arg.name, allowed: '; it takes the optimizer, then lr=, wd=, clip=, schedule=' });
  });
  if (Object.keys(out).length === 0) fail('PEER0202', a.span, { callee: '@optim', expected: 'an optimizer or a setting, e.g. @optim(adagrad, lr=0.01)', found: 0 });
  return out;
}

/** @lr(m) or @lr(m, to=t, over=S): a learning-rate multiplier, constant or decaying linearly to t over S steps. */
function lrAttribute(a: Attribute, ev: ExprEvaluator): { lrMultiplier: number; lrDecay?: { to: number; over: number } } {
  const positive = (e: Expr, what: string) => {
    const v = asNumber(ev.evalConst(e), what, e.span);
    if (!(v > 0)) fail('PEER0407', e.span, { detail: `${what} must be positive, not ${v}` });
    return v;
  };
  const [first, ...named] = a.args;
  if (!first || first.name) fail('PEER0202', a.span, { callee: '@lr', expected: 'a multiplier, then optionally to= and over=', found: a.args.length });
  const lrMultiplier = positive(first.value, '@lr');
  const opts = new Map<string, Expr>();
  for (const arg of named) {
    if (!arg.name || !['to', 'over'].includes(arg.name)) fail('PEER0203', arg.span, { callee: '@lr', name: arg.name ?? '(positional)', allowed: '; after the multiplier it takes to= (the final multiplier) and over= (steps)' });
    opts.set(arg.name, arg.value);
  }
  if (opts.size === 0) return { lrMultiplier };
  if (opts.size !== 2) fail('PEER0202', a.span, { callee: '@lr', expected: 'both to= and over= for a decaying multiplier', found: a.args.length });
  const over = positive(opts.get('over')!, '@lr over=');
  if (!Number.isInteger(over)) fail('PEER0407', opts.get('over')!.span, { detail: `@lr over= is a number of steps, not ${over}` });
  return { lrMultiplier, lrDecay: { to: positive(opts.get('to')!, '@lr to='), over } };
}

/** Largest integer an index buffer may hold: the runtime keeps index values in float32, exact up to 2^24. */
export const MAX_INDEX_VALUE = 2 ** 24;

/** An index buffer starts with integers in [0, 2^24]: zeros(), ones(), constant(n) or randint(low, high). */
function checkIndexInit(d: ParamDecl, init: InitSpec): void {
  const span = d.init?.span ?? d.type.span;
  const ok = (v: number) => Number.isInteger(v) && v >= 0 && v <= MAX_INDEX_VALUE;
  if (init.kind === 'normal' || init.kind === 'uniform')
    fail('PEER0407', span, { detail: `${init.kind}(...) draws real numbers; the index buffer '${d.name}' starts with integers: randint(low, high), zeros(), ones() or constant(n)` });
  if (init.kind === 'constant' && !ok(init.value)) fail('PEER0407', span, { detail: `the index buffer '${d.name}' holds integers from 0 to 2^24; constant(${init.value}) is not one` });
  if (init.kind === 'randint' && !(init.low >= 0 && init.high - 1 <= MAX_INDEX_VALUE))
    fail('PEER0407', span, { detail: `the index buffer '${d.name}' holds integers from 0 to 2^24; randint(${init.low}, ${init.high}) draws outside them` });
}

function initSpec(e: Expr, ev: ExprEvaluator): InitSpec {
  if (e.kind !== 'call' || !INITIALIZERS[e.callee])
    fail('PEER0208', e.span, { name: `initializer ${e.kind === 'call' ? `'${e.callee}'` : ''}`.trim(), allowed: Object.keys(INITIALIZERS).map((k) => `${k}(...)`).join(', ') });
  const spec = INITIALIZERS[e.callee]!;
  const values: Record<string, number> = { ...spec.defaults };
  e.args.forEach((a, i) => {
    const name = a.name ?? spec.params[i];
    if (name === undefined) fail('PEER0202', a.span, { callee: e.callee, expected: `at most ${spec.params.length} arguments`, found: e.args.length });
    if (!spec.params.includes(name)) fail('PEER0203', a.span, { callee: e.callee, name, allowed: `; it takes ${spec.params.join(', ') || 'none'}` });
    values[name] = asNumber(ev.evalConst(a.value), `argument '${name}' of ${e.callee}`, a.value.span);
  });
  for (const p of spec.params) if (values[p] === undefined) fail('PEER0202', e.span, { callee: e.callee, expected: spec.params.join(', '), found: e.args.length });
  switch (e.callee) {
    case 'normal':
      if (!(values.std! >= 0)) fail('PEER0407', e.span, { detail: `normal: std must be >= 0, not ${values.std}` });
      return { kind: 'normal', mean: values.mean!, std: values.std! };
    case 'uniform':
      if (!(values.high! >= values.low!)) fail('PEER0407', e.span, { detail: `uniform: high (${values.high}) must be >= low (${values.low})` });
      return { kind: 'uniform', low: values.low!, high: values.high! };
    case 'randint':
      if (!Number.isInteger(values.low!) || !Number.isInteger(values.high!) || !(values.high! > values.low!))
        fail('PEER0407', e.span, { detail: `randint: low and high must be integers with high > low, not ${values.low} and ${values.high}` });
      return { kind: 'randint', low: values.low!, high: values.high! };
    case 'zeros':
      return { kind: 'constant', value: 0 };
    case 'ones':
      return { kind: 'constant', value: 1 };
    default:
      return { kind: 'constant', value: values.value! };
  }
}

type SettingKind = { type: 'int' | 'number'; min: number; above?: true } | { type: 'string'; oneOf: string[] };
export const TRAIN_SETTINGS: Record<string, SettingKind> = {
  steps: { type: 'int', min: 1 },
  batch: { type: 'int', min: 1 },
  seq: { type: 'int', min: 1 },
  lr: { type: 'number', min: 0, above: true },
  warmup: { type: 'int', min: 0 },
  weight_decay: { type: 'number', min: 0 },
  clip: { type: 'number', min: 0 },
  beta1: { type: 'number', min: 0 },
  beta2: { type: 'number', min: 0 },
  eval_every: { type: 'int', min: 1 },
  eval_batches: { type: 'int', min: 1 },
  checkpoint_every: { type: 'int', min: 1 },
  seed: { type: 'int', min: 0 },
  optimizer: { type: 'string', oneOf: ['sgd', 'adam', 'adamw'] },
  schedule: { type: 'string', oneOf: ['constant', 'cosine'] },
  task: { type: 'string', oneOf: ['text', 'recall'] },
};

export function trainSettings(decls: TrainDecl[], ev: ExprEvaluator, report: (d: Diagnostic) => void): Map<string, TrainValue> {
  const out = new Map<string, TrainValue>();
  for (const decl of decls)
    for (const s of decl.settings) {
      try {
        const kind = TRAIN_SETTINGS[s.name];
        if (!kind) fail('PEER0500', s.span, { name: s.name, allowed: Object.keys(TRAIN_SETTINGS).join(', ') });
        const v = ev.evalConst(s.value);
        if (kind.type === 'string') {
          const str = asString(v, `training setting '${s.name}'`, s.value.span);
          if (!kind.oneOf.includes(str)) fail('PEER0501', s.value.span, { name: s.name, detail: `must be one of ${kind.oneOf.map((o) => `"${o}"`).join(', ')}, not "${str}"` });
          out.set(s.name, str);
        } else {
          const n = asNumber(v, `training setting '${s.name}'`, s.value.span);
          if (kind.type === 'int' && !Number.isInteger(n)) fail('PEER0501', s.value.span, { name: s.name, detail: `must be a whole number, not ${n}` });
          if (kind.above ? !(n > kind.min) : !(n >= kind.min))
            fail('PEER0501', s.value.span, { name: s.name, detail: `must be ${kind.above ? '>' : '>='} ${kind.min}, not ${n}` });
          out.set(s.name, n);
        }
      } catch (e) {
        if (!(e instanceof CompileError)) throw e;
        report(e.diagnostic);
      }
    }
  return out;
}
