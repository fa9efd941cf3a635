// Source text -> AST plus syntax problems. Problems are plain records here; src/ turns
// them into coded diagnostics.
import { editDistance } from './edit-distance.js';
import type { IToken } from 'chevrotain';
import type { Program, Span } from './ast.js';
import { MAX_EXPR_DEPTH, peerParser } from './parser.js';
import * as T from './tokens.js';

export type SyntaxProblem =
  | { kind: 'char'; text: string; span: Span }
  | { kind: 'syntax'; expected: string; found: string; span: Span }
  | { kind: 'deep'; limit: number; span: Span }
  | { kind: 'literal'; text: string; span: Span }
  | { kind: 'string'; span: Span }
  | { kind: 'tokens'; count: number; limit: number; span: Span };

export const MAX_NESTING = 64;
/** Programs are small; a million tokens is far beyond any model and still parses in seconds. */
export const MAX_TOKENS = 1_000_000;

export interface ParseResult {
  program: Program | null; // null when there were syntax problems
  problems: SyntaxProblem[];
}

function tokenSpan(file: string, t: IToken): Span {
  return {
    file, offset: t.startOffset, line: t.startLine ?? 1, col: t.startColumn ?? 1,
    length: Math.max(1, (t.endOffset ?? t.startOffset) - t.startOffset + 1),
  };
}

function describe(t: IToken): string {
  if (t.tokenType.name === 'EOF') return 'the end of the file';
  const text = t.image.length > 20 ? t.image.slice(0, 20) + '…' : t.image;
  return `'${text}'`;
}

export function parseSource(text: string, file: string): ParseResult {
  const problems: SyntaxProblem[] = [];
  const cut = tokenLimitOffset(text);
  if (cut !== undefined) {
    const before = text.slice(0, cut);
    const line = before.split('\n').length;
    const span: Span = { file, offset: cut, line, col: cut - before.lastIndexOf('\n'), length: 1 };
    return { program: null, problems: [{ kind: 'tokens', count: approximateTokens(text), limit: MAX_TOKENS, span }] };
  }
  const lexed = T.peerLexer.tokenize(text);
  for (const e of lexed.errors) {
    const span: Span = { file, offset: e.offset, line: e.line ?? 1, col: e.column ?? 1, length: Math.max(1, e.length) };
    const ch = text.slice(e.offset, e.offset + 1);
    if (ch === '"') problems.push({ kind: 'string', span: { ...span, length: 1 } });
    else problems.push({ kind: 'char', text: JSON.stringify(text.slice(e.offset, e.offset + Math.min(e.length, 10))), span });
  }
  const tokens = lexed.tokens;
  if (tokens.length > MAX_TOKENS) {
    problems.push({ kind: 'tokens', count: tokens.length, limit: MAX_TOKENS, span: tokenSpan(file, tokens[MAX_TOKENS]!) });
    return { program: null, problems };
  }
  for (const t of tokens) {
    if (t.tokenType === T.IntegerLiteral && !Number.isSafeInteger(Number(t.image))) {
      problems.push({ kind: 'literal', text: t.image.length > 24 ? t.image.slice(0, 24) + '…' : t.image, span: tokenSpan(file, t) });
    } else if (t.tokenType === T.FloatLiteral && !Number.isFinite(Number(t.image))) {
      problems.push({ kind: 'literal', text: t.image, span: tokenSpan(file, t) });
    }
  }
  // Deep nesting would overflow the recursive-descent parser's stack; refuse it up front.
  const deep = tooDeep(tokens);
  if (deep) {
    problems.push({ kind: 'deep', limit: MAX_NESTING, span: tokenSpan(file, deep) });
    return { program: null, problems };
  }
  peerParser.file = file;
  peerParser.tooDeep = [];
  peerParser.depth.clear();
  peerParser.input = tokens;
  let program: Program | null = null;
  try {
    program = peerParser.program();
  } catch (e) {
    if (!(e instanceof RangeError)) throw e;
    problems.push({ kind: 'deep', limit: MAX_NESTING, span: { file, offset: 0, line: 1, col: 1, length: 1 } });
  }
  const lexicalLines = new Set(problems.map((p) => `${p.span.line}`));
  for (const e of peerParser.errors) {
    const t = e.token;
    // A bad character or unclosed string already explains what goes wrong on its line.
    if (lexicalLines.has(`${t.startLine}`)) continue;
    // At the top level the parser can only say "EOF"; a newcomer needs to hear what may start there.
    const expected = e.message === 'EOF' ? 'a declaration (const, param, buffer, layer, model, train) or the end of the file' : e.message;
    const before = (e as { previousToken?: { image: string; tokenType: { name: string }; startLine?: number } }).previousToken;
    const span = t.tokenType.name === 'EOF' ? endSpan(file, text) : tokenSpan(file, t);
    problems.push({ kind: 'syntax', expected, found: describe(t) + (keywordHint(t.image, t.tokenType.name) || (before && before.startLine === t.startLine ? keywordHint(before.image, before.tokenType.name).replace(' (did', ` after '${before.image}' (did`) : '')), span });
  }
  for (const s of peerParser.tooDeep) problems.push({ kind: 'deep', limit: MAX_EXPR_DEPTH, span: s });
  peerParser.depth.clear();
  peerParser.input = [];
  return { program: problems.length ? null : program, problems };
}

function endSpan(file: string, text: string): Span {
  const lines = text.split('\n');
  const last = lines[lines.length - 1] ?? '';
  return { file, offset: text.length, line: lines.length, col: last.length + 1, length: 1 };
}

// Lexing costs memory per token, so huge inputs are measured first with a cheap scan that
// counts each run of name/number characters and each other visible character (comments skipped).
function scanTokens(text: string, stopAt: number): { count: number; offset?: number } {
  let count = 0;
  let inWord = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 35 /* # */) {
      const nl = text.indexOf('\n', i);
      i = nl < 0 ? text.length : nl;
      inWord = false;
      continue;
    }
    const word = (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95 || c === 46;
    const space = c === 32 || c === 9 || c === 10 || c === 13;
    if (word ? !inWord : !space) {
      count++;
      if (count > stopAt) return { count, offset: i };
    }
    inWord = word;
  }
  return { count };
}

function tokenLimitOffset(text: string): number | undefined {
  if (text.length < MAX_TOKENS) return undefined;
  return scanTokens(text, MAX_TOKENS).offset;
}

function approximateTokens(text: string): number {
  return scanTokens(text, Infinity).count;
}

function tooDeep(tokens: IToken[]): IToken | undefined {
  let depth = 0;
  let minusRun = 0;
  let carets = 0;
  for (const t of tokens) {
    const ty = t.tokenType;
    if (ty === T.LParen || ty === T.LBracket || ty === T.LBrace) depth++;
    else if (ty === T.RParen || ty === T.RBracket || ty === T.RBrace) depth = Math.max(0, depth - 1);
    minusRun = ty === T.Minus ? minusRun + 1 : 0;
    if (ty === T.Caret) carets++;
    else if (ty === T.Equals || ty === T.Comma || ty === T.LBrace || ty === T.RBrace) carets = 0;
    if (depth > MAX_NESTING || minusRun > MAX_NESTING || carets > MAX_NESTING) return t;
  }
  return undefined;
}

const KEYWORDS = ['const', 'param', 'buffer', 'layer', 'model', 'train', 'return'];

/** A misspelt keyword (`paramm`, `layr`) is a name where a statement should start: say which keyword. */
function keywordHint(image: string, token: string): string {
  if (token !== 'Identifier') return '';
  const near = KEYWORDS.find((k) => editDistance(image.toLowerCase(), k) <= (k.length > 4 ? 2 : 1));
  return near ? ` (did you mean the keyword '${near}'?)` : '';
}
