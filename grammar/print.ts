// A compact S-expression form of the AST, for parser golden tests and debugging.
import type { Decl, Expr, IndexItem, Program, Stmt, TypeExpr } from './ast.js';

export function printExpr(e: Expr): string {
  switch (e.kind) {
    case 'int':
    case 'float':
      return String(e.value);
    case 'string':
      return JSON.stringify(e.value);
    case 'name':
      return e.name;
    case 'unary':
      return `(neg ${printExpr(e.operand)})`;
    case 'binary':
      return `(${e.op} ${printExpr(e.left)} ${printExpr(e.right)})`;
    case 'call':
      return `(${e.callee}${e.args.map((a) => ` ${a.name ? `${a.name}=` : ''}${printExpr(a.value)}`).join('')})`;
    case 'list':
      return `[${e.items.map(printExpr).join(' ')}]`;
    case 'index':
      return `(index ${printExpr(e.target)} ${e.items.map(printItem).join(' ')})`;
  }
}

function printItem(i: IndexItem): string {
  switch (i.kind) {
    case 'ellipsis':
      return '...';
    case 'newaxis':
      return 'None';
    case 'at':
      return printExpr(i.index);
    case 'slice':
      return `${i.start ? printExpr(i.start) : ''}:${i.end ? printExpr(i.end) : ''}`;
  }
}

function printType(t: TypeExpr): string {
  return t.dims === null ? 'int' : `${t.dtype}[${t.dims.map(printExpr).join(' ')}]`;
}

function printStmt(s: Stmt): string {
  return s.kind === 'return' ? `(return ${s.values.map(printExpr).join(' ')})` : `(= (${s.targets.map((t) => t.name).join(' ')}) ${printExpr(s.value)})`;
}

function printDecl(d: Decl): string {
  const at = (s: { line: number; col: number }) => `@${s.line}:${s.col}`;
  switch (d.kind) {
    case 'const':
      return `${at(d.span)} (const ${d.name} ${printExpr(d.value)})`;
    case 'param':
      return `${at(d.span)} (${d.role} ${d.name} ${printType(d.type)}${d.init ? ` ${printExpr(d.init)}` : ''}${d.attributes.map((a) => ` @${a.name}${a.args.length ? `(${a.args.map((x) => printExpr(x.value)).join(' ')})` : ''}`).join('')})`;
    case 'layer':
      return [
        `${at(d.span)} (${d.isModel ? 'model' : 'layer'} ${d.name} (${d.params.map((p) => `${p.name}: ${printType(p.type)}`).join(', ')}) -> (${d.results.map(printType).join(', ')})`,
        ...d.body.map((s) => `    ${printStmt(s)}`),
        ')',
      ].join('\n');
    case 'train':
      return `${at(d.span)} (train${d.settings.map((s) => ` ${s.name}=${printExpr(s.value)}`).join('')})`;
  }
}

export function printProgram(p: Program): string {
  return p.decls.map(printDecl).join('\n') + '\n';
}
