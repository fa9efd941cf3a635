// The PEER layer written the ordinary way in TensorFlow.js 4.22 (wasm backend): what a user
// would pick instead of peerc. Same config as bench/peer_h4.peer; prints JSON.
// Usage: node bench/tfjs-peer.mjs [N_SIDE=1024] [TOKENS=256] [RUNS=5] [HEADS=4]
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';

const n = Number(process.argv[2] ?? 1024);
const T = Number(process.argv[3] ?? 256);
const runs = Number(process.argv[4] ?? 5);
const h = Number(process.argv[5] ?? 4);
const d = 256, k = 16, dk = 128, N = n * n;
await tf.setBackend('wasm');
await tf.ready();

const w = {
  Wq: tf.randomNormal([d, h * dk], 0, 1 / Math.sqrt(d)),
  g: tf.ones([h * dk]), b: tf.zeros([h * dk]), mean: tf.zeros([h * dk]), variance: tf.ones([h * dk]),
  C1: tf.randomNormal([n, dk / 2], 0, 1 / Math.sqrt(dk / 2)),
  C2: tf.randomNormal([n, dk / 2], 0, 1 / Math.sqrt(dk / 2)),
  U: tf.randomUniform([N, d], -0.1, 0.1),
  V: tf.randomUniform([N, d], -0.1, 0.1),
};
const x = tf.randomNormal([T, d]);

function forward(x) {
  return tf.tidy(() => {
    const q = x.matMul(w.Wq).sub(w.mean).div(w.variance.add(1e-5).sqrt()).mul(w.g).add(w.b).reshape([T * h, dk]);
    const s1 = q.slice([0, 0], [T * h, dk / 2]).matMul(w.C1, false, true);
    const s2 = q.slice([0, dk / 2], [T * h, dk / 2]).matMul(w.C2, false, true);
    const t1 = tf.topk(s1, k), t2 = tf.topk(s2, k);
    const cand = t1.values.expandDims(2).add(t2.values.expandDims(1)).reshape([T * h, k * k]);
    const ids = t1.indices.expandDims(2).mul(tf.scalar(n, 'int32')).add(t2.indices.expandDims(1)).reshape([T * h, k * k]);
    const best = tf.topk(cand, k);
    // tf.gather with batchDims = 1 crashes the wasm backend at this size; offset rows instead.
    const rowBase = tf.range(0, T * h, 1, 'int32').mul(tf.scalar(k * k, 'int32')).expandDims(1);
    const idx = tf.gather(ids.reshape([T * h * k * k]), best.indices.add(rowBase).reshape([T * h * k])).reshape([T, h * k]);
    const g = tf.softmax(best.values).reshape([T, h * k]);
    const u = tf.gather(w.U, idx.reshape([T * h * k])).reshape([T, h * k, d]);
    const dot = u.mul(x.expandDims(1)).sum(2);
    const act = dot.mul(0.5).mul(dot.div(Math.SQRT2).erf().add(1));
    const v = tf.gather(w.V, idx.reshape([T * h * k])).reshape([T, h * k, d]);
    return g.mul(act).expandDims(1).matMul(v).reshape([T, d]);
  });
}

const times = [];
for (let i = 0; i <= runs; i++) {
  const t0 = performance.now();
  const y = forward(x);
  y.dataSync();
  y.dispose();
  if (i > 0) times.push(performance.now() - t0);
}
times.sort((a, b) => a - b);
const ms = times[Math.floor(times.length / 2)];
console.log(JSON.stringify({ framework: 'tfjs 4.22 wasm', n, tokens: T, median_ms: ms, tokens_per_s: (T / ms) * 1000, runs: times, peak_rss_mb: process.resourceUsage().maxRSS / 1024 }));
