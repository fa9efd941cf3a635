// `peerc help COMMAND` and `peerc COMMAND --help`: what each command does and its options.
import { NODE_BACKENDS } from '../backends/info.js';

/** The backends a command may name here, from the registry (a new backend appears by itself). */
const BACKEND_CHOICES = NODE_BACKENDS.join(', ');

export const HELP: Readonly<Record<string, string>> = {
  playground: `Serves the playground: a browser page with an editor for .peer programs (errors as you type),
the examples, parameters and shapes, the IR after each pass, the generated kernels, a seeded run, fused vs
naive benchmarks on every backend the browser has (WebGPU, WebGL2, wasm-simd and WebAssembly with and
without threads, cpu), and training with live loss and expert-usage plots. Responses carry COOP/COEP
headers, so the page is cross-origin isolated (wasm threads).
  --port P             port (default 8080; 0 picks a free one)
  --host H             address to listen on (default 127.0.0.1: this machine only)
  --build DIR          write the page as static files instead, with _headers and HEADERS.txt saying
                       which headers a static host must send`,
  check: `Checks names, dtypes and symbolic shapes of a .peer file and reports every error.
  --entry LAYER        check LAYER as the model (default: the file's 'model')
  --set NAME=VALUE     replace the program's const NAME by VALUE (a constant expression; repeatable;
                       every command that reads a program takes it)`,
  ir: `Prints the program's IR after a pass of the pipeline.
  --dump-after PASS    check, inline, unstack, einsum-pairs, fold-constants, cse, dce, fuse, fuse-dce (default dce)
  --train              print the training program (loss and gradients) instead
  --explain-fusion     first list the fused ops, and every retrieval or expert pattern that did not
                       fuse with the reason (default pass: fuse-dce)
  --set NAME=VALUE     replace the program's const NAME by VALUE (repeatable; a resumed run repeats the run's)
  --entry LAYER        use LAYER as the model`,
  info: `Lists parameters (names, shapes, dtypes), the model's inputs and outputs, training settings, and
per token the parameters read and the forward's einsum FLOPs (open dimensions at 64).
  --json               as JSON (the names peerc run and safetensors files use)
  --set NAME=VALUE     replace the program's const NAME by VALUE (repeatable; a resumed run repeats the run's)
  --entry LAYER        use LAYER as the model`,
  run: `Runs the model once and writes its outputs as safetensors.
  --seed S | --weights W.safetensors   seeded initial weights, or weights from a file
  --inputs I.safetensors               the model's inputs by name (make one with: peerc init FILE --inputs ...)
  --out O.safetensors                  where to write the outputs (missing folders are created)
  --backend B          reference (default here, unlike bench and train: run writes outputs, and the float64
                       interpreter's are the exact ones), or generated kernels in float32: auto (wasm-simd
                       where available), ${BACKEND_CHOICES}
  --lowering L         fused (default) or naive kernels
  --train-mode         BatchNorm on batch statistics; writes the new running statistics (reference only)
  --threads N          wasm-simd: worker threads, this one included (default: PEERC_THREADS, else the cores)
  --plain-simd         wasm-simd: plain SIMD128 even where the engine has relaxed SIMD
  --set NAME=VALUE     replace the program's const NAME by VALUE (repeatable; a resumed run repeats the run's)
  --entry LAYER        use LAYER as the model`,
  compile: `Emits a typed TypeScript module of the model and ESM bundles for Node and browsers.
  -o DIR               output folder (created if missing)
  --lowering L         fused (default) or naive kernels
  --set NAME=VALUE     replace the program's const NAME by VALUE (repeatable; a resumed run repeats the run's)
  --entry LAYER        use LAYER as the model`,
  compare: `Compares training runs (folders written by peerc train): final and best validation loss, bits per
byte (text), median tokens/s, expert usage and unevenness per table, training seconds, parameters, and
active parameters and einsum FLOPs per token of the program; runs that differ only by seed are one row
(mean ± standard deviation).
  --plots DIR          also write compare-loss-step.svg and compare-loss-time.svg (validation loss)`,
  sweep: `Runs a grid of training runs described by a JSON file, then compares them (compare.md and plots
in its out folder). Finished runs are skipped and stopped ones resumed, so after a crash or Ctrl-C the
same command continues the sweep.
  { "out": "runs/NAME",                       run folders, relative to the file
    "programs": ["../examples/x.peer"],       .peer files, relative to the file
    "set": { "N": ["16^2", "32^2"] },         every combination is a grid point (--set NAME=VALUE)
    (or "points": [{ "h": 1, "k": 32 }, { "h": 2, "k": 16 }]: the points themselves)
    "seeds": [0, 1, 2],
    "train": ["--task", "recall", "--steps", "200"] }   flags for every peerc train`,
  lsp: `Runs the language server over stdio (the Language Server Protocol), for any editor with an LSP client:
diagnostics as you type (the CLI's codes and notes; fusion notes as information), hover with inferred shapes,
go to definition (into the prelude too), references, rename, document symbols, folding, completion, signature
help, formatting (peerc fmt), semantic tokens, did-you-mean quick fixes and inlay hints with the shapes of
let bindings. editors/vscode is a VS Code extension that starts it; docs/editors.md says how for others.
  --stdio              accepted for clients that pass it (stdio is the only transport)`,
  fmt: `Rewrites .peer files in peerc's one canonical layout: one declaration or statement per line, 2-space
bodies, spaces around operators (not around * / % in sizes: shapes, indices, initializers, consts), literals
as written, every comment kept (trailing comments of consecutive lines aligned), blank lines between groups
kept (one). Formatting twice changes nothing, and the program means the same (its IR is unchanged).
  FILE|DIR...          files, or folders (every .peer file under them)
  --check              change nothing; list the files that are not formatted and exit 1 if any (for CI)
  --stdin              format standard input to standard output (for editors)`,
  export: `Exports the model to another framework, with peerc's parameter names.
  --torch              a self-contained PyTorch module DIR/ENTRY.py: an nn.Module with peerc's parameter
                       and buffer names and shapes, and load_peerc(path) for peerc weights or checkpoints
                       (the dtype of the file: float64 weights give a float64 model); docs/export.md
  --kernels K          with --torch: triton (the fused retrieval and expert ops, forward and backward, as
                       Triton kernels generated for this program, custom ops for torch.compile/FSDP2) or
                       eager (PyTorch ops); default triton where python3 here has triton and a CUDA GPU,
                       else eager, with a note saying which
  --onnx               the forward (evaluation mode) as an ONNX model, opset 17, with its weights
                       (beyond 32 MiB of weights, tensors of 1 MiB or more in MODEL.onnx.data beside it); needs --seed S or --weights W
  -o DIR | -o M.onnx   output folder (--torch) or model file (--onnx); folders are created
  --set NAME=VALUE     replace the program's const NAME by VALUE (repeatable; a resumed run repeats the run's)
  --entry LAYER        use LAYER as the model`,
  bench: `Times the generated kernels: fused vs naive vs the float64 interpreter, per kernel.
  --tokens T           tokens per call: the last open dimension (the sequence) is T, every other open dimension 1
                       (default 256)
  --backend B          auto (default: wasm-simd where available), ${BACKEND_CHOICES}
  --runs R             timed runs (median reported; default 5)
  --train              time the training step instead: per kernel, each contraction's GFLOP/s against the
                       best 512^3 matmul, lazy Adam's GB/s against random row reads of the largest table
  --optimizer sgd|adam|adamw   --train: the optimizer of the step (default adam; sgd with momentum 0.9)
  --json               machine-readable output
  --skip-naive, --skip-reference      leave those out
  --skip-ort           leave out the ONNX Runtime (CPU) baseline: the model exported by peerc export
                       --onnx, run by onnxruntime-node where it is installed
  --threads N          wasm-simd: worker threads, this one included (default: PEERC_THREADS, else the cores)
  --plain-simd         wasm-simd: plain SIMD128 even where the engine has relaxed SIMD
  --set NAME=VALUE     replace the program's const NAME by VALUE (repeatable)
  --entry LAYER        use LAYER as the model`,
  init: `Writes seeded initial weights, or seeded inputs for peerc run.
  --seed S             the seed (a whole number)
  --out FILE           the safetensors file to write
  --f64                write float64 instead of float32
  --inputs             write the model's inputs instead of its weights: floats are normal(0, 1),
                       indices uniform over the rows they select
  --tokens T           tokens per call: the last open dimension (the sequence) is T, every other open dimension 1
                       (default 8)
  --dim NAME=V[,...]   size of particular open dimensions (these win over --tokens)
  --set NAME=VALUE     replace the program's const NAME by VALUE (repeatable; a resumed run repeats the run's)
  --entry LAYER        use LAYER as the model`,
  train: `Trains the model with progress, validation, metrics, plots and checkpoints (docs/training.md).
  --task recall | --data TEXT_FILE    the built-in key -> value recall task, or bytes of any text file
  --steps N  --batch B  --seq S  --seed S  --lr LR
  --optimizer sgd|adam|adamw  --schedule cosine|constant  --warmup N  --clip C  --weight-decay W  --beta1  --beta2
  --eval-every N  --eval-batches N  --checkpoint-every N  --stop-at N
  --backend B          auto (default: wasm-simd where available), ${BACKEND_CHOICES}
  --out DIR            the run folder (default runs/MODEL); an existing run is never replaced silently
  --resume             continue the run in --out; --steps, --lr and the other optimizer settings, the
                       evaluation cadence and the backend may change (recorded); task, data, batch,
                       seq, seed and optimizer may not. FILE may be edited in ways that do not change
                       what it computes (comments, layout); without FILE the checkpoint's own program
                       is trained. --data may name a moved copy of the same text (checked by SHA-256)
  Ctrl-C, SIGTERM and SIGHUP save a checkpoint and exit 130, 143, 129; one trainer holds a run folder
  at a time (RUN_DIR/.peerc-lock); see "Faults" in docs/training.md
  --force              start over in an --out that already holds a run, replacing it
  --profile            at the end, the median time per step of each part (kernels, row sums, optimizer)
  --threads N          wasm-simd: worker threads, this one included (default: PEERC_THREADS, else the cores)
  --plain-simd         wasm-simd: plain SIMD128 even where the engine has relaxed SIMD
  --set NAME=VALUE     replace the program's const NAME by VALUE (repeatable; a resumed run repeats the run's)
  --entry LAYER        use LAYER as the model`,
  sample: `Generates text from the checkpoint of a trained byte-level model.
  --prompt TEXT        the text to continue
  --tokens N           tokens to generate; a byte-level model's token is one byte (default 200)
  --temperature T      0 picks the most likely byte (default 0.8)
  --seed S  --backend B
  --threads N          wasm-simd: worker threads, this one included (default: PEERC_THREADS, else the cores)
  --plain-simd         wasm-simd: plain SIMD128 even where the engine has relaxed SIMD`,
  demo: `Checks and evaluates the paper's PEER layer (N = 1024^2 experts) on seeded weights and verifies
its product-key retrieval against brute force.
  --tokens T           tokens evaluated (the layer's one open dimension; default 8)
  --seed S             the seed of weights and inputs (default 0)`,
  help: `Prints the list of commands, or one command's options: peerc help COMMAND.`,
};
