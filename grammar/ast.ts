// The abstract syntax tree. Every node carries the span of source it came from.

export interface Span {
  file: string;
  offset: number; // 0-based character offset
  line: number; // 1-based
  col: number; // 1-based
  length: number; // characters, >= 1
}

export type Expr =
  | { kind: 'int'; value: number; span: Span }
  | { kind: 'float'; value: number; span: Span }
  | { kind: 'string'; value: string; span: Span }
  | { kind: 'name'; name: string; span: Span }
  | { kind: 'unary'; op: '-'; operand: Expr; span: Span }
  | { kind: 'binary'; op: '+' | '-' | '*' | '/' | '%' | '^'; left: Expr; right: Expr; span: Span }
  | { kind: 'call'; callee: string; calleeSpan: Span; args: Arg[]; span: Span }
  | { kind: 'list'; items: Expr[]; span: Span }
  | { kind: 'index'; target: Expr; items: IndexItem[]; span: Span };

export interface Arg {
  name?: string; // keyword argument
  value: Expr;
  span: Span;
}

export type IndexItem =
  | { kind: 'ellipsis'; span: Span }
  | { kind: 'newaxis'; span: Span }
  | { kind: 'slice'; start?: Expr; end?: Expr; span: Span }
  | { kind: 'at'; index: Expr; span: Span };

export interface TypeExpr {
  dtype: 'f32' | 'index' | 'int';
  dims: Expr[] | null; // null for the scalar `int`
  span: Span;
}

export interface Attribute {
  name: string;
  args: Arg[];
  span: Span;
}

export type Stmt =
  | { kind: 'assign'; targets: { name: string; span: Span }[]; value: Expr; span: Span }
  | { kind: 'return'; values: Expr[]; span: Span };

export type Decl =
  | { kind: 'const'; name: string; nameSpan: Span; value: Expr; span: Span }
  | {
      kind: 'param';
      role: 'param' | 'buffer';
      name: string;
      nameSpan: Span;
      type: TypeExpr;
      init?: Expr;
      attributes: Attribute[];
      span: Span;
    }
  | {
      kind: 'layer';
      isModel: boolean;
      name: string;
      nameSpan: Span;
      params: { name: string; type: TypeExpr; span: Span }[];
      results: TypeExpr[];
      body: Stmt[];
      span: Span;
    }
  | { kind: 'train'; settings: { name: string; value: Expr; span: Span }[]; span: Span };

export interface Program {
  file: string;
  decls: Decl[];
}
