// The language server's features on any connection (stdio in `peerc lsp`, a worker's messages
// in the playground), sharing the checker with the CLI. Diagnostics with the CLI's codes and notes (fusion notes as information), hover with
// the shapes the checker inferred, definition/references/rename across consts, dims, parameters,
// layers and the prelude, document symbols, folding, completion and signature help, formatting
// (peerc fmt), semantic tokens, did-you-mean quick fixes and inlay hints with let-bound shapes.
// 'vscode-languageserver' resolves to its Node build in Node and, through the package's browser
// field, to its browser build in the playground's bundle.
import {
  CodeActionKind, CompletionItemKind, DiagnosticSeverity, DiagnosticTag, InlayHintKind,
  SemanticTokensBuilder, SymbolKind, TextDocuments, TextDocumentSyncKind, type CompletionItem, type Connection, type Diagnostic as LspDiagnostic,
  type DocumentSymbol, type Location, type Range,
} from 'vscode-languageserver';
import { TextDocument } from 'vscode-languageserver-textdocument';
import type { Span } from '../../grammar/ast.js';
import { PRELUDE_FILE, PRELUDE_SOURCE } from '../../src/frontend.js';
import { formatSource } from '../../src/format.js';
import { PEERC_VERSION } from '../cli/version.js';
import { analyze, builtinDefs, fusionNotesOf, occurrenceAt, occurrencesOf, preludeDefs, type DocumentAnalysis, type SymbolDef } from './analysis.js';

/** How long typing must pause before the fusion notes (the whole optimizer) are computed and sent. */
const FUSION_NOTES_DELAY_MS = 400;

const KEYWORDS = ['const', 'param', 'buffer', 'layer', 'model', 'train', 'return', 'int', 'f32', 'index', 'None'];
const ATTRIBUTES: [string, string][] = [['sparse', 'a table read by gathers: sparse row gradients, lazy optimizer updates'], ['lr', '@lr(m) or @lr(m, to=t, over=steps): a learning-rate multiplier'], ['no_decay', 'no weight decay for this parameter'], ['optim', '@optim(sgd|adam|adamw|adagrad, lr=, wd=, clip=, schedule=): an optimizer of its own']];
export const TOKEN_TYPES = ['keyword', 'variable', 'parameter', 'function', 'typeParameter', 'property', 'number', 'string', 'comment'];
export const TOKEN_MODIFIERS = ['readonly', 'defaultLibrary', 'declaration'];

export interface ServeOptions {
  /** Where go-to-definition sends the prelude's layers (the package's src/prelude.peer in Node). */
  preludeUri: string;
  /** The file name diagnostics and spans use for a document's URI. */
  fileOf: (uri: string) => string;
}

export function serve(connection: Connection, { preludeUri, fileOf }: ServeOptions): void {
  const documents = new TextDocuments(TextDocument);
  const analyses = new Map<string, { version: number; analysis: DocumentAnalysis }>();
  const prelude = TextDocument.create(preludeUri, 'peer', 0, PRELUDE_SOURCE);

  // Diagnostics and names per keystroke; the fusion notes (the optimizer's whole pipeline) follow
  // once typing pauses, in a second publish.
  const analysisOf = (doc: TextDocument): DocumentAnalysis => {
    const cached = analyses.get(doc.uri);
    if (cached && cached.version === doc.version) return cached.analysis;
    const analysis = analyze(doc.getText(), fileOf(doc.uri), { fusionNotes: false });
    analyses.set(doc.uri, { version: doc.version, analysis });
    return analysis;
  };
  const fusionTimers = new Map<string, ReturnType<typeof setTimeout>>();
  const laterFusionNotes = (doc: TextDocument) => {
    clearTimeout(fusionTimers.get(doc.uri));
    fusionTimers.set(doc.uri, setTimeout(() => {
      fusionTimers.delete(doc.uri);
      const current = documents.get(doc.uri);
      if (!current || current.version !== doc.version) return;
      const a = analysisOf(current);
      a.fusionNotes = fusionNotesOf(a);
      if (a.fusionNotes.length) publish(current, false);
    }, FUSION_NOTES_DELAY_MS));
  };
  const rangeIn = (doc: TextDocument, s: Span): Range => ({ start: doc.positionAt(s.offset), end: doc.positionAt(s.offset + s.length) });
  const location = (doc: TextDocument, s: Span): Location => (s.file === PRELUDE_FILE ? { uri: prelude.uri, range: rangeIn(prelude, s) } : { uri: doc.uri, range: rangeIn(doc, s) });
  const docFor = (uri: string) => documents.get(uri);

  connection.onInitialize(() => ({
    capabilities: {
      textDocumentSync: TextDocumentSyncKind.Incremental,
      hoverProvider: true,
      definitionProvider: true,
      referencesProvider: true,
      renameProvider: { prepareProvider: true },
      documentSymbolProvider: true,
      foldingRangeProvider: true,
      completionProvider: { triggerCharacters: ['@', '[', '(', ','] },
      signatureHelpProvider: { triggerCharacters: ['(', ','] },
      documentFormattingProvider: true,
      semanticTokensProvider: { legend: { tokenTypes: TOKEN_TYPES, tokenModifiers: TOKEN_MODIFIERS }, full: true },
      codeActionProvider: { codeActionKinds: [CodeActionKind.QuickFix] },
      inlayHintProvider: true,
    },
    serverInfo: { name: 'peerc', version: PEERC_VERSION },
  }));

  const publish = (doc: TextDocument, scheduleNotes = true) => {
    const a = analysisOf(doc);
    if (scheduleNotes) laterFusionNotes(doc);
    const here = (s: Span | null) => s !== null && s.file === a.file;
    const out: LspDiagnostic[] = a.diagnostics.map((d) => ({
      range: here(d.span) ? rangeIn(doc, d.span!) : { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } },
      severity: d.severity === 'error' ? DiagnosticSeverity.Error : DiagnosticSeverity.Warning,
      code: d.code,
      source: 'peerc',
      message: [d.message, ...(here(d.span) ? [] : d.span ? [`(at ${d.span.file}:${d.span.line}:${d.span.col})`] : []), ...d.notes.map((n) => `note: ${n}`)].join('\n'),
    }));
    for (const n of a.fusionNotes)
      out.push({ range: here(n.span) ? rangeIn(doc, n.span!) : { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } }, severity: DiagnosticSeverity.Information, source: 'peerc fusion', message: n.message, tags: [] as DiagnosticTag[] });
    void connection.sendDiagnostics({ uri: doc.uri, diagnostics: out });
  };
  documents.onDidChangeContent((e) => publish(e.document));
  documents.onDidClose((e) => {
    analyses.delete(e.document.uri);
    clearTimeout(fusionTimers.get(e.document.uri));
    void connection.sendDiagnostics({ uri: e.document.uri, diagnostics: [] });
  });

  const at = (uri: string, position: { line: number; character: number }) => {
    const doc = docFor(uri);
    if (!doc) return undefined;
    const a = analysisOf(doc);
    return { doc, a, offset: doc.offsetAt(position), occ: occurrenceAt(a, doc.offsetAt(position)) };
  };

  connection.onHover((p) => {
    const r = at(p.textDocument.uri, p.position);
    if (!r?.occ) return null;
    const { def } = r.occ;
    const shapes = r.a.values.get(r.occ.span.offset);
    const lines = ['```peer', def.detail, '```'];
    if (shapes?.length && def.kind !== 'layer' && def.kind !== 'model' && def.kind !== 'builtin') lines.push(`${shapes.length > 1 ? 'values (one per call)' : 'value'}: \`${shapes.join('`, `')}\``);
    if (def.doc) lines.push('', def.doc);
    if (def.span?.file === PRELUDE_FILE) lines.push('', '_from the prelude_');
    return { contents: { kind: 'markdown', value: lines.join('\n') }, range: rangeIn(r.doc, r.occ.span) };
  });

  connection.onDefinition((p) => {
    const r = at(p.textDocument.uri, p.position);
    if (!r?.occ?.def.span) return null;
    return location(r.doc, r.occ.def.span);
  });

  connection.onReferences((p) => {
    const r = at(p.textDocument.uri, p.position);
    if (!r?.occ) return [];
    return occurrencesOf(r.a, r.occ.def).filter((o) => p.context.includeDeclaration || !o.binds || o.def.kind === 'local').map((o) => location(r.doc, o.span));
  });

  const renamable = (def: SymbolDef) => def.kind !== 'builtin' && def.span?.file !== PRELUDE_FILE;
  connection.onPrepareRename((p) => {
    const r = at(p.textDocument.uri, p.position);
    if (!r?.occ || !renamable(r.occ.def)) return null;
    return rangeIn(r.doc, r.occ.span);
  });
  connection.onRenameRequest((p) => {
    const r = at(p.textDocument.uri, p.position);
    if (!r?.occ || !renamable(r.occ.def)) return null;
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(p.newName) || KEYWORDS.includes(p.newName)) throw new Error(`'${p.newName}' is not a name (letters, digits and _, not a keyword)`);
    return { changes: { [r.doc.uri]: occurrencesOf(r.a, r.occ.def).map((o) => ({ range: rangeIn(r.doc, o.span), newText: p.newName })) } };
  });

  connection.onDocumentSymbol((p) => {
    const doc = docFor(p.textDocument.uri);
    if (!doc) return [];
    const a = analysisOf(doc);
    const kindOf: Record<string, SymbolKind> = { const: SymbolKind.Constant, param: SymbolKind.Field, buffer: SymbolKind.Field, layer: SymbolKind.Function, model: SymbolKind.Module, input: SymbolKind.Variable, dim: SymbolKind.TypeParameter, local: SymbolKind.Variable };
    const top = a.defs.filter((d) => !d.layer && d.declSpan);
    return top.map((d): DocumentSymbol => ({
      name: d.name, detail: d.detail, kind: kindOf[d.kind] ?? SymbolKind.Variable,
      range: rangeIn(doc, d.declSpan!), selectionRange: rangeIn(doc, d.span!),
      children: a.defs.filter((c) => c.layer === d.name && c.span).map((c) => ({ name: c.name, detail: c.detail, kind: kindOf[c.kind] ?? SymbolKind.Variable, range: rangeIn(doc, c.span!), selectionRange: rangeIn(doc, c.span!) })),
    }));
  });

  connection.onFoldingRanges((p) => {
    const doc = docFor(p.textDocument.uri);
    if (!doc?.getText()) return [];
    const a = analysisOf(doc);
    const ranges = (a.program?.decls ?? []).filter((d) => d.kind === 'layer' || d.kind === 'train').map((d) => ({ startLine: d.span.line - 1, endLine: doc.positionAt(d.span.offset + d.span.length).line }));
    // Runs of comment lines fold too.
    const lines = doc.getText().split('\n');
    for (let i = 0; i < lines.length; i++) {
      if (!/^\s*#/.test(lines[i]!)) continue;
      let j = i;
      while (j + 1 < lines.length && /^\s*#/.test(lines[j + 1]!)) j++;
      if (j > i) ranges.push({ startLine: i, endLine: j, kind: 'comment' } as never);
      i = j;
    }
    return ranges.filter((r) => r.endLine > r.startLine);
  });

  connection.onCompletion((p) => {
    const r = at(p.textDocument.uri, p.position);
    if (!r) return [];
    const before = r.doc.getText().slice(Math.max(0, r.offset - 200), r.offset);
    if (/@[A-Za-z_]*$/.test(before)) return ATTRIBUTES.map(([label, doc]): CompletionItem => ({ label, kind: CompletionItemKind.Property, detail: `@${label}`, documentation: doc }));
    const items: CompletionItem[] = [];
    const seen = new Set<string>();
    const add = (label: string, kind: CompletionItemKind, detail?: string, documentation?: string) => {
      if (seen.has(label)) return;
      seen.add(label);
      items.push({ label, kind, detail, documentation });
    };
    // Names of the enclosing layer (bound before the cursor), then the file's, the prelude's, builtins, keywords.
    const layer = r.a.program?.decls.find((d) => d.kind === 'layer' && r.offset >= d.span.offset && r.offset <= d.span.offset + d.span.length);
    const inShape = /\[[^\]\n]*$/.test(before) && !/=\s*[^\n]*\[[^\]\n]*$/.test(before.split('\n').pop() ?? '');
    for (const d of r.a.defs) {
      if (d.layer && (!layer || d.layer !== (layer as { name: string }).name || (d.span && d.span.offset >= r.offset))) continue;
      if (inShape && !['dim', 'const'].includes(d.kind)) continue;
      add(d.name, d.kind === 'layer' || d.kind === 'model' ? CompletionItemKind.Function : d.kind === 'const' ? CompletionItemKind.Constant : d.kind === 'dim' ? CompletionItemKind.TypeParameter : CompletionItemKind.Variable, d.detail, d.doc);
    }
    if (!inShape) {
      for (const d of preludeDefs().values()) add(d.name, CompletionItemKind.Function, d.detail, d.doc);
      for (const d of builtinDefs().values()) add(d.name, CompletionItemKind.Function, d.detail, d.doc);
      for (const k of KEYWORDS) add(k, CompletionItemKind.Keyword);
    }
    return items;
  });

  connection.onSignatureHelp((p) => {
    const r = at(p.textDocument.uri, p.position);
    if (!r) return null;
    // The innermost unclosed call before the cursor, and which argument the cursor is in.
    const text = r.doc.getText().slice(0, r.offset);
    let depth = 0, commas = 0;
    for (let i = text.length - 1; i >= 0; i--) {
      const c = text[i];
      if (c === ')' || c === ']') depth++;
      else if (c === '[') depth--;
      else if (c === ',' && depth === 0) commas++;
      else if (c === '(') {
        if (depth > 0) {
          depth--;
          continue;
        }
        const name = /([A-Za-z_][A-Za-z0-9_]*)\s*$/.exec(text.slice(0, i))?.[1];
        const def = name ? (r.a.defs.find((d) => d.name === name && (d.kind === 'layer' || d.kind === 'model')) ?? preludeDefs().get(name) ?? builtinDefs().get(name)) : undefined;
        if (!def) return null;
        const params = /\((.*)\)/.exec(def.detail)?.[1]?.split(/,\s*(?![^[]*\])/).filter(Boolean) ?? [];
        return { signatures: [{ label: def.detail, documentation: def.doc, parameters: params.map((label) => ({ label })) }], activeSignature: 0, activeParameter: Math.min(commas, Math.max(0, params.length - 1)) };
      }
    }
    return null;
  });

  connection.onDocumentFormatting((p) => {
    const doc = docFor(p.textDocument.uri);
    if (!doc) return [];
    const r = formatSource(doc.getText(), fileOf(doc.uri));
    if ('diagnostics' in r || r.text === doc.getText()) return [];
    return [{ range: { start: { line: 0, character: 0 }, end: doc.positionAt(doc.getText().length) }, newText: r.text }];
  });

  connection.languages.semanticTokens.on((p) => {
    const doc = docFor(p.textDocument.uri);
    const builder = new SemanticTokensBuilder();
    if (!doc) return builder.build();
    const a = analysisOf(doc);
    const text = doc.getText();
    const tokens: { offset: number; length: number; type: number; mods: number }[] = [];
    const typeOf: Record<string, [string, string[]]> = { const: ['variable', ['readonly']], param: ['property', []], buffer: ['property', ['readonly']], layer: ['function', []], model: ['function', []], input: ['parameter', []], dim: ['typeParameter', []], local: ['variable', []], builtin: ['function', ['defaultLibrary']] };
    for (const o of a.occurrences) {
      if (o.span.file !== a.file) continue;
      const [t, m] = typeOf[o.def.kind]!;
      const mods = [...m, ...(o.binds ? ['declaration'] : [])].reduce((acc, x) => acc | (1 << TOKEN_MODIFIERS.indexOf(x)), 0);
      tokens.push({ offset: o.span.offset, length: o.span.length, type: TOKEN_TYPES.indexOf(t), mods });
    }
    const lexical = /#[^\n]*|"[^"\n]*"|\b\d+(?:\.\d*)?(?:[eE][-+]?\d+)?\b|\b[A-Za-z_][A-Za-z0-9_]*\b/g;
    for (const m of text.matchAll(lexical)) {
      const w = m[0];
      const type = w.startsWith('#') ? 'comment' : w.startsWith('"') ? 'string' : /^\d/.test(w) ? 'number' : KEYWORDS.includes(w) ? 'keyword' : undefined;
      if (type) tokens.push({ offset: m.index!, length: w.length, type: TOKEN_TYPES.indexOf(type), mods: 0 });
    }
    tokens.sort((x, y) => x.offset - y.offset);
    for (const t of tokens) {
      // Tokens do not span lines here (names, literals, comments).
      const pos = doc.positionAt(t.offset);
      builder.push(pos.line, pos.character, t.length, t.type, t.mods);
    }
    return builder.build();
  });

  connection.onCodeAction((p) => {
    const doc = docFor(p.textDocument.uri);
    if (!doc) return [];
    return p.context.diagnostics.flatMap((d) => {
      const near = /did you mean '([^']+)'\?/.exec(d.message)?.[1];
      if (!near) return [];
      return [{ title: `Change to '${near}'`, kind: CodeActionKind.QuickFix, diagnostics: [d], isPreferred: true, edit: { changes: { [doc.uri]: [{ range: d.range, newText: near }] } } }];
    });
  });

  connection.languages.inlayHint.on((p) => {
    const doc = docFor(p.textDocument.uri);
    if (!doc) return [];
    const a = analysisOf(doc);
    const from = doc.offsetAt(p.range.start), to = doc.offsetAt(p.range.end);
    return a.occurrences
      .filter((o) => o.binds && o.def.kind === 'local' && o.span.file === a.file && o.span.offset >= from && o.span.offset <= to && a.values.get(o.span.offset)?.length)
      .map((o) => ({ position: doc.positionAt(o.span.offset + o.span.length), label: `: ${a.values.get(o.span.offset)!.join(' | ')}`, kind: InlayHintKind.Type, paddingLeft: false }));
  });

  documents.listen(connection);
  connection.listen();
}
