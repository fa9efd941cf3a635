// The PEER layer's training step written the ordinary way in TensorFlow.js 4.22 (wasm backend):
// the same layer as bench/tfjs-peer.mjs with batch-statistics BatchNorm, cross-entropy of the
// [T, d] output against random targets (as `peerc bench --train` does), and tf.train.adam over
// every weight. Scores of the selected keys are gathered from the score rows by index, so
// gradients flow through the chosen keys (tf.topk values have no gradient). Prints JSON.
// Usage: node bench/tfjs-peer-train.mjs [N_SIDE=256] [TOKENS=256] [RUNS=5] [HEADS=4] [BACKEND=wasm|cpu]
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';

const n = Number(process.argv[2] ?? 256);
const T = Number(process.argv[3] ?? 256);
const runs = Number(process.argv[4] ?? 5);
const h = Number(process.argv[5] ?? 4);
const d = 256, k = 16, dk = 128, N = n * n;
const backend = process.argv[6] ?? 'wasm';
await tf.setBackend(backend);
await tf.ready();

// tf.gather's gradient is UnsortedSegmentSum, which TF.js 4.22's wasm backend does not
// implement; a user training there needs this shim: the segment sum in JS on the wasm heap.
if (backend === 'wasm')
  tf.registerKernel({
    kernelName: 'UnsortedSegmentSum', backendName: 'wasm',
    kernelFunc: ({ inputs: { x, segmentIds }, backend: be, attrs: { numSegments } }) => {
      const rowSize = x.shape.slice(1).reduce((a, b) => a * b, 1);
      const out = be.makeOutput([numSegments, ...x.shape.slice(1)], x.dtype);
      const o = be.typedArrayFromHeap(out), xs = be.typedArrayFromHeap(x), ids = be.typedArrayFromHeap(segmentIds);
      o.fill(0);
      for (let i = 0; i < ids.length; i++) for (let j = 0; j < rowSize; j++) o[ids[i] * rowSize + j] += xs[i * rowSize + j];
      return out;
    },
  });

const w = {
  Wq: tf.variable(tf.randomNormal([d, h * dk], 0, 1 / Math.sqrt(d))),
  g: tf.variable(tf.ones([h * dk])), b: tf.variable(tf.zeros([h * dk])),
  C1: tf.variable(tf.randomNormal([n, dk / 2], 0, 1 / Math.sqrt(dk / 2))),
  C2: tf.variable(tf.randomNormal([n, dk / 2], 0, 1 / Math.sqrt(dk / 2))),
  U: tf.variable(tf.randomUniform([N, d], -0.1, 0.1)),
  V: tf.variable(tf.randomUniform([N, d], -0.1, 0.1)),
};
const x = tf.randomNormal([T, d]);
const targets = tf.oneHot(tf.tensor1d(Array.from({ length: T }, (_, i) => (i * 7919) % d), 'int32'), d);
const L = T * h;
const rowBase = (width) => tf.range(0, L, 1, 'int32').mul(tf.scalar(width, 'int32')).expandDims(1);

// TF.js has no stop-gradient and would differentiate into the int32 indices: detach them by value.
const detach = (t) => tf.tensor(t.dataSync(), t.shape, t.dtype);

function loss() {
  const q0 = x.matMul(w.Wq);
  const { mean, variance } = tf.moments(q0, 0);
  const q = q0.sub(mean).div(variance.add(1e-5).sqrt()).mul(w.g).add(w.b).reshape([L, dk]);
  const s1 = q.slice([0, 0], [L, dk / 2]).matMul(w.C1, false, true);
  const s2 = q.slice([0, dk / 2], [L, dk / 2]).matMul(w.C2, false, true);
  const i1 = detach(tf.topk(s1, k).indices), i2 = detach(tf.topk(s2, k).indices);
  const v1 = tf.gather(s1.reshape([L * n]), i1.add(rowBase(n)).reshape([L * k])).reshape([L, k]);
  const v2 = tf.gather(s2.reshape([L * n]), i2.add(rowBase(n)).reshape([L * k])).reshape([L, k]);
  const cand = v1.expandDims(2).add(v2.expandDims(1)).reshape([L, k * k]);
  const ids = i1.expandDims(2).mul(tf.scalar(n, 'int32')).add(i2.expandDims(1)).reshape([L, k * k]);
  const best = detach(tf.topk(cand, k).indices.add(rowBase(k * k)).reshape([L * k]));
  const scores = tf.gather(cand.reshape([L * k * k]), best).reshape([L, k]);
  const idx = detach(tf.gather(ids.reshape([L * k * k]), best));
  const gate = tf.softmax(scores).reshape([T, h * k]);
  const u = tf.gather(w.U, idx).reshape([T, h * k, d]);
  const dot = u.mul(x.expandDims(1)).sum(2);
  const act = dot.mul(0.5).mul(dot.div(Math.SQRT2).erf().add(1));
  const v = tf.gather(w.V, idx).reshape([T, h * k, d]);
  const y = gate.mul(act).expandDims(1).matMul(v).reshape([T, d]);
  return tf.losses.softmaxCrossEntropy(targets, y);
}

const opt = tf.train.adam(1e-3);
const times = [];
for (let i = 0; i <= runs; i++) {
  const t0 = performance.now();
  const l = opt.minimize(loss, true);
  l.dataSync();
  l.dispose();
  if (i > 0) times.push(performance.now() - t0);
}
times.sort((a, b) => a - b);
const ms = times[Math.floor(times.length / 2)];
console.log(JSON.stringify({ framework: `tfjs 4.22 ${backend}`, n, tokens: T, median_ms: ms, tokens_per_s: (T / ms) * 1000, runs: times, peak_rss_mb: process.resourceUsage().maxRSS / 1024 }));
