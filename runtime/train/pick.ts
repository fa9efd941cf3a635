// Sampling from a byte-level model's logits (peerc sample and the playground). The context is a
// window of the training sequence length; positions after the prompt are padding, which a
// causal model never looks at, so one kernel shape serves the whole generation.
import { uniformAt } from '../../src/interp/rng.js';
import type { Executor } from '../executor.js';

/** Generates `tokens` bytes after `prompt` (a newline when empty); `onByte` sees each as it comes. */
export async function generateBytes(ex: Executor, input: string, seq: number, prompt: Uint8Array, o: { tokens: number; temperature: number; seed: number }, onByte: (b: number) => void = () => {}): Promise<number[]> {
  const context = [...prompt];
  if (context.length === 0) context.push(10);
  const made: number[] = [];
  for (let i = 0; i < o.tokens; i++) {
    const window = context.slice(-seq);
    const x = new Float32Array(seq);
    x.set(window);
    const { outputs } = await ex.forward(new Map([[input, { shape: [1, seq], data: x }]]));
    const logits = outputs[0]!.data;
    const classes = logits.length / seq;
    const next = pick(logits.subarray((window.length - 1) * classes, window.length * classes), o.temperature, uniformAt(o.seed, i, 31));
    context.push(next);
    made.push(next);
    onByte(next);
  }
  return made;
}

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
