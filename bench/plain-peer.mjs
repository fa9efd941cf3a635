// The PEER layer as plain JavaScript loops over Float32Arrays: the hand-written baseline.
// Same config as bench/peer_h4.peer. Usage: node bench/plain-peer.mjs [N_SIDE=1024] [TOKENS=256] [RUNS=5] [HEADS=4]
const n = Number(process.argv[2] ?? 1024);
const T = Number(process.argv[3] ?? 256);
const runs = Number(process.argv[4] ?? 5);
const h = Number(process.argv[5] ?? 4);
const d = 256, k = 16, dk = 128, half = dk / 2, N = n * n;

let seed = 1;
const rand = () => ((seed = (seed * 1664525 + 1013904223) >>> 0) / 4294967296) * 2 - 1;
const table = (len, scale) => Float32Array.from({ length: len }, () => rand() * scale);
const Wq = table(h * dk * d, 0.1), C1 = table(n * half, 0.2), C2 = table(n * half, 0.2);
const U = new Float32Array(N * d), V = new Float32Array(N * d);
for (let i = 0; i < U.length; i++) { U[i] = rand() * 0.1; V[i] = rand() * 0.1; }
const x = table(T * d, 1);
const mean = new Float32Array(h * dk), variance = new Float32Array(h * dk).fill(1), gamma = new Float32Array(h * dk).fill(1), beta = new Float32Array(h * dk);

/** Indices of the k largest of scores[0..len), largest first (insertion into a sorted list). */
function topk(scores, len, kk, outIdx) {
  let count = 0;
  for (let i = 0; i < len; i++) {
    const v = scores[i];
    if (count === kk && v <= scores[outIdx[kk - 1]]) continue;
    let p = count < kk ? count++ : kk - 1;
    while (p > 0 && scores[outIdx[p - 1]] < v) { outIdx[p] = outIdx[p - 1]; p--; }
    outIdx[p] = i;
  }
}

function erf(v) {
  const t = 1 / (1 + 0.3275911 * Math.abs(v));
  const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-v * v);
  return v >= 0 ? y : -y;
}

function forward() {
  const out = new Float32Array(T * d);
  const q = new Float32Array(dk), s1 = new Float32Array(n), s2 = new Float32Array(n);
  const a = new Int32Array(k), b = new Int32Array(k), cand = new Float32Array(k * k), best = new Int32Array(k);
  for (let t = 0; t < T; t++) {
    const xt = t * d;
    for (let j = 0; j < h; j++) {
      for (let c = 0; c < dk; c++) {
        let s = 0;
        const w = (j * dk + c) * d;
        for (let i = 0; i < d; i++) s += Wq[w + i] * x[xt + i];
        const ch = j * dk + c;
        q[c] = ((s - mean[ch]) / Math.sqrt(variance[ch] + 1e-5)) * gamma[ch] + beta[ch];
      }
      for (let r = 0; r < n; r++) {
        let u = 0, v = 0;
        for (let c = 0; c < half; c++) { u += C1[r * half + c] * q[c]; v += C2[r * half + c] * q[half + c]; }
        s1[r] = u; s2[r] = v;
      }
      topk(s1, n, k, a);
      topk(s2, n, k, b);
      for (let p = 0; p < k; p++) for (let r = 0; r < k; r++) cand[p * k + r] = s1[a[p]] + s2[b[r]];
      topk(cand, k * k, k, best);
      const top = cand[best[0]];
      let z = 0;
      for (let p = 0; p < k; p++) z += Math.exp(cand[best[p]] - top);
      for (let p = 0; p < k; p++) {
        const e = a[Math.floor(best[p] / k)] * n + b[best[p] % k];
        const g = Math.exp(cand[best[p]] - top) / z;
        let dot = 0;
        for (let i = 0; i < d; i++) dot += U[e * d + i] * x[xt + i];
        const act = 0.5 * dot * (1 + erf(dot / Math.SQRT2)) * g;
        for (let i = 0; i < d; i++) out[xt + i] += act * V[e * d + i];
      }
    }
  }
  return out;
}

const times = [];
for (let i = 0; i <= runs; i++) {
  const t0 = performance.now();
  forward();
  if (i > 0) times.push(performance.now() - t0);
}
times.sort((p, r) => p - r);
const ms = times[Math.floor(times.length / 2)];
console.log(JSON.stringify({ framework: 'plain JavaScript loops', n, tokens: T, median_ms: ms, tokens_per_s: (T / ms) * 1000, runs: times, peak_rss_mb: process.resourceUsage().maxRSS / 1024 }));
