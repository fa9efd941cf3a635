// Product-key retrieval's selection as WebAssembly SIMD128, run where the scoring products left
// their scores (the contraction kernel's memory), so nothing is copied between the two.
// Per lane (token, head): each side's n sub-key scores are scanned four at a time against the
// current subk-th best (one vector compare; almost every block fails it once the list is full
// and is skipped), survivors inserted in order; then only the candidate pairs (i, j) with
// (i+1)(j+1) <= k (no other pair can reach the top k: each is beaten or tied at a lower rank by
// that many others), visited in rank order i*subk+j so ties go to the lower rank as in the
// reference, their sums in float64 as the reference adds them. NaN ranks below every number.
// Writes the k best sums (float64) and their expert ids (a*n + b, as float32); the gate runs
// after it (codegen/host/retrieve.ts), since wasm has no exp.
import { buildModule, I, type FunctionDef, type ValType } from './module.js';
import { addConst, code, get, ifThen, set, whileLoop, type Code } from './structured.js';

/** Bytes of scratch one call of the kernel uses (for all its lanes, one after the other). */
export const retrieveScratchBytes = (k: number, subk: number) => 64 * Math.ceil(subk / 4) + Math.ceil((12 * k) / 16) * 16;

/** retrieve(s1, s2, scratch, cand, idx, lanes): byte pointers (scratch: retrieveScratchBytes for the call). */
export function retrieveFunction(n: number, k: number, subk: number): FunctionDef {
  let next = 0;
  const local = () => next++;
  const [s1, s2, scr, cand, idx, lanes] = [local(), local(), local(), local(), local(), local()];
  const types: ValType[] = [];
  const typed = (t: ValType) => {
    types.push(t);
    return local();
  };
  const i32 = () => typed('i32'), f32 = () => typed('f32'), f64 = () => typed('f64');
  const len = i32(), p = i32(), q = i32(), i = i32(), j = i32(), jmax = i32(), aid = i32(), thrNaN = i32(), src = i32(), at = i32(), sd = i32(), sb = i32(), e = i32();
  const v = f32(), u = f32(), thr = f32();
  const dv = f64(), du = f64(), dthr = f64(), da = f64();
  const thrv = typed('v128');
  const fl = f32(), open = i32(), bits = i32(), qi = i32(), rowOk = i32();
  const allv = typed('v128');
  // The scratch: the best subk scores and sub-key ids of each side (whole registers), the best k sums and expert ids.
  const list = 16 * Math.ceil(subk / 4);
  const AV = 0, AI = list, BV = 2 * list, BI = 3 * list, CV = 4 * list, CI = CV + 8 * k;

  /**
   * Inserts `value` (its id pushed by `id`) into a sorted list of `cap` in the scratch: values of
   * 4 or 8 bytes at valOff, 4-byte ids at idOff (float32 when `idF32`). Unrolled from the end with
   * literal offsets: each step moves one entry down until the value does not beat the one above
   * (slots at or past `len` are empty and always moved). Ties lose (ids arrive in increasing
   * order), NaN loses to any number.
   */
  const insert = (o: { wide: boolean; base: number; valOff: number; idOff: number; idF32: boolean; cap: number; value: number; id: Code[]; threshold: number }) => {
    const w = o.wide ? 8 : 4;
    const load = o.wide ? I.f64Load : I.f32Load, store = o.wide ? I.f64Store : I.f32Store;
    const prev = o.wide ? du : u;
    const [gt, ne, eq] = o.wide ? [I.f64Gt, I.f64Ne, I.f64Eq] : [I.f32Gt, I.f32Ne, I.f32Eq];
    const place = (slot: number) => [
      get(o.base), get(o.value), store(o.valOff + slot * w),
      get(o.base), ...o.id, ...(o.idF32 ? [I.f32ConvertI32S, I.f32Store(o.idOff + 4 * slot)] : [I.i32Store(o.idOff + 4 * slot)]),
    ];
    const steps: Code[] = [];
    for (let slot = o.cap - 1; slot >= 1; slot--)
      steps.push(
        get(o.base), load(o.valOff + (slot - 1) * w), set(prev),
        ...ifThen([
          I.i32(slot - 1), get(len), I.i32LtS,
          get(o.value), get(prev), gt, get(prev), get(prev), ne, get(o.value), get(o.value), eq, I.i32And, I.i32Or, I.i32Eqz, I.i32And,
        ], [...place(slot), I.br(1)]),
        get(o.base), get(prev), store(o.valOff + slot * w),
        get(o.base), get(o.base), I.i32Load(o.idOff + 4 * (slot - 1)), I.i32Store(o.idOff + 4 * slot),
      );
    return [
      I.block, ...steps, ...place(0), I.end,
      ...ifThen([get(len), I.i32(o.cap), I.i32LtS], addConst(len, 1)),
      ...ifThen([get(len), I.i32(o.cap), I.i32Eq], [
        get(o.base), load(o.valOff + (o.cap - 1) * w), set(o.threshold),
        get(o.threshold), get(o.threshold), ne, set(thrNaN),
        ...(o.wide ? [] : [get(thr), I.f32x4Splat, set(thrv)]),
      ]),
    ];
  };

  // Each side's best subk live in registers while its row is scanned: values in L[r], ids in
  // D[r] (four per register, best first), written to the scratch when the row is done.
  const R = Math.ceil(subk / 4);
  const L = Array.from({ length: R }, () => typed('v128')), D = Array.from({ length: R }, () => typed('v128'));
  const M = Array.from({ length: R }, () => typed('v128'));
  const vv = typed('v128'), idv = typed('v128'), vNum = typed('v128'), lenv = typed('v128');
  const le32 = (x: number) => [x & 255, (x >> 8) & 255, (x >> 16) & 255, (x >>> 24) & 255];
  /** Lanes [p-1] of (prev, cur) for slots p of register cur: lane 3 of prev, then lanes 0-2 of cur. */
  const down = [12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27];
  /** Sets allv (every score may enter) from len, thrNaN and open (after a side starts, and when its list fills). */
  const modes = [
    I.i32(0), get(thrNaN), get(open), get(len), I.i32(subk), I.i32Eq, I.select, I.i32Sub, I.i32x4Splat, set(allv),
  ];
  /**
   * Inserts v (id q) with no branch: M[r] marks the slots v beats (a larger value, or a number
   * over NaN) or that are empty (slot >= len); each slot then takes the entry above it where v
   * beats that one too, v where it beats only this one, and keeps its own otherwise.
   */
  const insertSide = [
    get(v), I.f32x4Splat, set(vv), get(qi), I.i32x4Splat, set(idv),
    I.i32(0), get(v), get(v), I.f32Eq, I.i32Sub, I.i32x4Splat, set(vNum),
    get(len), I.i32x4Splat, set(lenv),
    ...M.flatMap((m, r) => [
      get(vv), get(L[r]!), I.f32x4Gt,
      get(L[r]!), get(L[r]!), I.f32x4Ne, get(vNum), I.v128And, I.v128Or,
      I.v128Const([4 * r, 4 * r + 1, 4 * r + 2, 4 * r + 3].flatMap(le32)), get(lenv), I.i32x4GeS, I.v128Or,
      set(m),
    ]),
    ...M.map((_, i) => R - 1 - i).flatMap((r) => {
      const above = (x: number[]) => (r === 0 ? I.v128Const0 : get(x[r - 1]!));
      const shifted = (x: number[]) => [above(x), get(x[r]!), I.i8x16Shuffle(down)];
      return [
        ...shifted(L), get(vv), get(L[r]!), get(M[r]!), I.v128Bitselect, ...shifted(M), I.v128Bitselect, set(L[r]!),
        ...shifted(D), get(idv), get(D[r]!), get(M[r]!), I.v128Bitselect, ...shifted(M), I.v128Bitselect, set(D[r]!),
      ];
    }),
    ...ifThen([get(len), I.i32(subk), I.i32LtS], addConst(len, 1)),
    ...ifThen([get(len), I.i32(subk), I.i32Eq], [
      get(L[R - 1]!), I.f32x4ExtractLane((subk - 1) % 4), set(thr),
      get(thr), get(thr), I.f32Ne, set(thrNaN), get(thr), I.f32x4Splat, set(thrv), ...modes,
    ]),
  ];
  /** Considers score `v` (index in q): inserted when the list has room or it beats the current last. */
  const consider = ifThen(
    [
      get(v), get(thr), I.f32Gt, get(thrNaN), get(v), get(v), I.f32Eq, I.i32And, I.i32Or,
      get(open), get(v), get(fl), I.f32Ge, I.i32Or,
      get(len), I.i32(subk), I.i32Eq, I.select,
    ],
    insertSide,
  );
  // The floor: a value at least subk scores reach, so no score below it can be among the best
  // subk, and while the list fills only scores at or above it enter. The row's vectors are dealt
  // to G accumulators (vector v to v mod G), whose lane-wise maxima are 4G disjoint groups'
  // maxima; each lane's P = ceil(subk / 4) largest (a min/max insertion network) are P groups'
  // maxima, so the least of those over the four lanes is reached by 4P >= subk scores. That is
  // close to the subk-th largest group maximum: on random scores about 22 insertions per side
  // against 35 for the least of subk block maxima. The maxima are pseudo-maxima from -Infinity
  // (pmax(acc, v) keeps acc where v is NaN: one maxps, where f32x4.max's NaN rule costs about
  // eight instructions), so they are maxima of the numbers only, which NaN ranks below anyway, and
  // the network sees no NaN (pmin/pmax are then exact). A floor of -Infinity (too few numbers for
  // it) means no floor (open: every score enters while the list fills).
  const vectors = Math.floor(n / 4), P = Math.ceil(subk / 4), G = Math.min(vectors, Math.max(16, P));
  const groups = Array.from({ length: G }, () => typed('v128')), best = Array.from({ length: P }, () => typed('v128'));
  const rounds = Math.floor(vectors / Math.max(1, G)), rest = vectors - rounds * G;
  const floor = G < P ? [I.f32(-Infinity), set(fl), I.i32(1), set(open)] : [
    ...groups.flatMap((a, g) => [I.f32(-Infinity), I.f32x4Splat, get(src), I.v128Load(16 * g), I.f32x4PMax, set(a)]),
    get(src), I.i32(16 * G), I.i32Add, set(at), I.i32(1), set(e),
    ...whileLoop([get(e), I.i32(rounds), I.i32LtS], [...groups.flatMap((a, g) => [get(a), get(at), I.v128Load(16 * g), I.f32x4PMax, set(a)]), ...addConst(at, 16 * G), ...addConst(e, 1)]),
    ...groups.slice(0, rest).flatMap((a, g) => [get(a), get(at), I.v128Load(16 * g), I.f32x4PMax, set(a)]),
    ...best.flatMap((b) => [I.f32(-Infinity), I.f32x4Splat, set(b)]),
    // Each group maximum enters the lanes' sorted P largest: the larger stays, the smaller moves down.
    ...groups.flatMap((a) => best.flatMap((b) => [get(b), get(a), I.f32x4PMax, set(vv), get(b), get(a), I.f32x4PMin, set(a), get(vv), set(b)])),
    get(best[P - 1]!), I.f32x4ExtractLane(0), get(best[P - 1]!), I.f32x4ExtractLane(1), I.f32Min,
    get(best[P - 1]!), I.f32x4ExtractLane(2), I.f32Min, get(best[P - 1]!), I.f32x4ExtractLane(3), I.f32Min, set(fl),
    get(fl), get(fl), I.f32Ne, get(fl), I.f32(-Infinity), I.f32Eq, I.i32Or, set(open),
    ...ifThen([get(open)], [I.f32(-Infinity), set(fl)]),
  ];

  /**
   * Both sides' scans (side sd: scores at s1 or s2, lists at scr + sd * 8 subk), each n scores:
   * blocks of four skipped while none beats the current last, the others (and the tail) one by one.
   */
  /**
   * Lane mask of the four scores at `src` + off that may enter: those above thrv, which is just
   * below the floor while the list fills (so a score at the floor passes) and the current last
   * once it is full (a full list holds only scores at or above the floor), or all where allv.
   * A superset: `consider` decides each survivor exactly.
   */
  const candidates = (off: number) => [get(src), I.v128Load(off), get(thrv), I.f32x4Gt, get(allv), I.v128Or];
  const sides = [
    I.i32(0), set(sd),
    ...whileLoop([get(sd), I.i32(2), I.i32LtS], [
      get(scr), get(sd), I.i32(BV), I.i32Mul, I.i32Add, set(sb),
      get(s2), get(s1), get(sd), I.select, set(src),
      I.i32(0), set(len), I.f32(-Infinity), set(thr), I.i32(0), set(thrNaN), get(thr), I.f32x4Splat, set(thrv),
      ...L.map((l) => [I.v128Const0, set(l)]), ...D.map((d) => [I.v128Const0, set(d)]),
      ...floor,
      // thrv just below the floor (by far more than an ulp, so rounding cannot land on it); below
      // a floor of +Infinity, the largest finite float.
      I.f32(3.4028234663852886e38), get(fl), get(fl), I.f32Abs, I.f32(2 ** -16), I.f32Mul, I.f32(1e-30), I.f32Add, I.f32Sub,
      get(fl), I.f32(Infinity), I.f32Eq, I.select, I.f32x4Splat, set(thrv), ...modes,
      I.i32(0), set(q),
      // Sixteen scores at a time: skipped unless one may enter, else only the lanes that may are considered.
      ...whileLoop([get(q), I.i32(n - 16), I.i32LeS], [
        ...ifThen([...candidates(0), ...candidates(16), I.v128Or, ...candidates(32), I.v128Or, ...candidates(48), I.v128Or, I.v128AnyTrue], [
          ...[0, 1, 2, 3].flatMap((r) => [...candidates(16 * r), I.i32x4Bitmask, ...(r ? [I.i32(4 * r), I.i32Shl, get(bits), I.i32Or] : []), set(bits)]),
          ...whileLoop([get(bits)], [
            get(bits), I.i32Ctz, set(e),
            get(bits), get(bits), I.i32(1), I.i32Sub, I.i32And, set(bits),
            get(src), get(e), I.i32(4), I.i32Mul, I.i32Add, I.f32Load(0), set(v),
            get(q), get(e), I.i32Add, set(qi),
            ...consider,
          ]),
        ]),
        ...addConst(q, 16), ...addConst(src, 64),
      ]),
      ...whileLoop([get(q), I.i32(n), I.i32LtS], [get(src), I.f32Load(0), set(v), get(q), set(qi), ...consider, ...addConst(q, 1), ...addConst(src, 4)]),
      ...L.flatMap((l, r) => [get(sb), get(l), I.v128Store(AV + 16 * r), get(sb), get(D[r]!), I.v128Store(AI + 16 * r)]),
      ...addConst(sd, 1),
    ]),
  ];

  // Row 0's candidates (a[0] + b[j], j < min(subk, k)) are already in the list's order when no
  // sum is NaN: b is sorted, f64 addition is monotonic, and ties keep rank order. So they are
  // written as the list at once instead of inserted one by one (each insert walks the empty
  // slots from the end: about 136 steps for the 16 of k = 16). With a NaN among them (NaN in b,
  // or +Infinity plus -Infinity) the list starts empty and row 0 is inserted like the others.
  const first = Math.min(subk, k);
  const row0 = [
    I.i32(1), set(rowOk),
    get(scr), I.f32Load(AV), I.f64PromoteF32, set(da),
    get(scr), I.i32Load(AI), I.i32(n), I.i32Mul, set(aid),
    I.i32(0), set(j),
    ...whileLoop([get(j), I.i32(first), I.i32LtS], [
      get(scr), get(j), I.i32(4), I.i32Mul, I.i32Add, set(src),
      get(da), get(src), I.f32Load(BV), I.f64PromoteF32, I.f64Add, set(dv),
      get(scr), get(j), I.i32(8), I.i32Mul, I.i32Add, get(dv), I.f64Store(CV),
      get(src), get(aid), get(src), I.i32Load(BI), I.i32Add, I.f32ConvertI32S, I.f32Store(CI),
      get(rowOk), get(dv), get(dv), I.f64Eq, I.i32And, set(rowOk),
      ...addConst(j, 1),
    ]),
    I.i32(0), set(len), I.f64(-Infinity), set(dthr), I.i32(0), set(thrNaN), I.i32(0), set(i),
    ...ifThen([get(rowOk)], [
      I.i32(first), set(len), I.i32(1), set(i),
      ...(first === k ? [get(scr), I.f64Load(CV + 8 * (k - 1)), set(dthr)] : []),
    ]),
  ];
  const pairs = [
    ...row0,
    ...whileLoop([get(i), I.i32(Math.min(subk, k)), I.i32LtS], [
      // jmax = min(subk, floor(k / (i + 1)))
      I.i32(k), get(i), I.i32(1), I.i32Add, I.i32DivS, set(jmax),
      I.i32(subk), get(jmax), get(jmax), I.i32(subk), I.i32GtS, I.select, set(jmax),
      get(scr), get(i), I.i32(4), I.i32Mul, I.i32Add, set(at),
      get(at), I.f32Load(AV), I.f64PromoteF32, set(da),
      get(at), I.i32Load(AI), I.i32(n), I.i32Mul, set(aid),
      I.i32(0), set(j),
      ...whileLoop([get(j), get(jmax), I.i32LtS], [
        get(scr), get(j), I.i32(4), I.i32Mul, I.i32Add, set(src),
        get(da), get(src), I.f32Load(BV), I.f64PromoteF32, I.f64Add, set(dv),
        ...ifThen(
          [get(len), I.i32(k), I.i32LtS, get(dv), get(dthr), I.f64Gt, I.i32Or, get(thrNaN), get(dv), get(dv), I.f64Eq, I.i32And, I.i32Or],
          insert({ wide: true, base: scr, valOff: CV, idOff: CI, idF32: true, cap: k, value: dv, id: [get(aid), get(src), I.i32Load(BI), I.i32Add], threshold: dthr }),
        ),
        ...addConst(j, 1),
      ]),
      ...addConst(i, 1),
    ]),
  ];
  const body = whileLoop([get(lanes)], [
    ...sides, ...pairs,
    ...Array.from({ length: k }, (_, r) => [get(cand), get(scr), I.f64Load(CV + 8 * r), I.f64Store(8 * r), get(idx), get(scr), I.i32Load(CI + 4 * r), I.i32Store(4 * r)]),
    ...addConst(s1, 4 * n), ...addConst(s2, 4 * n), ...addConst(cand, 8 * k), ...addConst(idx, 4 * k), ...addConst(lanes, -1),
  ]);
  return { name: 'retrieve', params: ['i32', 'i32', 'i32', 'i32', 'i32', 'i32'], locals: types, body: code(body) };
}

export function retrieveModule(n: number, k: number, subk: number, memory: { minPages: number; maxPages: number; shared?: boolean }): Uint8Array<ArrayBuffer> {
  return buildModule([retrieveFunction(n, k, subk)], memory);
}
