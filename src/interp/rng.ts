// The counter-based generator every seeded value comes from (weights, inputs, noise, data):
// each number is a pure function of (key, position, stream). No imports, so the IR's noise ops
// and the interpreter's initialisers both sit above it.
function mix(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return mix(h >>> 0);
}

/** 32 random bits for (key, position, stream). */
function word(key: number, i: number, stream: number): number {
  const lo = i >>> 0;
  const hi = Math.floor(i / 4294967296) >>> 0;
  return mix(key ^ mix(lo ^ mix(hi + Math.imul(stream + 1, 0x9e3779b9))));
}

/** A uniform number in (0, 1) with 53 random bits. */
export function uniformAt(key: number, i: number, stream: number): number {
  const a = word(key, i, 2 * stream) >>> 5; // 27 bits
  const b = word(key, i, 2 * stream + 1) >>> 6; // 26 bits
  return (a * 67108864 + b + 0.5) / 9007199254740992;
}

export function normalAt(key: number, i: number): number {
  const u1 = uniformAt(key, i, 0);
  const u2 = uniformAt(key, i, 1);
  return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
}

export function paramKey(seed: number, name: string): number {
  return mix(hashString(name) ^ mix(seed >>> 0) ^ Math.floor(seed / 4294967296));
}
