// What the language server knows about one .peer document, computed in one pass: the checker's
// diagnostics (the CLI's codes and messages) and fusion notes, every name occurrence resolved to
// its definition (consts, parameters, layers, the prelude's layers, builtins, a layer's inputs,
// dims and local bindings), and the values the checker saw at each name (shapes for hover and
// inlay hints). Pure: no protocol types here, so tests can call it directly.
import type { Decl, Expr, Program, Span, Stmt, TypeExpr } from '../../grammar/ast.js';
import type { IRModule } from '../../src/ir/graph.js';
import { parseSource } from '../../grammar/parse.js';
import type { Diagnostic } from '../../src/diagnostics/diagnostic.js';
import { compileSource, PRELUDE_FILE, PRELUDE_SOURCE } from '../../src/frontend.js';
import { BUILTINS, INITIALIZERS } from '../../src/check/builtins.js';
import type { Value } from '../../src/check/values.js';
import { shapeToString } from '../../src/shapes/dim.js';
import { optimize } from '../../src/passes/pipeline.js';
import { fusedSummary, unfusedPatterns } from '../../src/passes/fusion-notes.js';

export type SymbolKind = 'const' | 'param' | 'buffer' | 'layer' | 'model' | 'input' | 'dim' | 'local' | 'builtin';

export interface SymbolDef {
  name: string;
  kind: SymbolKind;
  /** Where its name is written (null for builtins); span.file is the document or PRELUDE_FILE. */
  span: Span | null;
  /** The whole declaration (document symbols, folding). */
  declSpan?: Span;
  /** One line: how it is declared (`param U: [N, d] = normal(0, 1) @sparse`). */
  detail: string;
  doc?: string;
  /** For inputs, dims and locals: the layer they belong to. */
  layer?: string;
}

export interface Occurrence {
  span: Span;
  def: SymbolDef;
  /** It binds the name here (a declaration, an assignment target). */
  binds: boolean;
}

export interface FusionNote {
  span: Span | null;
  message: string;
}

export interface DocumentAnalysis {
  file: string;
  text: string;
  program: Program | null;
  /** The checked module (null with errors): fusionNotesOf reads it. */
  module: IRModule | null;
  diagnostics: Diagnostic[];
  fusionNotes: FusionNote[];
  defs: SymbolDef[];
  occurrences: Occurrence[];
  /** The checker's values at each name occurrence of this document, by span offset (distinct descriptions). */
  values: Map<number, string[]>;
}

let prelude: { program: Program; layers: Map<string, SymbolDef> } | undefined;
function preludeLayers(): Map<string, SymbolDef> {
  if (!prelude) {
    const program = parseSource(PRELUDE_SOURCE, PRELUDE_FILE).program!;
    const layers = new Map<string, SymbolDef>();
    for (const d of program.decls) if (d.kind === 'layer') layers.set(d.name, layerDef(d, PRELUDE_SOURCE, docAbove(PRELUDE_SOURCE, d.span.offset)));
    prelude = { program, layers };
  }
  return prelude.layers;
}

/** The comment lines right above an offset (a declaration's documentation), read backwards line by line. */
function docAbove(text: string, offset: number): string | undefined {
  const doc: string[] = [];
  let end = text.lastIndexOf('\n', offset - 1);
  while (end > 0) {
    const start = text.lastIndexOf('\n', end - 1) + 1;
    const line = text.slice(start, end);
    if (!/^\s*#/.test(line)) break;
    doc.unshift(line.replace(/^\s*# ?/, ''));
    end = start - 1;
  }
  return doc.length ? doc.join('\n') : undefined;
}

const slice = (text: string, s: Span) => text.slice(s.offset, s.offset + s.length);
const typeText = (text: string, t: TypeExpr) => slice(text, t.span);

function layerDef(d: Extract<Decl, { kind: 'layer' }>, text: string, doc?: string): SymbolDef {
  const results = d.results.length === 1 ? typeText(text, d.results[0]!) : `(${d.results.map((t) => typeText(text, t)).join(', ')})`;
  return {
    name: d.name, kind: d.isModel ? 'model' : 'layer', span: d.nameSpan, declSpan: d.span, doc,
    detail: `${d.isModel ? 'model' : 'layer'} ${d.name}(${d.params.map((p) => `${p.name}: ${typeText(text, p.type)}`).join(', ')}) -> ${results}`,
  };
}

const BUILTIN_DEFS = new Map<string, SymbolDef>([
  ...Object.entries(BUILTINS).map(([name, b]) => [name, { name, kind: 'builtin' as const, span: null, detail: `${name}(${b.params.join(', ')})`, doc: b.doc }] as const),
  ...Object.entries(INITIALIZERS).map(([name, b]) => [name, { name, kind: 'builtin' as const, span: null, detail: `${name}(${b.params.join(', ')})`, doc: `initializer: ${name}(${b.params.map((p) => `${p}${p in b.defaults ? `=${b.defaults[p]}` : ''}`).join(', ')})` }] as const),
]);

export function builtinDefs(): ReadonlyMap<string, SymbolDef> {
  return BUILTIN_DEFS;
}

export function preludeDefs(): ReadonlyMap<string, SymbolDef> {
  return preludeLayers();
}

export function describe(v: Value): string {
  switch (v.kind) {
    case 'tensor':
      return `${v.type.dtype === 'index' ? 'index' : ''}${shapeToString(v.type.shape)}`;
    case 'int':
      return `int ${v.dim}`;
    case 'float':
      return `${v.value}`;
    case 'string':
      return JSON.stringify(v.value);
    case 'list':
      return `[${v.items.map(describe).join(', ')}]`;
    case 'error':
      return '(error)';
  }
}

export function analyze(text: string, file: string, options: { fusionNotes?: boolean } = {}): DocumentAnalysis {
  const values = new Map<number, string[]>();
  const observe = (span: Span, v: Value) => {
    if (span.file !== file || v.kind === 'error') return;
    const list = values.get(span.offset) ?? [];
    const d = describe(v);
    if (!list.includes(d) && list.length < 4) list.push(d);
    values.set(span.offset, list);
  };
  const compiled = compileSource(text, file, { observe });
  const diagnostics = compiled.diagnostics;
  // The file's own AST (without --set overrides), parsed once by compileSource.
  const program = compiled.program ?? null;
  const { defs, occurrences } = program ? resolve(program, text) : { defs: [], occurrences: [] };
  const a: DocumentAnalysis = { file, text, program, module: compiled.module, diagnostics, fusionNotes: [], defs, occurrences, values };
  if (options.fusionNotes !== false) a.fusionNotes = fusionNotesOf(a);
  return a;
}

/**
 * What fused (at the model's name: the IR has no single place for it) and what did not (where it
 * is), from the fused pipeline: the costlier half of an analysis, so an editor may send it later.
 */
export function fusionNotesOf(a: DocumentAnalysis): FusionNote[] {
  const m = a.module;
  if (!m?.entry) return [];
  try {
    const fused = optimize(m, { lowering: 'fused' });
    const entry = a.program?.decls.find((d) => d.kind === 'layer' && d.name === m.entry);
    return [
      ...fusedSummary(fused).map((line) => ({ span: entry && entry.kind === 'layer' ? entry.nameSpan : null, message: line })),
      ...unfusedPatterns(fused).map((n) => ({ span: n.span ?? null, message: `not fused: ${n.message}` })),
    ];
  } catch (e) {
    // Said, not swallowed: the fusion notes are missing and why (peerc check reports the same program).
    return [{ span: null, message: `no fusion notes: the optimizer stopped on this program (${e instanceof Error ? e.message : String(e)})` }];
  }
}

/** Resolves every name of the program to its definition, scope by scope. */
function resolve(program: Program, text: string): { defs: SymbolDef[]; occurrences: Occurrence[] } {
  const defs: SymbolDef[] = [];
  const occurrences: Occurrence[] = [];
  const globals = new Map<string, SymbolDef>();
  for (const d of program.decls) {
    if (d.kind === 'train') continue;
    let def: SymbolDef;
    if (d.kind === 'const') def = { name: d.name, kind: 'const', span: d.nameSpan, declSpan: d.span, detail: `const ${d.name} = ${slice(text, d.value.span)}`, doc: docAbove(text, d.span.offset) };
    else if (d.kind === 'param') def = { name: d.name, kind: d.role, span: d.nameSpan, declSpan: d.span, detail: slice(text, d.span), doc: docAbove(text, d.span.offset) };
    else def = layerDef(d, text, docAbove(text, d.span.offset));
    defs.push(def);
    if (!globals.has(d.name)) globals.set(d.name, def);
    occurrences.push({ span: d.nameSpan, def: globals.get(d.name)!, binds: true });
  }
  const global = (name: string): SymbolDef | undefined => globals.get(name) ?? preludeLayers().get(name) ?? BUILTIN_DEFS.get(name);

  const walk = (e: Expr, lookup: (name: string) => SymbolDef | undefined): void => {
    switch (e.kind) {
      case 'name': {
        const def = lookup(e.name);
        if (def) occurrences.push({ span: e.span, def, binds: false });
        return;
      }
      case 'unary':
        return walk(e.operand, lookup);
      case 'binary':
        walk(e.left, lookup);
        return walk(e.right, lookup);
      case 'call': {
        const def = lookup(e.callee);
        if (def && (def.kind === 'layer' || def.kind === 'model' || def.kind === 'builtin')) occurrences.push({ span: e.calleeSpan, def, binds: false });
        for (const a of e.args) walk(a.value, lookup);
        return;
      }
      case 'list':
        return e.items.forEach((i) => walk(i, lookup));
      case 'index':
        walk(e.target, lookup);
        for (const i of e.items) {
          if (i.kind === 'at') walk(i.index, lookup);
          else if (i.kind === 'slice') {
            if (i.start) walk(i.start, lookup);
            if (i.end) walk(i.end, lookup);
          }
        }
        return;
      default:
        return;
    }
  };

  for (const d of program.decls) {
    if (d.kind === 'const') walk(d.value, global);
    else if (d.kind === 'train') d.settings.forEach((s) => walk(s.value, global));
    else if (d.kind === 'param') {
      d.type.dims?.forEach((e) => walk(e, global));
      if (d.init) walk(d.init, global);
      d.attributes.forEach((a) => a.args.forEach((x) => walk(x.value, global)));
    } else {
      const locals = new Map<string, SymbolDef>();
      const lookup = (name: string) => locals.get(name) ?? global(name);
      // A signature's dims: a global const of that name, else a dim of this layer (bound by the call).
      const dims = (t: TypeExpr) => t.dims?.forEach((e) => {
        const names: Extract<Expr, { kind: 'name' }>[] = [];
        const collect = (x: Expr) => {
          if (x.kind === 'name') names.push(x);
          else if (x.kind === 'binary') (collect(x.left), collect(x.right));
          else if (x.kind === 'unary') collect(x.operand);
          else if (x.kind === 'call') x.args.forEach((a) => collect(a.value));
        };
        collect(e);
        for (const n of names) {
          const known = lookup(n.name);
          if (known) {
            occurrences.push({ span: n.span, def: known, binds: false });
            continue;
          }
          const def: SymbolDef = { name: n.name, kind: 'dim', span: n.span, detail: `dim ${n.name} (of ${d.name}, bound by each call)`, layer: d.name };
          locals.set(n.name, def);
          defs.push(def);
          occurrences.push({ span: n.span, def, binds: true });
        }
      });
      for (const p of d.params) {
        const nameSpan: Span = { ...p.span, length: p.name.length };
        const def: SymbolDef = { name: p.name, kind: 'input', span: nameSpan, detail: `${p.name}: ${typeText(text, p.type)}`, layer: d.name };
        locals.set(p.name, def);
        defs.push(def);
        occurrences.push({ span: nameSpan, def, binds: true });
        dims(p.type);
      }
      d.results.forEach(dims);
      for (const s of d.body) stmt(s, d.name, locals, lookup);
    }
  }

  function stmt(s: Stmt, layer: string, locals: Map<string, SymbolDef>, lookup: (name: string) => SymbolDef | undefined): void {
    if (s.kind === 'return') return s.values.forEach((v) => walk(v, lookup));
    walk(s.value, lookup);
    for (const t of s.targets) {
      // Rebinding a name (x = x + ...) is the same local: rename and references follow it.
      let def = locals.get(t.name);
      if (!def || def.kind === 'dim') {
        def = { name: t.name, kind: 'local', span: t.span, detail: `${t.name} = ${slice(text, s.value.span)}`, layer };
        locals.set(t.name, def);
        defs.push(def);
      }
      occurrences.push({ span: t.span, def, binds: true });
    }
  }
  return { defs, occurrences };
}

/** The occurrence whose name covers `offset` (the end of a name counts, as editors place the cursor). */
export function occurrenceAt(a: DocumentAnalysis, offset: number): Occurrence | undefined {
  return a.occurrences.find((o) => o.span.file === a.file && offset >= o.span.offset && offset <= o.span.offset + o.span.length);
}

/** Every occurrence of def in the document. */
export function occurrencesOf(a: DocumentAnalysis, def: SymbolDef): Occurrence[] {
  return a.occurrences.filter((o) => o.def === def || (def.kind === 'builtin' && o.def.kind === 'builtin' && o.def.name === def.name) || (def.span && o.def.span && o.def.span.file === def.span.file && o.def.span.offset === def.span.offset));
}
