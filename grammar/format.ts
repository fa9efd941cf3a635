// `peerc fmt`: one canonical layout for .peer source, from the AST (so any spelling of the same
// program formats the same), keeping every comment and the blank lines that separate groups.
// Rules: 2-space bodies; one declaration or statement per line; spaces around binary operators
// except `^`, and except `* / %` inside shapes, index brackets, list literals and parameter
// initializers (`[h*dk]`, `q[..., 0:dk/2]`, `normal(0, 1/sqrt(d))`), where the expression is a
// size; parentheses only where precedence needs them; literals as written; trailing comments of
// consecutive lines aligned; a layer header longer than the line wrapped after commas under its
// '('. Idempotent: formatting formatted text changes nothing (tested on every example).
import type { Arg, Attribute, Decl, Expr, IndexItem, Program, Stmt, TypeExpr } from './ast.js';

const WIDTH = 100;

interface SourceComment {
  text: string;
  offset: number;
  line: number;
  /** Nothing but whitespace before it on its line. */
  ownLine: boolean;
}

/** Every `#` comment of the source (outside string literals), in order. */
export function sourceComments(text: string): SourceComment[] {
  const out: SourceComment[] = [];
  let line = 1, lineStart = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '\n') {
      line++;
      lineStart = i + 1;
    } else if (c === '"') {
      const end = text.indexOf('"', i + 1);
      const nl = text.indexOf('\n', i + 1);
      if (end < 0 || (nl >= 0 && nl < end)) continue; // an unterminated string: the lexer reports it
      i = end;
    } else if (c === '#') {
      let end = text.indexOf('\n', i);
      if (end < 0) end = text.length;
      out.push({ text: text.slice(i, end).trimEnd(), offset: i, line, ownLine: text.slice(lineStart, i).trim() === '' });
      i = end - 1;
    }
  }
  return out;
}

// Precedence, loosest first: + - < * / % < unary - < ^ < postfix and primaries.
const PREC: Record<string, number> = { '+': 1, '-': 1, '*': 2, '/': 2, '%': 2 };
const precOf = (e: Expr): number => (e.kind === 'binary' ? (e.op === '^' ? 4 : PREC[e.op]!) : e.kind === 'unary' ? 3 : 5);

class ExprPrinter {
  constructor(private readonly source: string) {}

  /** `dense`: a size (shape, index, list, initializer): `* / %` without spaces. */
  expr(e: Expr, dense = false): string {
    switch (e.kind) {
      case 'int':
      case 'float':
      case 'string':
        return this.source.slice(e.span.offset, e.span.offset + e.span.length);
      case 'name':
        return e.name;
      case 'unary': {
        const inner = this.expr(e.operand, dense);
        return precOf(e.operand) < 4 ? `-(${inner})` : `-${inner}`;
      }
      case 'binary': {
        const p = precOf(e);
        if (e.op === '^') {
          // Right-associative, tighter than unary minus: (a^b)^c and (-a)^b keep their parentheses.
          const l = this.expr(e.left, dense), r = this.expr(e.right, dense);
          return `${precOf(e.left) <= 4 ? `(${l})` : l}^${precOf(e.right) < 3 ? `(${r})` : r}`;
        }
        const l = this.expr(e.left, dense), r = this.expr(e.right, dense);
        const left = precOf(e.left) < p ? `(${l})` : l;
        const right = precOf(e.right) <= p ? `(${r})` : r;
        return dense && p === 2 ? `${left}${e.op}${right}` : `${left} ${e.op} ${right}`;
      }
      case 'call':
        return `${e.callee}(${this.args(e.args, dense)})`;
      case 'list':
        return `[${e.items.map((i) => this.expr(i, true)).join(', ')}]`;
      case 'index': {
        const t = this.expr(e.target, dense);
        return `${precOf(e.target) < 5 ? `(${t})` : t}[${e.items.map((i) => this.item(i)).join(', ')}]`;
      }
    }
  }

  args(args: Arg[], dense: boolean): string {
    return args.map((a) => `${a.name ? `${a.name}=` : ''}${this.expr(a.value, dense)}`).join(', ');
  }

  item(i: IndexItem): string {
    switch (i.kind) {
      case 'ellipsis':
        return '...';
      case 'newaxis':
        return 'None';
      case 'at':
        return this.expr(i.index, true);
      case 'slice':
        return `${i.start ? this.expr(i.start, true) : ''}:${i.end ? this.expr(i.end, true) : ''}`;
    }
  }

  type(t: TypeExpr): string {
    if (t.dims === null) return 'int';
    return `${t.dtype === 'index' ? 'index' : ''}[${t.dims.map((d) => this.expr(d, true)).join(', ')}]`;
  }

  attribute(a: Attribute): string {
    return `@${a.name}${a.args.length ? `(${this.args(a.args, true)})` : ''}`;
  }
}

/** One output line: its code (indented) and the comment that trails it. */
interface Line {
  code: string;
  trailing?: string;
}

/** A unit that comments attach to: a declaration, a statement, a train setting. */
interface Item {
  startOffset: number;
  /** Where its first line ends in the source (a layer's '{'): a comment after it on that line trails it. */
  endOffset: number;
  /** Where it ends in the source, when later than endOffset (a layer's '}'). */
  spanEnd?: number;
  /** Its lines; `trailingAt` is the line a comment after endOffset trails (default the last). */
  render: (p: ExprPrinter) => { lines: Line[]; trailingAt?: number };
}

interface Scope {
  source: string;
  comments: SourceComment[];
  used: Set<SourceComment>;
  lineOf: (offset: number) => number;
  out: Line[];
  emit: (items: Item[], indent: string, from: number, to: number) => void;
}

export function formatProgram(program: Program, source: string): string {
  const p = new ExprPrinter(source);
  const comments = sourceComments(source);
  const lineOf = lineIndex(source);
  const used = new Set<SourceComment>();
  const out: Line[] = [];
  const blankBetween = (from: number, to: number) => from < to && /\n[ \t]*\n/.test(stripComments(source.slice(from, to)));
  const unusedIn = (from: number, to: number) => comments.filter((c) => !used.has(c) && c.offset >= from && c.offset < to);

  /** Emits the items of one scope at `indent`, with the comments between `from` and `to`. */
  const emit = (items: Item[], indent: string, from: number, to: number) => {
    let cursor = from;
    items.forEach((item, n) => {
      const leading = unusedIn(cursor, item.startOffset);
      if (n > 0 && blankBetween(cursor, leading[0]?.offset ?? item.startOffset)) out.push({ code: '' });
      leading.forEach((c, i) => {
        if (i > 0 && blankBetween(leading[i - 1]!.offset + leading[i - 1]!.text.length, c.offset)) out.push({ code: '' });
        out.push({ code: indent + c.text });
        used.add(c);
      });
      if (leading.length && blankBetween(leading.at(-1)!.offset + leading.at(-1)!.text.length, item.startOffset)) out.push({ code: '' });
      // Comments inside an item laid out anew (a wrapped header) go before it: none is dropped.
      for (const c of unusedIn(item.startOffset + 1, item.endOffset)) {
        out.push({ code: indent + c.text });
        used.add(c);
      }
      const endLine = lineOf(item.endOffset - 1);
      // A comment after the item on its last line trails it, unless another item starts first.
      const next = items[n + 1]?.startOffset ?? to;
      const after = comments.find((c) => !used.has(c) && !c.ownLine && c.offset >= item.endOffset && c.offset < next && lineOf(c.offset) === endLine);
      if (after) used.add(after);
      const { lines, trailingAt } = item.render(p);
      const shifted = lines.map((l) => ({ ...l, code: l.code === '' ? '' : indent + l.code }));
      if (after) shifted[trailingAt ?? shifted.length - 1]!.trailing = after.text;
      out.push(...shifted);
      // A layer or a multi-line train block ends after its first line: go on from its end.
      cursor = Math.max(item.spanEnd ?? item.endOffset, after ? after.offset + after.text.length : 0);
    });
    const rest = unusedIn(cursor, to);
    rest.forEach((c, i) => {
      const prev = i === 0 ? cursor : rest[i - 1]!.offset + rest[i - 1]!.text.length;
      if ((items.length > 0 || i > 0) && blankBetween(prev, c.offset)) out.push({ code: '' });
      out.push({ code: indent + c.text });
      used.add(c);
    });
  };

  const scope: Scope = { source, comments, used, lineOf, out, emit };
  emit(program.decls.map((d) => declItem(d, scope)), '', 0, source.length);
  const lost = comments.filter((c) => !used.has(c));
  if (lost.length) throw new Error(`peerc fmt would drop the comment at line ${lost[0]!.line}: ${lost[0]!.text}`);
  return render(out);
}

function lineIndex(source: string): (offset: number) => number {
  const starts = [0];
  for (let i = 0; i < source.length; i++) if (source[i] === '\n') starts.push(i + 1);
  return (offset) => {
    let lo = 0, hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (starts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo + 1;
  };
}

function stripComments(s: string): string {
  return s.replace(/#[^\n]*/g, '');
}

const end = (span: { offset: number; length: number }) => span.offset + span.length;

/** Renders a nested scope (a layer body, a train block) into lines of its own. */
function nested(scope: Scope, items: Item[], from: number, to: number): Line[] {
  const start = scope.out.length;
  scope.emit(items, '  ', from, to);
  return scope.out.splice(start);
}

/** The closing '}' line, with the comment that trails it in the source. */
function closing(scope: Scope, close: number): Line {
  const line = scope.lineOf(close);
  const after = scope.comments.find((c) => !scope.used.has(c) && c.offset > close && scope.lineOf(c.offset) === line);
  if (after) scope.used.add(after);
  return { code: '}', trailing: after?.text };
}

function declItem(d: Decl, scope: Scope): Item {
  const { source } = scope;
  switch (d.kind) {
    case 'const':
      return { startOffset: d.span.offset, endOffset: end(d.span), render: (p) => ({ lines: [{ code: `const ${d.name} = ${p.expr(d.value, true)}` }] }) };
    case 'param':
      return {
        startOffset: d.span.offset,
        endOffset: end(d.span),
        render: (p) => ({ lines: [{ code: `${d.role} ${d.name}: ${p.type(d.type)}${d.init ? ` = ${p.expr(d.init, true)}` : ''}${d.attributes.map((a) => ` ${p.attribute(a)}`).join('')}` }] }),
      };
    case 'train': {
      const open = source.indexOf('{', d.span.offset);
      const close = end(d.span) - 1;
      const multi = scope.comments.some((c) => c.offset > open && c.offset < close);
      const setting = (s: (typeof d.settings)[number], p: ExprPrinter) => `${s.name} = ${p.expr(s.value)}`;
      return {
        startOffset: d.span.offset,
        endOffset: multi ? open + 1 : end(d.span),
        spanEnd: end(d.span),
        render: (p) => {
          const one = d.settings.length ? `train { ${d.settings.map((s) => setting(s, p)).join('; ')} }` : 'train { }';
          if (!multi && one.length <= WIDTH) return { lines: [{ code: one }] };
          // One setting per line: the settings are a scope, so their comments stay with them.
          const items: Item[] = d.settings.map((s) => ({ startOffset: s.span.offset, endOffset: end(s.value.span), render: (q) => ({ lines: [{ code: setting(s, q) }] }) }));
          return { lines: [{ code: 'train {' }, ...nested(scope, items, open + 1, close), closing(scope, close)], trailingAt: 0 };
        },
      };
    }
    case 'layer': {
      const close = end(d.span) - 1;
      // The body's '{': after the result types (the header has no other brace).
      const open = source.indexOf('{', d.nameSpan.offset);
      return {
        startOffset: d.span.offset,
        endOffset: open + 1,
        spanEnd: end(d.span),
        render: (p) => {
          const header = headerLines(d, p).map((code) => ({ code }));
          const body = nested(scope, d.body.map((s) => stmtItem(s)), open + 1, close);
          return { lines: [...header, ...body, closing(scope, close)], trailingAt: header.length - 1 };
        },
      };
    }
  }
}

function headerLines(d: Extract<Decl, { kind: 'layer' }>, p: ExprPrinter): string[] {
  const head = `${d.isModel ? 'model' : 'layer'} ${d.name}(`;
  const params = d.params.map((q) => `${q.name}: ${p.type(q.type)}`);
  const results = d.results.length === 1 ? p.type(d.results[0]!) : `(${d.results.map((t) => p.type(t)).join(', ')})`;
  const tail = `) -> ${results} {`;
  const one = head + params.join(', ') + tail;
  if (one.length <= WIDTH) return [one];
  // Fill lines after commas, continuation lines aligned under the first parameter.
  const pad = ' '.repeat(head.length);
  const lines: string[] = [];
  let cur = head;
  params.forEach((q, i) => {
    const piece = q + (i < params.length - 1 ? ',' : '');
    if (cur.length > pad.length && cur.length + 1 + piece.length > WIDTH) {
      lines.push(cur.trimEnd());
      cur = pad;
    }
    cur += (cur.length > pad.length && !cur.endsWith('(') ? ' ' : '') + piece;
  });
  lines.push(cur + tail);
  return lines;
}

function stmtItem(s: Stmt): Item {
  return {
    startOffset: s.span.offset,
    endOffset: end(s.span),
    render: (p) => {
      if (s.kind === 'return') return { lines: [{ code: `return ${s.values.map((v) => p.expr(v)).join(', ')}` }] };
      const targets = s.targets.length === 1 ? s.targets[0]!.name : `(${s.targets.map((t) => t.name).join(', ')})`;
      return { lines: [{ code: `${targets} = ${p.expr(s.value)}` }] };
    },
  };
}

/** Lines to text: trailing comments of consecutive commented lines aligned, one newline at the end. */
function render(lines: Line[]): string {
  const text: string[] = [];
  for (let i = 0; i < lines.length; ) {
    if (lines[i]!.trailing === undefined) {
      text.push(lines[i]!.code.trimEnd());
      i++;
      continue;
    }
    let j = i;
    while (j < lines.length && lines[j]!.trailing !== undefined) j++;
    const col = Math.max(...lines.slice(i, j).map((l) => l.code.trimEnd().length)) + 2;
    for (; i < j; i++) text.push(lines[i]!.code.trimEnd().padEnd(col) + lines[i]!.trailing);
  }
  while (text.length && text[0] === '') text.shift();
  while (text.length && text.at(-1) === '') text.pop();
  return text.length ? text.join('\n') + '\n' : '';
}
