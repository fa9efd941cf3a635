// The checker: resolves names, infers symbolic shapes and lowers the program to IR in one
// walk. Layers are instantiated per call (monomorphised) with their signature's dims bound
// by the arguments, so domain checks see real values (sqrt(N), k <= sqrt(N), ...).
import type { Decl, Expr, IndexItem, Program, Span, Stmt, TypeExpr } from '../../grammar/ast.js';
import { CompileError, diagnostic, fail, type Diagnostic } from '../diagnostics/diagnostic.js';
import { Graph, ref, type IRFunction, type IRModule, type ParamInfo } from '../ir/graph.js';
import type { Attrs, TensorType } from '../ir/ops/types.js';
import { Dim, shapeToString } from '../shapes/dim.js';
import { Args, BUILTINS, INITIALIZERS, type Lowering, type TensorValue } from './builtins.js';
import { constBinary, constNeg } from './consts.js';
import { paramInfo, trainSettings, type ConstDecl, type ParamDecl, type TrainDecl } from './globals.js';
import { closestName, namedShape, nameDim, Scope } from './scope.js';
import { asDim, asInt, asTensor, check, describeValue, NeedsConcrete, needsConcrete, Poisoned, type Value } from './values.js';

type LayerDecl = Extract<Decl, { kind: 'layer' }>;

export interface SourceUnit {
  program: Program;
  text: string;
  isPrelude: boolean;
}

export interface CheckOptions {
  /** Layer to compile as the entry point; default: the program's `model`. */
  entry?: string;
  /**
   * Called with every value the checker binds or reads by name, at the name's span (a layer's
   * parameters, assignment targets, name references): what an editor shows on hover. A layer
   * instantiated several times reports each instantiation's values.
   */
  observe?: (span: Span, value: Value) => void;
}

export interface CheckResult {
  module: IRModule | null;
  diagnostics: Diagnostic[];
}

const MAX_DIAGNOSTICS = 100;

interface Frame {
  graph: Graph;
  scope: Scope;
  layer: string;
  /** Inside a prelude layer: the user's constants and parameters are not visible (its dims are its own). */
  prelude?: boolean;
}

export function checkProgram(units: SourceUnit[], options: CheckOptions = {}): CheckResult {
  return new Checker(units, options.observe).run(options);
}

class Checker {
  private readonly diagnostics: Diagnostic[] = [];
  private readonly seen = new Set<string>();
  private readonly texts = new Map<string, string>();
  private readonly consts = new Map<string, ConstDecl>();
  private readonly constValues = new Map<string, Value | 'pending'>();
  private readonly paramDecls = new Map<string, ParamDecl>();
  private readonly params = new Map<string, ParamInfo | null>();
  private readonly layers = new Map<string, { decl: LayerDecl; prelude: boolean }>();
  private readonly trains: TrainDecl[] = [];
  private readonly functions = new Map<string, IRFunction | null>();
  private readonly inProgress: string[] = [];
  private readonly globalScope = new Scope();
  /** The prelude's own constants (the prelude's layers see these, never the user's). */
  private readonly preludeScope = new Scope();
  private readonly preludeNames = new Set<string>();
  private generic = 0;
  /** Counts noise call sites (per layer instance), so each draws its own noise. */
  private salts = 0;
  private callNotes: string[] = [];

  constructor(private readonly units: SourceUnit[], private readonly observe?: (span: Span, value: Value) => void) {
    for (const u of units) this.texts.set(u.program.file, u.text);
  }

  run(options: CheckOptions): CheckResult {
    this.collect();
    for (const name of this.consts.keys()) this.guard(() => this.constValue(name, this.consts.get(name)!.nameSpan));
    for (const name of this.paramDecls.keys()) this.guard(() => this.param(name));
    const train = trainSettings(this.trains, { evalConst: (e) => this.evalConstExpr(e), text: (s) => this.text(s) }, (d) => this.report(d));
    const entry = this.guard(() => this.entry(options.entry)) ?? null;
    // Layers nobody calls are still checked, with their dims left symbolic.
    for (const { decl, prelude } of this.layers.values())
      if (!prelude && !this.instantiatedLayers.has(decl.name)) this.guard(() => this.checkGeneric(decl));
    const params = [...this.params.values()].filter((p): p is ParamInfo => p !== null);
    const errors = this.diagnostics.some((d) => d.severity === 'error');
    const functions = new Map([...this.functions].filter((e): e is [string, IRFunction] => e[1] !== null));
    const module: IRModule | null = errors ? null : { functions, entry: entry ?? '', params, train };
    const order = (d: Diagnostic) => (d.span ? [this.units.findIndex((u) => u.program.file === d.span!.file), d.span.offset] : [1e9, 0]);
    const diagnostics = [...this.diagnostics].sort((a, b) => {
      const [fa, oa] = order(a), [fb, ob] = order(b);
      return fa! - fb! || oa! - ob!;
    });
    return { module, diagnostics };
  }

  private readonly instantiatedLayers = new Set<string>();

  // ---- diagnostics ---------------------------------------------------------------

  private report(d: Diagnostic): void {
    const key = `${d.code}|${d.span?.file}:${d.span?.offset}|${d.message}`;
    if (this.seen.has(key)) return;
    this.seen.add(key);
    if (this.diagnostics.length === MAX_DIAGNOSTICS) this.diagnostics.push(diagnostic('PEER0003', null, { shown: MAX_DIAGNOSTICS }));
    if (this.diagnostics.length > MAX_DIAGNOSTICS) return;
    this.diagnostics.push(d);
  }

  /** Runs fn; a located error is reported and undefined returned. */
  private guard<T>(fn: () => T): T | undefined {
    try {
      return fn();
    } catch (e) {
      if (e instanceof NeedsConcrete && this.generic > 0) throw e;
      if (e instanceof CompileError) {
        this.report(this.callNotes.length ? { ...e.diagnostic, notes: [...e.diagnostic.notes, ...this.callNotes] } : e.diagnostic);
        return undefined;
      }
      if (e instanceof Poisoned) return undefined;
      throw e;
    }
  }

  private text(s: Span): string {
    return (this.texts.get(s.file) ?? '').slice(s.offset, s.offset + s.length);
  }

  // ---- globals --------------------------------------------------------------------

  private collect(): void {
    const where = new Map<string, { span: Span; prelude: boolean }>();
    const builtinNames = new Set([...Object.keys(BUILTINS), ...Object.keys(INITIALIZERS)]);
    for (const u of this.units)
      for (const d of u.program.decls) {
        if (d.kind === 'train') {
          this.trains.push(d);
          continue;
        }
        const prev = where.get(d.name);
        if (builtinNames.has(d.name)) {
          this.report(diagnostic('PEER0201', d.nameSpan, { name: d.name, where: 'it is a builtin function' }));
          continue;
        }
        if (prev && !(prev.prelude && !u.isPrelude)) {
          this.report(diagnostic('PEER0201', d.nameSpan, { name: d.name, where: `first at ${prev.span.file}:${prev.span.line}:${prev.span.col}` }));
          continue;
        }
        // A user's definition replaces the prelude's of the same name.
        if (prev) {
          this.consts.delete(d.name);
          this.paramDecls.delete(d.name);
          this.layers.delete(d.name);
        }
        where.set(d.name, { span: d.nameSpan, prelude: u.isPrelude });
        if (u.isPrelude) this.preludeNames.add(d.name);
        else this.preludeNames.delete(d.name);
        if (d.kind === 'const') this.consts.set(d.name, d);
        else if (d.kind === 'param') this.paramDecls.set(d.name, d);
        else this.layers.set(d.name, { decl: d, prelude: u.isPrelude });
      }
  }

  private constValue(name: string, useSpan: Span): Value {
    const v = this.constValues.get(name);
    if (v === 'pending') fail('PEER0407', useSpan, { detail: `constant '${name}' is defined in terms of itself` });
    if (v) return v;
    this.constValues.set(name, 'pending');
    const decl = this.consts.get(name)!;
    let value: Value = { kind: 'error' };
    try {
      value = this.evalConstExpr(decl.value);
      if (value.kind !== 'int' && value.kind !== 'float' && value.kind !== 'string')
        fail('PEER0204', decl.value.span, { what: `constant '${name}'`, expected: 'a number or a string', found: describeValue(value) });
    } finally {
      this.constValues.set(name, value);
      if (value.kind === 'int') this.globalScope.set(name, value);
      if (value.kind === 'int' && this.preludeNames.has(name)) this.preludeScope.set(name, value);
    }
    return value;
  }

  private evalConstExpr(e: Expr): Value {
    const frame: Frame = { graph: new Graph(), scope: this.globalScope, layer: '' };
    const v = this.evalOne(e, frame);
    if (v.kind === 'tensor') fail('PEER0204', e.span, { what: 'this constant expression', expected: 'a number', found: describeValue(v) });
    return v;
  }

  private param(name: string): ParamInfo | null {
    if (this.params.has(name)) return this.params.get(name)!;
    this.params.set(name, null);
    const info = paramInfo(this.paramDecls.get(name)!, { evalConst: (e) => this.evalConstExpr(e), text: (s) => this.text(s) });
    this.params.set(name, info);
    return info;
  }

  // ---- entry and layers -----------------------------------------------------------

  private entry(name: string | undefined): string | undefined {
    let decl: LayerDecl | undefined;
    if (name) {
      decl = this.layers.get(name)?.decl;
      if (!decl) fail('PEER0209', null, { detail: `no layer named '${name}' to use as the entry point` });
    } else {
      const models = [...this.layers.values()].filter((l) => !l.prelude && l.decl.isModel);
      if (models.length > 1) fail('PEER0209', models[1]!.decl.nameSpan, { detail: `a program has one model; '${models[0]!.decl.name}' is the first (pick one with --entry)` });
      decl = models[0]?.decl;
      if (!decl) return undefined;
    }
    const bindings = new Map<string, Value>();
    for (const p of decl.params) {
      if (p.type.dims === null) fail('PEER0209', p.span, { detail: `the entry point '${decl.name}' cannot take an int argument ('${p.name}'); make it a const` });
      for (const e of p.type.dims) if (e.kind === 'name' && !this.isGlobalConst(e.name)) bindings.set(e.name, { kind: 'int', dim: Dim.sym(e.name) });
    }
    const args = decl.params.map((p) => {
      const shape = p.type.dims!.map((e) => {
        this.requireInferable(e, bindings, decl!.name);
        return asDim(this.evalWith(e, bindings), `a dimension of '${p.name}'`, e.span, this.text(e.span));
      });
      return { name: p.name, type: { dtype: p.type.dtype as 'f32' | 'index', shape } };
    });
    return this.instantiate(decl, args, decl.nameSpan)?.name;
  }

  private checkGeneric(decl: LayerDecl): void {
    const bindings = new Map<string, Value>();
    for (const p of decl.params) {
      if (p.type.dims === null) bindings.set(p.name, { kind: 'int', dim: Dim.sym(p.name) });
      else for (const e of p.type.dims) if (e.kind === 'name' && !this.isGlobalConst(e.name, this.isPreludeLayer(decl))) bindings.set(e.name, { kind: 'int', dim: Dim.sym(e.name) });
    }
    const args = decl.params.map((p) =>
      p.type.dims === null
        ? { name: p.name, value: bindings.get(p.name)! }
        : { name: p.name, type: { dtype: p.type.dtype as 'f32' | 'index', shape: p.type.dims.map((e) => {
            this.requireInferable(e, bindings, decl.name, this.isPreludeLayer(decl));
            return asDim(this.evalWith(e, bindings, this.isPreludeLayer(decl)), `a dimension of '${p.name}'`, e.span, this.text(e.span));
          }) } },
    );
    this.generic++;
    try {
      this.instantiate(decl, args, decl.nameSpan);
    } catch (e) {
      if (!(e instanceof NeedsConcrete)) throw e;
    } finally {
      this.generic--;
    }
  }

  /** A signature dim written as an expression may only use dims bound elsewhere (or constants). */
  private requireInferable(e: Expr, bound: Scope | Map<string, Value>, layer: string, prelude = false): void {
    const names: { name: string; span: Span }[] = [];
    const walk = (x: Expr): void => {
      if (x.kind === 'name') names.push({ name: x.name, span: x.span });
      else if (x.kind === 'binary') (walk(x.left), walk(x.right));
      else if (x.kind === 'unary') walk(x.operand);
      else if (x.kind === 'call') x.args.forEach((a) => walk(a.value));
    };
    walk(e);
    for (const n of names) {
      const known = bound instanceof Scope ? bound.has(n.name) : bound.has(n.name);
      if (!known && !this.isGlobalConst(n.name, prelude)) fail('PEER0307', n.span, { name: n.name, layer });
    }
  }

  private isGlobalConst(name: string, prelude = false): boolean {
    return this.consts.has(name) && (!prelude || this.preludeNames.has(name));
  }

  /** "where N = 16384": the values of the constants a written shape names. */
  private constNotes(written: string, scope: Scope): string[] {
    const names = [...new Set(written.match(/[A-Za-z_]\w*/g) ?? [])].filter((n) => this.isGlobalConst(n));
    const parts = names.flatMap((n) => {
      const v = scope.get(n);
      return v?.kind === 'int' && v.dim.value !== undefined ? [`${n} = ${v.dim.value}`] : [];
    });
    return parts.length ? [`where ${parts.join(', ')}`] : [];
  }

  private isPreludeLayer(decl: LayerDecl): boolean {
    const l = this.layers.get(decl.name);
    return l !== undefined && l.prelude && l.decl === decl;
  }

  private evalWith(e: Expr, bindings: Map<string, Value>, prelude = false): Value {
    const scope = new Scope(prelude ? this.preludeScope : this.globalScope);
    for (const [k, v] of bindings) scope.set(k, v);
    return this.evalOne(e, { graph: new Graph(), scope, layer: '', prelude });
  }

  /**
   * Checks a layer's body for one binding of its signature and returns the IR function.
   * Arguments are either tensors (by type) or compile-time integers.
   */
  private instantiate(
    decl: LayerDecl,
    args: ({ name: string; type: TensorType } | { name: string; value: Value })[],
    callSpan: Span,
  ): IRFunction | null {
    if (this.inProgress.includes(decl.name))
      fail('PEER0205', callSpan, { chain: [...this.inProgress.slice(this.inProgress.indexOf(decl.name)), decl.name].join(' -> ') });
    const prelude = this.isPreludeLayer(decl);
    const scope = new Scope(prelude ? this.preludeScope : this.globalScope);
    const boundBy = new Map<string, string>();
    // Bind the signature's dims from the arguments, then check every dim written as an expression.
    decl.params.forEach((p, i) => {
      const a = args[i]!;
      if ('value' in a) {
        scope.set(p.name, a.value);
        return;
      }
      a.type.shape.forEach((d, j) => {
        const e = p.type.dims![j]!;
        if (e.kind === 'name' && !this.isGlobalConst(e.name, prelude) && !scope.hasOwn(e.name)) {
          scope.set(e.name, { kind: 'int', dim: d });
          boundBy.set(e.name, p.name);
        }
      });
    });
    const graph = new Graph();
    const inputs: number[] = [];
    decl.params.forEach((p, i) => {
      const a = args[i]!;
      if ('value' in a) return;
      const expected = p.type.dims!.map((e) => {
        this.requireInferable(e, scope, decl.name, prelude);
        return asDim(this.evalOne(e, { graph, scope, layer: decl.name, prelude }), `a dimension of '${p.name}'`, e.span, this.text(e.span));
      });
      if (!expected.every((d, j) => d.equals(a.type.shape[j]!))) {
        // A prelude layer's dims are its own: printed as numbers, never as a user constant that
        // happens to share their value or name. A user's layer may name the user's constants.
        const written = this.text(p.type.span).replace(/^f32/, '');
        const show = (shape: readonly Dim[]) => (prelude ? shapeToString(shape) : namedShape(shape, scope));
        const local = [...boundBy]
          .map(([n, from]) => [n, String((scope.get(n) as { dim: Dim }).dim), from] as const)
          .filter(([n, v]) => written.includes(n) && n !== v)
          .map(([n, v, from]) => `${n} = ${v} (from '${from}')`);
        fail('PEER0303', callSpan, {
          what: `argument '${p.name}' of '${decl.name}'`,
          expected: `${written}${show(expected) !== written ? ` = ${show(expected)}` : ''}`,
          found: show(a.type.shape),
          detail: '',
        }, prelude ? (local.length ? [`in '${decl.name}', ${local.join(', ')}`] : []) : this.constNotes(`${written} ${show(a.type.shape)}`, scope));
      }
      const id = graph.add('input', [], { name: p.name, dtype: a.type.dtype, shape: a.type.shape }, p.span, [a.type]);
      inputs.push(id);
      scope.set(p.name, { kind: 'tensor', ref: ref(id), type: a.type });
      this.observe?.(p.span, scope.get(p.name)!);
    });
    const key = `${decl.name}(${args.map((a) => ('value' in a ? `${a.value.kind === 'int' ? a.value.dim : '?'}` : `${a.type.dtype}${a.type.bound ? `<${a.type.bound}>` : ''}${shapeToString(a.type.shape)}`)).join(', ')})`;
    if (this.functions.has(key)) return this.functions.get(key)!;
    if (this.generic === 0) this.instantiatedLayers.add(decl.name);
    this.inProgress.push(decl.name);
    const savedNotes = this.callNotes;
    if (this.inProgress.length > 1) {
      const bound = scope.names().filter((n) => scope.hasOwn(n) && scope.get(n)!.kind === 'int').map((n) => [n, String((scope.get(n) as { dim: Dim }).dim)]).filter(([n, v]) => n !== v).map(([n, v]) => `${n} = ${v}`);
      this.callNotes = [`in '${decl.name}' called at ${callSpan.file}:${callSpan.line}:${callSpan.col}${bound.length ? ` with ${bound.join(', ')}` : ''}`, ...savedNotes];
    }
    try {
      const frame: Frame = { graph, scope, layer: decl.name, prelude };
      const outputs = this.body(decl, frame);
      if (!outputs) {
        this.functions.set(key, null);
        return null;
      }
      const symbols = [...new Set(inputs.flatMap((id) => graph.node(id).types[0]!.shape.flatMap((d) => d.symbols)))];
      // The first instantiation of a layer takes its name; later ones (other shapes) get _2, _3, ...
      const name = this.generic === 0 ? this.uniqueName(decl.name, key) : decl.name;
      const fn: IRFunction = { name, graph: graph.freeze(), inputs, outputs: outputs.map((o) => o.ref), symbols };
      if (this.generic === 0) this.functions.set(key, fn);
      return fn;
    } finally {
      this.inProgress.pop();
      this.callNotes = savedNotes;
    }
  }

  private readonly usedNames = new Map<string, string>();
  private uniqueName(base: string, key: string): string {
    let name = base;
    for (let i = 2; this.usedNames.has(name) && this.usedNames.get(name) !== key; i++) name = `${base}_${i}`;
    this.usedNames.set(name, key);
    return name;
  }

  /** Checks the statements; returns the result tensors, or null after errors. */
  private body(decl: LayerDecl, frame: Frame): TensorValue[] | null {
    let result: TensorValue[] | null = null;
    let failed = false;
    let returned = false;
    for (const s of decl.body) {
      if (returned) {
        this.report(diagnostic('PEER0210', s.span, {}));
        failed = true;
        break;
      }
      const ok = this.guard(() => {
        if (s.kind === 'return') {
          returned = true;
          result = this.returnStmt(decl, s, frame);
        } else this.assign(s, frame);
        return true;
      });
      if (!ok) {
        failed = true;
        if (s.kind === 'assign') for (const t of s.targets) frame.scope.set(t.name, { kind: 'error' });
      }
    }
    if (!returned && !failed) this.report(diagnostic('PEER0207', decl.nameSpan, { layer: decl.name }));
    return failed ? null : result;
  }

  private assign(s: Extract<Stmt, { kind: 'assign' }>, frame: Frame): void {
    const values = this.evalMany(s.value, frame);
    if (values.length !== s.targets.length)
      fail('PEER0206', s.span, { what: `the right-hand side`, expected: s.targets.length, found: values.length });
    s.targets.forEach((t, i) => {
      frame.scope.set(t.name, values[i]!);
      this.observe?.(t.span, values[i]!);
    });
  }

  private returnStmt(decl: LayerDecl, s: Extract<Stmt, { kind: 'return' }>, frame: Frame): TensorValue[] {
    const values = s.values.flatMap((e) => this.evalMany(e, frame));
    if (values.length !== decl.results.length)
      fail('PEER0206', s.span, { what: 'this return', expected: decl.results.length, found: values.length }, [`'${decl.name}' is declared to return ${decl.results.length}`]);
    return values.map((v, i) => {
      const t = asTensor(v, `result ${i + 1} of '${decl.name}'`, s.values[Math.min(i, s.values.length - 1)]!.span);
      this.checkDeclaredType(decl.results[i]!, t.type, `result ${i + 1} of '${decl.name}'`, s.values[Math.min(i, s.values.length - 1)]!.span, frame);
      return t;
    });
  }

  private checkDeclaredType(te: TypeExpr, actual: TensorType, what: string, span: Span, frame: Frame): void {
    if (te.dims === null) fail('PEER0204', te.span, { what, expected: 'a tensor type', found: 'int' });
    if (te.dtype !== actual.dtype) fail('PEER0300', span, { what, expected: `${te.dtype} (declared at line ${te.span.line})`, found: actual.dtype });
    const expected = te.dims.map((e) => asDim(this.evalOne(e, frame), 'a result dimension', e.span, this.text(e.span)));
    if (expected.length !== actual.shape.length || !expected.every((d, i) => d.equals(actual.shape[i]!)))
      fail('PEER0302', span, { what, expected: this.text(te.span).replace(/^f32/, ''), found: namedShape(actual.shape, frame.scope) });
  }

  // ---- expressions ----------------------------------------------------------------

  private evalOne(e: Expr, frame: Frame): Value {
    const vs = this.evalMany(e, frame);
    if (vs.length !== 1) fail('PEER0206', e.span, { what: e.kind === 'call' ? `'${e.callee}'` : 'this expression', expected: 1, found: vs.length }, ['assign the results to several names: (values, indices) = topk(x, k)']);
    return vs[0]!;
  }

  private evalMany(e: Expr, frame: Frame): Value[] {
    switch (e.kind) {
      case 'int':
        return [{ kind: 'int', dim: Dim.of(e.value) }];
      case 'float':
        return [{ kind: 'float', value: e.value }];
      case 'string':
        return [{ kind: 'string', value: e.value }];
      case 'name': {
        const v = this.lookup(e.name, e.span, frame);
        this.observe?.(e.span, v);
        return [v];
      }
      case 'list':
        return [{ kind: 'list', items: e.items.map((i) => this.evalOne(i, frame)) }];
      case 'unary': {
        const v = check(this.evalOne(e.operand, frame));
        if (v.kind === 'tensor') return this.emit(frame, 'neg', [v], {}, e.span);
        return [constNeg(v)];
      }
      case 'binary':
        return [this.binary(e, frame)];
      case 'call':
        return this.call(e, frame);
      case 'index':
        return [this.index(e, frame)];
    }
  }

  private lookup(name: string, span: Span, frame: Frame): Value {
    const local = frame.scope.get(name);
    if (local) return local;
    const visible = !frame.prelude || this.preludeNames.has(name);
    if (visible && this.consts.has(name)) return this.constValue(name, span);
    if (visible && this.paramDecls.has(name)) {
      const p = this.param(name);
      if (!p) throw new Poisoned();
      const type: TensorType = { dtype: p.dtype, shape: p.shape.map((n) => Dim.of(n)) };
      const id = frame.graph.add('param', [], { name, dtype: p.dtype, shape: type.shape }, span, [type]);
      return { kind: 'tensor', ref: ref(id), type };
    }
    const candidates = [...frame.scope.names(), ...this.consts.keys(), ...this.paramDecls.keys()];
    const near = closestName(name, candidates);
    const what = this.layers.has(name) || BUILTINS[name] ? ` (it is a function: call it as ${name}(...))` : near ? `; did you mean '${near}'?` : '';
    return fail('PEER0200', span, { name, hint: what });
  }

  private binary(e: Extract<Expr, { kind: 'binary' }>, frame: Frame): Value {
    const a = check(this.evalOne(e.left, frame));
    const b = check(this.evalOne(e.right, frame));
    if (a.kind !== 'tensor' && b.kind !== 'tensor') return constBinary(e.op, a, b, this.text(e.span), e.span);
    const dtype = a.kind === 'tensor' ? a.type.dtype : (b as TensorValue).type.dtype;
    const ta = this.asOperand(a, dtype, e.left.span, frame);
    const tb = this.asOperand(b, dtype, e.right.span, frame);
    const op =
      e.op === '+' ? 'add' : e.op === '-' ? 'sub' : e.op === '*' ? 'mul' : e.op === '^' ? 'pow'
        : e.op === '/' ? (dtype === 'index' ? 'floordiv' : 'div') : 'mod';
    return this.emit(frame, op, [ta, tb], {}, e.span)[0]!;
  }

  /** A scalar constant beside a tensor becomes a constant node of the tensor's dtype. */
  private asOperand(v: Value, dtype: 'f32' | 'index', span: Span, frame: Frame): TensorValue {
    if (v.kind === 'tensor') return v;
    if (v.kind === 'int' && v.dim.isConst) return this.scalar(frame, v.dim.value!, dtype, span);
    if (v.kind === 'int') needsConcrete(v, 'a number in tensor arithmetic', span);
    if (v.kind === 'float' && dtype === 'f32') return this.scalar(frame, v.value, 'f32', span);
    return fail('PEER0204', span, {
      what: `an operand next to ${dtype === 'f32' ? 'an f32' : 'an index'} tensor`,
      expected: dtype === 'index' ? 'an index tensor or a constant integer' : 'a tensor or a constant number',
      found: describeValue(v),
    });
  }

  private scalar(frame: Frame, value: number, dtype: 'f32' | 'index', span: Span): TensorValue {
    const r = frame.graph.constant(value, dtype, span);
    return { kind: 'tensor', ref: r, type: frame.graph.typeOf(r) };
  }

  private emit(frame: Frame, op: string, inputs: TensorValue[], attrs: Attrs, span: Span): TensorValue[] {
    try {
      const id = frame.graph.add(op, inputs.map((i) => i.ref), attrs, span);
      return frame.graph.node(id).types.map((type, result) => ({ kind: 'tensor' as const, ref: ref(id, result), type }));
    } catch (e) {
      if (e instanceof CompileError && e.diagnostic.span === null) throw new CompileError({ ...e.diagnostic, span, notes: [...e.diagnostic.notes, ...this.dimNotes(e.diagnostic.message, frame)] });
      throw e;
    }
  }

  /** "where d = 256, dk = 128": the names behind numbers that appear in a shape message. */
  private dimNotes(message: string, frame: Frame): string[] {
    const nums = [...new Set([...message.matchAll(/\b\d+\b/g)].map((m) => Number(m[0])))].filter((n) => n >= 2);
    const parts = nums.flatMap((n) => {
      const names = frame.scope.namesOf(n);
      return names.length && names.length <= 3 ? [`${names.join(' = ')} = ${n}`] : [];
    });
    return parts.length ? [`where ${parts.join(', ')}`] : [];
  }

  private call(e: Extract<Expr, { kind: 'call' }>, frame: Frame): Value[] {
    const layer = this.layers.get(e.callee);
    const builtin = BUILTINS[e.callee];
    if (!layer && !builtin) {
      if (INITIALIZERS[e.callee]) fail('PEER0204', e.calleeSpan, { what: `'${e.callee}(...)'`, expected: 'used only as the initializer of a param or buffer', found: 'a call inside an expression' });
      const near = closestName(e.callee, [...Object.keys(BUILTINS), ...this.layers.keys()]);
      fail('PEER0200', e.calleeSpan, { name: e.callee, hint: near ? `; did you mean '${near}'?` : ' (not a builtin or a layer)' });
    }
    const names = layer ? layer.decl.params.map((p) => p.name) : builtin!.params;
    const variadic = names[names.length - 1]?.endsWith('...') ?? false;
    const fixed = variadic ? names.slice(0, -1) : names;
    const values: (Value | undefined)[] = [];
    const spans: Span[] = [];
    const texts: string[] = [];
    let positional = 0;
    for (const a of e.args) {
      let i: number;
      if (a.name !== undefined) {
        i = fixed.indexOf(a.name);
        if (i < 0) fail('PEER0203', a.span, { callee: e.callee, name: a.name, allowed: `; its arguments are ${fixed.join(', ')}` });
        if (values[i] !== undefined) fail('PEER0211', a.span, { name: a.name });
      } else {
        i = positional++;
        if (i >= fixed.length && !variadic) fail('PEER0202', a.span, { callee: e.callee, expected: plural(fixed.length, 'argument'), found: e.args.length });
      }
      values[i] = this.evalOne(a.value, frame);
      spans[i] = a.value.span;
      texts[i] = this.text(a.value.span);
    }
    const defaults = builtin?.defaults ?? {};
    fixed.forEach((n, i) => {
      if (values[i] === undefined) {
        if (defaults[n] === undefined) fail('PEER0202', e.span, { callee: e.callee, expected: describeArity(fixed, defaults, variadic), found: e.args.length }, [`missing '${n}'`]);
        values[i] = defaults[n];
        spans[i] = e.span;
        texts[i] = String(n);
      }
    });
    for (const v of values) check(v!);
    if (builtin) {
      const lowering: Lowering = {
        op: (name, inputs, attrs, span) => this.emit(frame, name, inputs, attrs, span),
        operand: (v, dtype, span) => this.asOperand(v, dtype, span, frame),
        salt: () => ++this.salts,
      };
      return builtin.lower(new Args(e.callee, values, spans, texts, e.span, names.map((n) => n.replace('...', ''))), lowering);
    }
    return this.callLayer(layer!.decl, values as Value[], spans, e, frame);
  }

  private callLayer(decl: LayerDecl, values: Value[], spans: Span[], e: Extract<Expr, { kind: 'call' }>, frame: Frame): Value[] {
    // A number given for a scalar tensor parameter (`factor: []`) is that scalar, as in arithmetic.
    decl.params.forEach((p, i) => {
      const v = values[i]!;
      if (p.type.dims?.length === 0 && (v.kind === 'float' || (v.kind === 'int' && v.dim.isConst))) values[i] = this.asOperand(v, p.type.dtype === 'index' ? 'index' : 'f32', spans[i]!, frame);
    });
    const args = decl.params.map((p, i) => {
      const v = values[i]!;
      if (p.type.dims === null) {
        asDim(v, `argument '${p.name}' of '${decl.name}'`, spans[i]!, this.text(spans[i]!));
        return { name: p.name, value: v };
      }
      const t = asTensor(v, `argument '${p.name}' of '${decl.name}'`, spans[i]!);
      if (t.type.dtype !== p.type.dtype)
        fail('PEER0300', spans[i]!, { what: `argument '${p.name}' of '${decl.name}'`, expected: `an ${p.type.dtype} tensor`, found: describeValue(t) });
      if (t.type.shape.length !== p.type.dims.length)
        fail('PEER0303', spans[i]!, { what: `argument '${p.name}' of '${decl.name}'`, expected: this.text(p.type.span), found: namedShape(t.type.shape, frame.scope), detail: ` (rank ${p.type.dims.length} vs ${t.type.shape.length})` });
      return { name: p.name, type: t.type };
    });
    const fn = this.instantiate(decl, args, e.span);
    if (!fn) throw new Poisoned();
    const tensorArgs = decl.params.map((p, i) => (p.type.dims === null ? null : (values[i] as TensorValue))).filter((v): v is TensorValue => v !== null);
    const types = fn.outputs.map((o) => fn.graph.typeOf(o));
    const id = frame.graph.add('call', tensorArgs.map((t) => t.ref), { callee: fn.name }, e.span, types);
    return types.map((type, result) => ({ kind: 'tensor' as const, ref: ref(id, result), type }));
  }

  private index(e: Extract<Expr, { kind: 'index' }>, frame: Frame): Value {
    let x = asTensor(this.evalOne(e.target, frame), 'an indexed value', e.target.span);
    const rank = x.type.shape.length;
    const consuming = e.items.filter((i) => i.kind === 'slice' || i.kind === 'at').length;
    const ellipses = e.items.filter((i) => i.kind === 'ellipsis');
    if (ellipses.length > 1) fail('PEER0308', ellipses[1]!.span, { detail: "only one '...' may appear in an index" });
    if (consuming > rank) fail('PEER0308', e.span, { detail: `${consuming} axes indexed but the tensor ${namedShape(x.type.shape, frame.scope)} has rank ${rank}` });
    const items: IndexItem[] = [];
    for (const it of e.items) {
      if (it.kind === 'ellipsis') for (let k = 0; k < rank - consuming; k++) items.push({ kind: 'slice', span: it.span });
      else items.push(it);
    }
    let axis = 0;
    for (const it of items) {
      if (it.kind === 'newaxis') {
        x = this.emit(frame, 'expand_dims', [x], { axis }, it.span)[0]!;
        axis++;
      } else if (it.kind === 'slice' || it.kind === 'at') {
        const len = x.type.shape[axis]!;
        const bound = (ex: Expr | undefined, dflt: number | undefined): number => {
          if (!ex) {
            if (dflt === undefined) fail('PEER0308', it.span, { detail: `the end of a slice of symbolic axis ${len} must be omitted or written out` });
            return dflt;
          }
          const n = asInt(this.evalOne(ex, frame), 'a slice bound', ex.span, this.text(ex.span));
          if (n < 0) {
            if (len.value === undefined) fail('PEER0308', ex.span, { detail: `negative index on symbolic axis ${nameDim(len, frame.scope)}` });
            return n + len.value;
          }
          return n;
        };
        if (it.kind === 'at') {
          const i = bound(it.index, undefined);
          x = this.emit(frame, 'slice', [x], { axis, start: i, end: i + 1 }, it.span)[0]!;
          const shape = x.type.shape.filter((_, j) => j !== axis);
          x = this.emit(frame, 'reshape', [x], { shape }, it.span)[0]!;
        } else {
          if (!it.start && !it.end) {
            axis++;
            continue;
          }
          const start = bound(it.start, 0);
          const end = it.end ? bound(it.end, undefined) : len.value;
          if (end === undefined) fail('PEER0308', it.span, { detail: `the end of a slice of symbolic axis ${len} must be written out` });
          x = this.emit(frame, 'slice', [x], { axis, start, end }, it.span)[0]!;
          axis++;
        }
      }
    }
    return x;
  }
}

function plural(n: number, w: string): string {
  return `${n} ${w}${n === 1 ? '' : 's'}`;
}

function describeArity(fixed: string[], defaults: Record<string, Value>, variadic: boolean): string {
  const required = fixed.filter((n) => defaults[n] === undefined).length;
  if (variadic) return `at least ${plural(required + 1, 'argument')}`;
  return required === fixed.length ? plural(required, 'argument') : `${required} to ${plural(fixed.length, 'argument')}`;
}
