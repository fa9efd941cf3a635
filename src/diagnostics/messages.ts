// The one table of user-facing messages. Every error peerc reports has a code here,
// and every code has a minimal failing program under test/errors/.
type Fmt<A> = (a: A) => string;
const m = <A>(title: string, text: Fmt<A>) => ({ title, text });

export const MESSAGES = {
  // Input files
  PEER0001: m('invalid UTF-8', (a: { offset: number }) => `the file is not valid UTF-8 text (bad byte at offset ${a.offset})`),
  PEER0002: m('file too large', (a: { bytes: number; limit: number }) =>
    `the file is ${(a.bytes / 1e6).toFixed(1)} MB; peerc reads programs of at most ${a.limit / 1e6} MB`),
  PEER0003: m('too many errors', (a: { shown: number }) => `too many errors; stopped after ${a.shown}`),
  // Lexing and parsing
  PEER0100: m('unexpected character', (a: { text: string }) => `unexpected character ${a.text}`),
  PEER0101: m('syntax error', (a: { expected: string; found: string }) => `expected ${a.expected} but found ${a.found}`),
  PEER0102: m('nesting too deep', (a: { limit: number }) => `expression is nested more than ${a.limit} levels deep`),
  PEER0103: m('literal out of range', (a: { text: string }) => `number ${a.text} is too large (integers must be below 2^53)`),
  PEER0104: m('unterminated string', () => `string is not closed with '"' on the same line`),
  PEER0105: m('program too long', (a: { count: number; limit: number }) =>
    `the program has ${a.count.toLocaleString('en-US')} tokens; peerc reads at most ${a.limit.toLocaleString('en-US')} (this is where the limit is reached)`),
  // Names and structure
  PEER0200: m('unknown name', (a: { name: string; hint: string }) => `unknown name '${a.name}'${a.hint}`),
  PEER0201: m('duplicate definition', (a: { name: string; where: string }) => `'${a.name}' is already defined (${a.where})`),
  PEER0202: m('wrong number of arguments', (a: { callee: string; expected: string; found: number }) =>
    `'${a.callee}' takes ${a.expected} but was given ${a.found}`),
  PEER0203: m('unknown keyword argument', (a: { callee: string; name: string; allowed: string }) =>
    `'${a.callee}' has no argument named '${a.name}'${a.allowed}`),
  PEER0204: m('wrong kind of value', (a: { what: string; expected: string; found: string }) =>
    `${a.what} must be ${a.expected}, but this is ${a.found}`),
  PEER0205: m('recursive layer', (a: { chain: string }) => `layers may not call themselves: ${a.chain}`),
  PEER0206: m('wrong number of results', (a: { expected: number; found: number; what: string }) =>
    `${a.what} gives ${a.found} result${a.found === 1 ? '' : 's'} but ${a.expected} ${a.expected === 1 ? 'is' : 'are'} expected`),
  PEER0207: m('missing return', (a: { layer: string }) => `layer '${a.layer}' does not end with a return statement`),
  PEER0208: m('unknown initializer or attribute', (a: { name: string; allowed: string }) =>
    `unknown ${a.name}; expected one of ${a.allowed}`),
  PEER0209: m('no entry point', (a: { detail: string }) => a.detail),
  PEER0210: m('statement after return', () => `nothing may follow the return statement of a layer`),
  PEER0211: m('argument given twice', (a: { name: string }) => `argument '${a.name}' is given twice`),
  // Types and shapes
  PEER0300: m('dtype mismatch', (a: { what: string; expected: string; found: string }) =>
    `${a.what} expects ${a.expected} but found ${a.found}`),
  PEER0301: m('shapes do not broadcast', (a: { op: string; left: string; right: string; detail: string }) =>
    `cannot ${a.op} shapes ${a.left} and ${a.right}: ${a.detail}`),
  PEER0302: m('result shape mismatch', (a: { what: string; expected: string; found: string }) =>
    `${a.what}: expected ${a.expected} but found ${a.found}`),
  PEER0303: m('argument shape mismatch', (a: { what: string; expected: string; found: string; detail: string }) =>
    `${a.what}: expected ${a.expected} but found ${a.found}${a.detail}`),
  PEER0304: m('bad einsum', (a: { spec: string; detail: string }) => `einsum "${a.spec}": ${a.detail}`),
  PEER0305: m('axis out of range', (a: { axis: number; rank: number }) =>
    `axis ${a.axis} is out of range for a tensor of rank ${a.rank}`),
  PEER0306: m('reshape size mismatch', (a: { from: string; to: string; detail: string }) =>
    `cannot reshape ${a.from} to ${a.to}: ${a.detail}`),
  PEER0307: m('cannot infer dimension', (a: { name: string; layer: string }) =>
    `dimension '${a.name}' of layer '${a.layer}' cannot be inferred: it must appear on its own in some argument's shape`),
  PEER0308: m('bad index', (a: { detail: string }) => a.detail),
  // Compile-time arithmetic and domain checks
  PEER0400: m('not an integer', (a: { expr: string; value: string; detail: string }) =>
    `${a.expr} = ${a.value} is not an integer${a.detail}`),
  PEER0401: m('not a perfect square', (a: { expr: string; value: number }) =>
    `sqrt(${a.expr}) needs a perfect square, but ${a.expr} = ${a.value}; the nearest are ${Math.floor(Math.sqrt(a.value)) ** 2} and ${Math.ceil(Math.sqrt(a.value) + 1e-9) ** 2}`),
  PEER0402: m('top-k out of range', (a: { k: string; n: string }) =>
    Number(a.k) < 1
      ? `topk asks for k = ${a.k}; k must be at least 1`
      : `topk asks for k = ${a.k} of only ${a.n} entries; k must be at most the length of the last axis`),
  PEER0403: m('index may exceed table', (a: { table: string; rows: string; bound: string }) =>
    `indices range over ${a.bound} rows but ${a.table} has only ${a.rows}`),
  PEER0404: m('dimension not positive', (a: { expr: string; value: number }) => `dimension ${a.expr} = ${a.value} must be at least 1`),
  PEER0405: m('integer overflow', (a: { expr: string }) => `${a.expr} is too large (2^53 or more)`),
  PEER0406: m('division by zero', (a: { expr: string }) => `division by zero in ${a.expr}`),
  PEER0407: m('bad constant', (a: { detail: string }) => a.detail),
  // Training settings
  PEER0500: m('unknown training setting', (a: { name: string; allowed: string }) =>
    `unknown training setting '${a.name}'; known settings are ${a.allowed}`),
  PEER0501: m('bad training setting', (a: { name: string; detail: string }) => `training setting '${a.name}' ${a.detail}`),
  // Running: weights, inputs, safetensors
  PEER0600: m('malformed safetensors', (a: { file: string; detail: string }) => `${a.file} is not a valid safetensors file: ${a.detail}`),
  PEER0601: m('missing tensor', (a: { file: string; name: string; kind: string }) => `${a.file} has no tensor '${a.name}' (${a.kind})`),
  PEER0602: m('tensor does not match', (a: { name: string; expected: string; found: string }) =>
    `tensor '${a.name}': expected ${a.expected} but found ${a.found}`),
  PEER0603: m('index out of range', (a: { what: string; index: number; size: number }) =>
    `${a.what}: index ${a.index} is out of range for ${a.size} rows`),
  PEER0604: m('inconsistent input dimension', (a: { dim: string; first: number; second: number; where: string }) =>
    `dimension ${a.dim} is ${a.first} in one input but ${a.second} in ${a.where}`),
  PEER0605: m('non-finite value', (a: { what: string; detail: string }) => `${a.what} contains NaN or infinity (${a.detail})`),
  PEER0606: m('does not fit the backend', (a: { backend: string; detail: string }) => `this program does not fit backend ${a.backend}: ${a.detail}`),
  // Training
  PEER0700: m('no gradient', (a: { op: string }) =>
    `the loss depends on '${a.op}', which has no gradient; training needs every op between the parameters and the loss to be differentiable`),
  PEER0701: m('model output is not trainable', (a: { found: string }) =>
    `to train, the model's first output must be logits [..., classes] (trained with cross-entropy against targets) or a scalar loss, but it is ${a.found}`),
  PEER0702: m('nothing to train', (a: { detail: string }) => a.detail),
  PEER0703: m('training diverged', (a: { what: string; step: number; checkpoint: string }) =>
    `${a.what} became NaN or infinite at step ${a.step}; training stopped. ${a.checkpoint}`),
  PEER0704: m('data does not fit the model', (a: { detail: string }) => a.detail),
  PEER0705: m('run folder already used', (a: { dir: string; step: string }) =>
    `${a.dir} already holds a run${a.step}; continue it with --resume, or pass --force to start over and replace it`),
  PEER0706: m('setting cannot change on resume', (a: { flag: string; was: string; now: string }) =>
    `--${a.flag} cannot change when resuming (the checkpoint was trained with ${a.was}, not ${a.now}): the run's data stream and optimizer state depend on it; start a new run with another --out to change it`),
  PEER0707: m('nothing left to train', (a: { steps: number; step: number; given: boolean }) =>
    `${a.given ? `--steps ${a.steps} is not beyond the checkpoint's step ${a.step}` : `the run is complete (step ${a.step} of ${a.steps})`}; to train further, pass --steps greater than ${a.step}`),
  PEER0708: m('not a training checkpoint', (a: { file: string; format: string }) =>
    `${a.file} is a safetensors file but not a peerc training checkpoint (${a.format}); pass the checkpoint.safetensors in a run folder written by peerc train`),
  PEER0709: m('run folder in use', (a: { dir: string; owner: string }) =>
    `${a.dir} is in use by ${a.owner}; wait for that run to finish or stop it (Ctrl-C saves a checkpoint), or train into another --out`),
  PEER0710: m('program changed since the checkpoint', (a: { file: string; detail: string }) =>
    `--resume: ${a.file} no longer computes what the checkpoint was trained with: ${a.detail}. Restore the program (leave out FILE to train the one the checkpoint embeds: peerc train --resume --out RUN_DIR) or start a new run`),
  PEER0711: m('data changed since the checkpoint', (a: { file: string; detail: string }) =>
    `--resume: ${a.file} ${a.detail}; the run's batches come from that text, so pass --data with the text it was trained on (a moved or renamed copy is fine), or start a new run`),
  PEER0712: m('weights newer on the device', (a: { names: string }) =>
    `the backend updated ${a.names} on its device since the weights' arrays were last brought up to date, so a write into those arrays would be mixed with stale values; call await syncWeights() before writing the weights, then weightsChanged()`),
  // Files
  PEER0800: m('cannot use path', (a: { action: string; path: string; reason: string }) => `cannot ${a.action} ${a.path}: ${a.reason}`),
  PEER0801: m('write failed', (a: { path: string; reason: string; kept: string }) => `could not write ${a.path}: ${a.reason}; ${a.kept}`),
  PEER0802: m('bad settings file', (a: { file: string; key: string; detail: string }) => `${a.file}: ${a.key} ${a.detail}`),
  // Export
  PEER0900: m('no export form', (a: { op: string; target: string }) => `op '${a.op}' has no ${a.target} form (it appears only in training programs)`),
} as const;

export type Code = keyof typeof MESSAGES;
export type MessageArgs<C extends Code> = Parameters<(typeof MESSAGES)[C]['text']>[0];
