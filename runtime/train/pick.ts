// Sampling from a byte-level model's logits (peerc sample and the playground).
/** Samples a class from logits at a temperature (0: the arg-max) with the uniform draw u. */
export function pick(logits: ArrayLike<number>, temperature: number, u: number): number {
  let best = 0;
  for (let c = 1; c < logits.length; c++) if (logits[c]! > logits[best]!) best = c;
  if (temperature <= 0) return best;
  const p = Array.from(logits, (l) => Math.exp((l - logits[best]!) / temperature));
  const z = p.reduce((a, b) => a + b, 0);
  let acc = 0;
  for (let c = 0; c < p.length; c++) if ((acc += p[c]! / z) > u) return c;
  return best;
}
