// Symbolic dimensions: integer polynomials over the symbols a layer's signature leaves
// open at compile time (T, B, S, ...). Constants are folded, so `h*k` with h = 8, k = 16 is
// the constant 128, and `B*S` stays symbolic. Values are immutable and canonical, so two
// dims are equal exactly when their printed forms are.

export class Dim {
  private constructor(private readonly terms: ReadonlyMap<string, number>) {}

  static of(n: number): Dim {
    return new Dim(n === 0 ? new Map() : new Map([['', n]]));
  }
  static sym(name: string): Dim {
    return new Dim(new Map([[name, 1]]));
  }
  /** Serialised form: [monomial ('' for the constant, 'B*S' for products), coefficient] pairs. */
  get terms_(): [string, number][] {
    return [...this.terms];
  }
  static fromTerms(terms: readonly (readonly [string, number])[]): Dim {
    return new Dim(new Map(terms.filter(([, c]) => c !== 0).map(([k, c]) => [k, c])));
  }

  get isConst(): boolean {
    return [...this.terms.keys()].every((k) => k === '');
  }
  /** The value of a constant dim; undefined when symbolic. */
  get value(): number | undefined {
    return this.isConst ? (this.terms.get('') ?? 0) : undefined;
  }
  get symbols(): string[] {
    return [...new Set([...this.terms.keys()].flatMap((k) => (k ? k.split('*') : [])))];
  }

  add(o: Dim): Dim {
    const t = new Map(this.terms);
    for (const [k, c] of o.terms) {
      const s = (t.get(k) ?? 0) + c;
      if (s === 0) t.delete(k);
      else t.set(k, s);
    }
    return new Dim(t);
  }
  neg(): Dim {
    return new Dim(new Map([...this.terms].map(([k, c]) => [k, -c])));
  }
  sub(o: Dim): Dim {
    return this.add(o.neg());
  }
  mul(o: Dim): Dim {
    let r = Dim.of(0);
    for (const [ka, ca] of this.terms)
      for (const [kb, cb] of o.terms) {
        const key = [...(ka ? ka.split('*') : []), ...(kb ? kb.split('*') : [])].sort().join('*');
        r = r.add(new Dim(new Map([[key, ca * cb]])));
      }
    return r;
  }
  /** Exact division by a positive constant; undefined when some coefficient is not divisible. */
  divExact(n: number): Dim | undefined {
    if (n === 0) return undefined;
    const t = new Map<string, number>();
    for (const [k, c] of this.terms) {
      if (c % n !== 0) return undefined;
      t.set(k, c / n);
    }
    return new Dim(t);
  }
  /** Exact division by another dim when it is a monomial factor (e.g. (B*S)/S = B). */
  divBy(o: Dim): Dim | undefined {
    if (o.isConst) return this.divExact(o.value!);
    if (o.terms.size !== 1) return this.equals(o) ? Dim.of(1) : undefined;
    const [ok, oc] = [...o.terms][0]!;
    const oSyms = ok!.split('*');
    const t = new Map<string, number>();
    for (const [k, c] of this.terms) {
      const syms = k ? k.split('*') : [];
      for (const s of oSyms) {
        const i = syms.indexOf(s);
        if (i < 0) return undefined;
        syms.splice(i, 1);
      }
      if (c % oc! !== 0) return undefined;
      t.set(syms.join('*'), c / oc!);
    }
    return new Dim(t);
  }
  equals(o: Dim): boolean {
    return this.toString() === o.toString();
  }
  substitute(bind: (sym: string) => Dim | undefined): Dim {
    let r = Dim.of(0);
    for (const [k, c] of this.terms) {
      let term = Dim.of(c);
      for (const s of k ? k.split('*') : []) term = term.mul(bind(s) ?? Dim.sym(s));
      r = r.add(term);
    }
    return r;
  }
  evaluate(values: (sym: string) => number | undefined): number | undefined {
    let total = 0;
    for (const [k, c] of this.terms) {
      let term = c;
      for (const s of k ? k.split('*') : []) {
        const v = values(s);
        if (v === undefined) return undefined;
        term *= v;
      }
      total += term;
    }
    return total;
  }

  toString(): string {
    if (this.terms.size === 0) return '0';
    const keys = [...this.terms.keys()].sort((a, b) => (a === '' ? 1 : b === '' ? -1 : a < b ? -1 : 1));
    let s = '';
    for (const k of keys) {
      const c = this.terms.get(k)!;
      const mag = Math.abs(c);
      const body = k === '' ? String(mag) : mag === 1 ? k : `${mag}*${k}`;
      s += s === '' ? (c < 0 ? `-${body}` : body) : c < 0 ? ` - ${body}` : ` + ${body}`;
    }
    return s;
  }
}

export type Shape = readonly Dim[];

export function shapeToString(s: Shape): string {
  return `[${s.map((d) => d.toString()).join(', ')}]`;
}

export function shapesEqual(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d.equals(b[i]!));
}
