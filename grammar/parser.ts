// The .peer parser: chevrotain with embedded actions that build the AST directly.
// Error recovery is on, so one run reports several syntax errors; the AST of a program
// with syntax errors is never checked.
import { EmbeddedActionsParser, tokenLabel, type IParserErrorMessageProvider, type IToken, type TokenType } from 'chevrotain';
import * as T from './tokens.js';
import type { Arg, Attribute, Decl, Expr, IndexItem, Program, Span, Stmt, TypeExpr } from './ast.js';

export const MAX_EXPR_DEPTH = 256;

// Error messages carry only "what was expected"; grammar/parse.ts adds what was found.
function describeExpected(paths: TokenType[][]): string {
  const firsts = [...new Set(paths.map((p) => (p[0] ? tokenLabel(p[0]) : '')).filter(Boolean))];
  const exprStart = ['a name', 'a number', 'an integer'];
  if (exprStart.every((e) => firsts.includes(e))) {
    const rest = firsts.filter((u) => !["'-'", "'('", "'['", 'a string', ...exprStart].includes(u));
    return ['an expression', ...rest].join(' or ');
  }
  if (firsts.length === 0) return 'something else';
  return firsts.length > 6 ? `one of ${firsts.join(', ')}` : firsts.join(' or ');
}

const expectedOnly: IParserErrorMessageProvider = {
  buildMismatchTokenMessage: ({ expected }) => tokenLabel(expected),
  buildNotAllInputParsedMessage: () => 'a declaration (const, param, buffer, layer, model or train)',
  buildNoViableAltMessage: ({ expectedPathsPerAlt }) => describeExpected(expectedPathsPerAlt.flat()),
  buildEarlyExitMessage: ({ expectedIterationPaths }) => describeExpected(expectedIterationPaths),
};

export class PeerParser extends EmbeddedActionsParser {
  file = '<input>';
  /** Nodes whose nesting depth exceeds MAX_EXPR_DEPTH, reported by the caller. */
  tooDeep: Span[] = [];
  // A plain Map (cleared per parse): WeakMaps cost the garbage collector dearly on big inputs.
  depth = new Map<Expr, number>();

  constructor() {
    super(T.allTokens, { recoveryEnabled: true, maxLookahead: 3, errorMessageProvider: expectedOnly });
    this.performSelfAnalysis();
  }

  /**
   * Runs an embedded action. After a syntax error, recovery hands actions missing pieces;
   * such an AST is discarded anyway, so a failed action yields a placeholder.
   */
  private build<R>(fn: () => R): R {
    return this.ACTION(() => {
      try {
        return fn();
      } catch (e) {
        if (this.errors.length === 0) throw e;
        return { kind: 'name', name: '<error>', span: { file: this.file, offset: 0, line: 1, col: 1, length: 1 } } as R;
      }
    });
  }

  span(tok: IToken): Span {
    return {
      file: this.file,
      offset: tok.startOffset,
      line: tok.startLine ?? 1,
      col: tok.startColumn ?? 1,
      length: Math.max(1, (tok.endOffset ?? tok.startOffset) - tok.startOffset + 1),
    };
  }

  join(a: Span, b: Span): Span {
    return { ...a, length: Math.max(a.length, b.offset + b.length - a.offset) };
  }

  private node<E extends Expr>(e: E, children: Expr[]): E {
    let d = 1;
    for (const c of children) d = Math.max(d, (this.depth.get(c) ?? 1) + 1);
    this.depth.set(e, d);
    if (d === MAX_EXPR_DEPTH + 1) this.tooDeep.push(e.span);
    return e;
  }

  public program = this.RULE('program', (): Program => {
    const decls: Decl[] = [];
    this.MANY(() => {
      const d = this.SUBRULE(this.decl);
      this.build(() => d && decls.push(d));
    });
    return { file: this.file, decls };
  });

  private decl = this.RULE('decl', (): Decl => {
    return this.OR([
      { ALT: () => this.SUBRULE(this.constDecl) },
      { ALT: () => this.SUBRULE(this.paramDecl) },
      { ALT: () => this.SUBRULE(this.layerDecl) },
      { ALT: () => this.SUBRULE(this.trainDecl) },
    ]);
  });

  private constDecl = this.RULE('constDecl', (): Decl => {
    const kw = this.CONSUME(T.Const);
    const name = this.CONSUME(T.Identifier);
    this.CONSUME(T.Equals);
    const value = this.SUBRULE(this.expr);
    return this.build(() => ({
      kind: 'const' as const, name: name.image, nameSpan: this.span(name), value,
      span: this.join(this.span(kw), value.span),
    }));
  });

  private paramDecl = this.RULE('paramDecl', (): Decl => {
    const kw = this.OR([{ ALT: () => this.CONSUME(T.Param) }, { ALT: () => this.CONSUME(T.Buffer) }]);
    const name = this.CONSUME(T.Identifier);
    this.CONSUME(T.Colon);
    const type = this.SUBRULE(this.typeExpr);
    let init: Expr | undefined;
    this.OPTION(() => {
      this.CONSUME(T.Equals);
      init = this.SUBRULE(this.expr);
    });
    const attributes: Attribute[] = [];
    this.MANY(() => {
      const a = this.SUBRULE(this.attribute);
      this.build(() => attributes.push(a));
    });
    return this.build(() => {
      const last = attributes.length ? attributes[attributes.length - 1]!.span : init ? init.span : type.span;
      return {
        kind: 'param' as const, role: kw.image === 'buffer' ? ('buffer' as const) : ('param' as const),
        name: name.image, nameSpan: this.span(name), type, init, attributes, span: this.join(this.span(kw), last),
      };
    });
  });

  private attribute = this.RULE('attribute', (): Attribute => {
    const at = this.CONSUME(T.At);
    const name = this.CONSUME(T.Identifier);
    let args: Arg[] = [];
    let end = name;
    this.OPTION({
      GATE: () => this.LA(1).startLine === name.endLine,
      DEF: () => {
        this.CONSUME(T.LParen);
        args = this.SUBRULE(this.argList);
        end = this.CONSUME(T.RParen);
      },
    });
    return this.build(() => ({ name: name.image, args, span: this.join(this.span(at), this.span(end)) }));
  });

  private typeExpr = this.RULE('typeExpr', (): TypeExpr => {
    return this.OR([
      {
        ALT: () => {
          const kw = this.CONSUME(T.Int);
          return this.build(() => ({ dtype: 'int' as const, dims: null, span: this.span(kw) }));
        },
      },
      {
        ALT: () => {
          let dtypeTok: IToken | undefined;
          this.OPTION2(() => {
            dtypeTok = this.OR2([{ ALT: () => this.CONSUME(T.F32) }, { ALT: () => this.CONSUME(T.Index) }]);
          });
          const open = this.CONSUME(T.LBracket);
          const dims: Expr[] = [];
          this.MANY_SEP({
            SEP: T.Comma,
            DEF: () => {
              const e = this.SUBRULE(this.expr);
              this.build(() => dims.push(e));
            },
          });
          const close = this.CONSUME(T.RBracket);
          return this.build(() => ({
            dtype: dtypeTok?.image === 'index' ? ('index' as const) : ('f32' as const),
            dims,
            span: this.join(this.span(dtypeTok ?? open), this.span(close)),
          }));
        },
      },
    ]);
  });

  private layerDecl = this.RULE('layerDecl', (): Decl => {
    const kw = this.OR([{ ALT: () => this.CONSUME(T.Layer) }, { ALT: () => this.CONSUME(T.Model) }]);
    const name = this.CONSUME(T.Identifier);
    this.CONSUME(T.LParen);
    const params: { name: string; type: TypeExpr; span: Span }[] = [];
    this.MANY_SEP({
      SEP: T.Comma,
      DEF: () => {
        const p = this.CONSUME2(T.Identifier);
        this.CONSUME(T.Colon);
        const type = this.SUBRULE(this.typeExpr);
        this.build(() => params.push({ name: p.image, type, span: this.join(this.span(p), type.span) }));
      },
    });
    this.CONSUME(T.RParen);
    this.CONSUME(T.Arrow);
    const results: TypeExpr[] = [];
    this.OR2([
      {
        ALT: () => {
          this.CONSUME2(T.LParen);
          this.AT_LEAST_ONE_SEP({
            SEP: T.Comma,
            DEF: () => {
              const t = this.SUBRULE2(this.typeExpr);
              this.build(() => results.push(t));
            },
          });
          this.CONSUME2(T.RParen);
        },
      },
      {
        ALT: () => {
          const t = this.SUBRULE3(this.typeExpr);
          this.build(() => results.push(t));
        },
      },
    ]);
    this.CONSUME(T.LBrace);
    const body: Stmt[] = [];
    this.MANY(() => {
      const s = this.SUBRULE(this.stmt);
      this.build(() => s && body.push(s));
    });
    const close = this.CONSUME(T.RBrace);
    return this.build(() => ({
      kind: 'layer' as const, isModel: kw.image === 'model', name: name.image, nameSpan: this.span(name),
      params, results, body, span: this.join(this.span(kw), this.span(close)),
    }));
  });

  private trainDecl = this.RULE('trainDecl', (): Decl => {
    const kw = this.CONSUME(T.Train);
    this.CONSUME(T.LBrace);
    const settings: { name: string; value: Expr; span: Span }[] = [];
    this.MANY(() => {
      const n = this.CONSUME(T.Identifier);
      this.CONSUME(T.Equals);
      const value = this.SUBRULE(this.expr);
      this.OPTION(() => this.CONSUME(T.Semicolon));
      this.build(() => settings.push({ name: n.image, value, span: this.join(this.span(n), value.span) }));
    });
    const close = this.CONSUME(T.RBrace);
    return this.build(() => ({ kind: 'train' as const, settings, span: this.join(this.span(kw), this.span(close)) }));
  });

  private stmt = this.RULE('stmt', (): Stmt => {
    const s = this.OR([
      {
        ALT: () => {
          const kw = this.CONSUME(T.Return);
          const values: Expr[] = [];
          this.AT_LEAST_ONE_SEP({
            SEP: T.Comma,
            DEF: () => {
              const e = this.SUBRULE(this.expr);
              this.build(() => values.push(e));
            },
          });
          return this.build(() => ({
            kind: 'return' as const, values, span: this.join(this.span(kw), values[values.length - 1]!.span),
          }));
        },
      },
      {
        ALT: () => {
          const targets: { name: string; span: Span }[] = [];
          let first: IToken | undefined;
          this.OR2([
            {
              ALT: () => {
                first = this.CONSUME(T.LParen);
                this.AT_LEAST_ONE_SEP2({
                  SEP: T.Comma,
                  DEF: () => {
                    const t = this.CONSUME(T.Identifier);
                    this.build(() => targets.push({ name: t.image, span: this.span(t) }));
                  },
                });
                this.CONSUME(T.RParen);
              },
            },
            {
              ALT: () => {
                const t = this.CONSUME2(T.Identifier);
                first = t;
                this.build(() => targets.push({ name: t.image, span: this.span(t) }));
              },
            },
          ]);
          this.CONSUME(T.Equals);
          const value = this.SUBRULE2(this.expr);
          return this.build(() => ({
            kind: 'assign' as const, targets, value, span: this.join(this.span(first!), value.span),
          }));
        },
      },
    ]);
    this.OPTION(() => this.CONSUME(T.Semicolon));
    return s;
  });

  private expr = this.RULE('expr', (): Expr => this.SUBRULE(this.additive));

  private binaryChain(first: () => Expr, next: () => Expr, ops: TokenType[]): Expr {
    let left = first();
    this.MANY(() => {
      const op = this.OR(ops.map((t) => ({ ALT: () => this.CONSUME(t) })));
      const right = next();
      this.build(() => {
        left = this.node(
          { kind: 'binary', op: op.image as '+', left, right, span: this.join(left.span, right.span) },
          [left, right],
        );
      });
    });
    return left;
  }

  private additive = this.RULE('additive', (): Expr =>
    this.binaryChain(() => this.SUBRULE(this.multiplicative), () => this.SUBRULE2(this.multiplicative), [T.Plus, T.Minus]),
  );

  private multiplicative = this.RULE('multiplicative', (): Expr =>
    this.binaryChain(() => this.SUBRULE(this.unary), () => this.SUBRULE2(this.unary), [T.Star, T.Slash, T.Percent]),
  );

  private unary = this.RULE('unary', (): Expr => {
    return this.OR([
      {
        ALT: () => {
          const minus = this.CONSUME(T.Minus);
          const operand = this.SUBRULE(this.unary);
          return this.build(() =>
            this.node({ kind: 'unary' as const, op: '-' as const, operand, span: this.join(this.span(minus), operand.span) }, [operand]),
          );
        },
      },
      { ALT: () => this.SUBRULE(this.power) },
    ]);
  });

  // `^` binds tighter than unary minus and is right-associative: -2^2 = -4, 2^3^2 = 512.
  private power = this.RULE('power', (): Expr => {
    const base = this.SUBRULE(this.postfix);
    let result = base;
    this.OPTION(() => {
      this.CONSUME(T.Caret);
      const exponent = this.SUBRULE(this.unary);
      this.build(() => {
        result = this.node(
          { kind: 'binary', op: '^', left: base, right: exponent, span: this.join(base.span, exponent.span) },
          [base, exponent],
        );
      });
    });
    return result;
  });

  private postfix = this.RULE('postfix', (): Expr => {
    let target = this.SUBRULE(this.primary);
    this.MANY(() => {
      this.CONSUME(T.LBracket);
      const items: IndexItem[] = [];
      this.AT_LEAST_ONE_SEP({
        SEP: T.Comma,
        DEF: () => {
          const it = this.SUBRULE(this.indexItem);
          this.build(() => items.push(it));
        },
      });
      const close = this.CONSUME(T.RBracket);
      this.build(() => {
        const t = target;
        const children = items.flatMap((i) => (i.kind === 'slice' ? [i.start, i.end] : i.kind === 'at' ? [i.index] : []))
          .filter((e): e is Expr => e !== undefined);
        target = this.node({ kind: 'index', target: t, items, span: this.join(t.span, this.span(close)) }, [t, ...children]);
      });
    });
    return target;
  });

  private indexItem = this.RULE('indexItem', (): IndexItem => {
    return this.OR([
      { ALT: () => { const t = this.CONSUME(T.Ellipsis); return this.build(() => ({ kind: 'ellipsis' as const, span: this.span(t) })); } },
      { ALT: () => { const t = this.CONSUME(T.None); return this.build(() => ({ kind: 'newaxis' as const, span: this.span(t) })); } },
      {
        ALT: () => {
          let start: Expr | undefined;
          let end: Expr | undefined;
          let colon: IToken | undefined;
          this.OPTION(() => { start = this.SUBRULE(this.expr); });
          this.OPTION2(() => {
            colon = this.CONSUME(T.Colon);
            this.OPTION3(() => { end = this.SUBRULE2(this.expr); });
          });
          return this.build((): IndexItem => {
            const first = start?.span ?? (colon ? this.span(colon) : this.span(this.LA(1)));
            const last = end?.span ?? (colon ? this.span(colon) : first);
            if (!colon && start) return { kind: 'at', index: start, span: start.span };
            return { kind: 'slice', start, end, span: this.join(first, last) };
          });
        },
      },
    ]);
  });

  private primary = this.RULE('primary', (): Expr => {
    return this.OR([
      { ALT: () => { const t = this.CONSUME(T.IntegerLiteral); return this.build(() => this.literal(t, 'int')); } },
      { ALT: () => { const t = this.CONSUME(T.FloatLiteral); return this.build(() => this.literal(t, 'float')); } },
      {
        ALT: () => {
          const t = this.CONSUME(T.StringLiteral);
          return this.build(() => this.node({ kind: 'string' as const, value: t.image.slice(1, -1), span: this.span(t) }, []));
        },
      },
      {
        ALT: () => {
          const name = this.CONSUME(T.Identifier);
          let call: { args: Arg[]; close: IToken } | undefined;
          this.OPTION({
            // A call's '(' must sit on the callee's line, so `(a, b) = f(x)` on the next line
            // starts a new statement instead of calling the previous expression.
            GATE: () => this.LA(1).startLine === name.endLine,
            DEF: () => {
              this.CONSUME(T.LParen);
              const args = this.SUBRULE(this.argList);
              const close = this.CONSUME(T.RParen);
              call = { args, close };
            },
          });
          return this.build((): Expr => {
            const s = this.span(name);
            if (!call) return this.node({ kind: 'name', name: name.image, span: s }, []);
            const c = call;
            return this.node(
              { kind: 'call', callee: name.image, calleeSpan: s, args: c.args, span: this.join(s, this.span(c.close)) },
              c.args.map((a) => a.value),
            );
          });
        },
      },
      {
        ALT: () => {
          const open = this.CONSUME2(T.LParen);
          const e = this.SUBRULE(this.expr);
          const close = this.CONSUME2(T.RParen);
          // The parentheses belong to the expression's span, so messages quote "(h - 8)" whole.
          return this.build(() => this.node({ ...e, span: this.join(this.span(open), this.span(close)) }, [e]));
        },
      },
      {
        ALT: () => {
          const open = this.CONSUME(T.LBracket);
          const items: Expr[] = [];
          this.MANY_SEP({
            SEP: T.Comma,
            DEF: () => {
              const e = this.SUBRULE2(this.expr);
              this.build(() => items.push(e));
            },
          });
          const close = this.CONSUME(T.RBracket);
          return this.build(() =>
            this.node({ kind: 'list' as const, items, span: this.join(this.span(open), this.span(close)) }, items),
          );
        },
      },
    ]);
  });

  private argList = this.RULE('argList', (): Arg[] => {
    const args: Arg[] = [];
    this.MANY_SEP({
      SEP: T.Comma,
      DEF: () => {
        let name: IToken | undefined;
        this.OPTION({
          GATE: () => this.LA(2).tokenType === T.Equals,
          DEF: () => {
            name = this.CONSUME(T.Identifier);
            this.CONSUME(T.Equals);
          },
        });
        const value = this.SUBRULE(this.expr);
        this.build(() =>
          args.push({ name: name?.image, value, span: name ? this.join(this.span(name), value.span) : value.span }),
        );
      },
    });
    return args;
  });

  private literal(t: IToken, kind: 'int' | 'float'): Expr {
    return this.node({ kind, value: Number(t.image), span: this.span(t) }, []);
  }
}

export const peerParser = new PeerParser();
