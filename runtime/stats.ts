// Summary statistics of timing samples (benchmarks, compare, the playground's bench).

/** The median (the upper one of an even count); NaN for no samples. */
export function median(xs: readonly number[]): number {
  return xs.length ? [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]! : NaN;
}
