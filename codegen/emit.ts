// Emits the TypeScript module of a compiled program with ts-morph: parameter shapes as typed
// constants, typed inputs and outputs, the program's inlined IR, a class that builds the model
// from a seed or safetensors weights and runs forward() on a chosen gpu.js backend, and a
// class that trains it.
import { Project, Scope, StructureKind, VariableDeclarationKind, type OptionalKind, type PropertySignatureStructure, type SourceFile } from 'ts-morph';
import type { TensorType } from '../src/ir/ops/types.js';
import type { IRModule } from '../src/ir/graph.js';
import { moduleToJSON } from '../src/ir/serialize.js';
import type { Shape } from '../src/shapes/dim.js';
import { attrsOf } from '../src/ir/ops/types.js';
import { input } from '../src/ir/ops/leaves.js';

export interface EmitOptions {
  source: string;
  lowering: string;
  runtimeImport: string;
  /** The program's text and its --set overrides ('NAME=VALUE ...'): checkpoints the module writes embed them, as `peerc train`'s do. */
  program: { text: string; set: string };
}

/** JSON with one node, parameter or function field per line, so diffs of generated code read well. */
function readableJSON(v: unknown): string {
  return JSON.stringify(v, null, 2)
    .replace(/\[\s*([^[\]{}]*?)\s*\]/g, (_, inner: string) => `[${inner.split(/,\s*/).join(', ')}]`)
    .replace(/\{\s*([^{}[\]]*?)\s*\}/g, (_, inner: string) => `{ ${inner.split(/,\s*\n\s*/).join(', ')} }`);
}

const pascal = (s: string) => s.replace(/(^|_)([a-z0-9])/g, (_, __, c: string) => c.toUpperCase());

function shapeType(shape: Shape): string {
  return `readonly [${shape.map((d) => (d.value !== undefined ? String(d.value) : 'number')).join(', ')}]`;
}

export function emitModule(m: IRModule, o: EmitOptions): { fileName: string; className: string; text: string } {
  const fn = [...m.functions.values()].find((f) => f.name === m.entry);
  if (!fn) throw new Error('emitModule needs a module with an entry');
  const className = pascal(fn.name);
  const project = new Project({ useInMemoryFileSystem: true });
  const file = project.createSourceFile(`${fn.name}.ts`, '', { overwrite: true });
  file.addImportDeclaration({
    moduleSpecifier: o.runtimeImport,
    namedImports: ['CompiledModel', 'CompiledTrainer', 'safetensorsWeights', 'seededWeights', { name: 'TrainOptions', isTypeOnly: true }, { name: 'TrainStep', isTypeOnly: true }, { name: 'EvalFigures', isTypeOnly: true }, { name: 'Lowering', isTypeOnly: true }, { name: 'ModelOptions', isTypeOnly: true }, { name: 'ModuleJSON', isTypeOnly: true }, { name: 'TensorIn', isTypeOnly: true }, { name: 'TensorOut', isTypeOnly: true }, { name: 'BackendName', isTypeOnly: true }],
  });

  file.addVariableStatement({
    isExported: true,
    declarationKind: VariableDeclarationKind.Const,
    docs: [`Parameters of ${fn.name}: the tensor names safetensors weights must use, with their shapes and dtypes (index: whole numbers).`],
    declarations: [{
      name: 'PARAMS',
      initializer: `{\n${m.params.map((p) => `  ${JSON.stringify(p.name)}: { shape: [${p.shape.join(', ')}], dtype: ${JSON.stringify(p.dtype)}, role: ${JSON.stringify(p.role)}, sparse: ${p.sparse}, lrMultiplier: ${p.lrMultiplier} },`).join('\n')}\n} as const`,
    }],
  });
  file.addTypeAlias({ isExported: true, name: 'ParamName', type: 'keyof typeof PARAMS' });

  const inputs = fn.inputs.map((id) => fn.graph.node(id));
  const inputProps: OptionalKind<PropertySignatureStructure>[] = inputs.map((n) => {
    const t = n.types[0]!;
    return {
      name: attrsOf(input, n).name,
      isReadonly: true,
      type: `TensorIn & { readonly shape: ${shapeType(t.shape)} }`,
      docs: [`${t.dtype}[${t.shape.map(String).join(', ')}]${t.dtype === 'index' ? ' (whole numbers)' : ''}`],
    };
  });
  file.addInterface({ isExported: true, name: `${className}Inputs`, properties: inputProps });
  const outputs = fn.outputs.map((r, i) => ({ name: fn.outputs.length === 1 ? 'output' : `output_${i}`, type: fn.graph.typeOf(r) }));
  file.addInterface({
    isExported: true,
    name: `${className}Outputs`,
    properties: outputs.map((out) => ({
      name: out.name,
      isReadonly: true,
      type: `TensorOut & { readonly shape: ${shapeType(out.type.shape)} }`,
      docs: [`${out.type.dtype}[${out.type.shape.map(String).join(', ')}]${out.type.dtype === 'index' ? ' (whole numbers, as float32)' : ''}`],
    })),
  });
  file.addVariableStatement({
    declarationKind: VariableDeclarationKind.Const,
    declarations: [{ name: 'INPUT_DTYPES', initializer: `{ ${inputs.map((n) => `${JSON.stringify(n.attrs.name)}: ${JSON.stringify(n.types[0]!.dtype)}`).join(', ')} } as const` }],
  });
  file.addVariableStatement({
    declarationKind: VariableDeclarationKind.Const,
    docs: ['The program as inlined, simplified IR: forward kernels come from it after the fusion passes (per input shape), training differentiates it.'],
    declarations: [{ name: 'IR', type: 'ModuleJSON', initializer: readableJSON(moduleToJSON(m)) }],
  });
  file.addVariableStatement({
    declarationKind: VariableDeclarationKind.Const,
    declarations: [{ name: 'LOWERING', type: 'Lowering', initializer: JSON.stringify(o.lowering) }],
  });
  file.addVariableStatement({
    declarationKind: VariableDeclarationKind.Const,
    docs: ['The source it was compiled from: checkpoints written by save() embed it, so peerc info, run and sample read them.'],
    declarations: [{ name: 'PROGRAM', initializer: `{ file: ${JSON.stringify(o.source)}, text: ${JSON.stringify(o.program.text)}, set: ${JSON.stringify(o.program.set)} }` }],
  });

  file.addClass({
    kind: StructureKind.Class,
    isExported: true,
    name: className,
    docs: [`${fn.name}: forward pass on a gpu.js backend. Create with fromSeed() or fromSafetensors().`],
    ctors: [{ scope: Scope.Private, parameters: [{ name: 'model', type: 'CompiledModel', isReadonly: true, scope: Scope.Private }], statements: [] }],
    properties: [],
    methods: [
      {
        name: 'fromSeed', isStatic: true, returnType: className,
        docs: ['Seeded initial weights, identical to `peerc init --seed` and `peerc run --seed`.'],
        parameters: [{ name: 'seed', type: 'number' }, { name: 'options', type: 'ModelOptions', initializer: '{}' }],
        statements: `return new ${className}(new CompiledModel(IR, seededWeights(IR.params, seed), { ...options, lowering: LOWERING }));`,
      },
      {
        name: 'fromSafetensors', isStatic: true, returnType: className,
        docs: ['Weights from the bytes of a safetensors file whose tensors are named as in PARAMS.'],
        parameters: [{ name: 'bytes', type: 'Uint8Array' }, { name: 'options', type: 'ModelOptions', initializer: '{}' }],
        statements: `return new ${className}(new CompiledModel(IR, safetensorsWeights(IR.params, bytes), { ...options, lowering: LOWERING }));`,
      },
      {
        name: 'forward', isAsync: true, returnType: `Promise<${className}Outputs>`,
        parameters: [{ name: 'inputs', type: `${className}Inputs` }],
        statements: [
          `const { outputs } = await this.model.forward({ ${inputs.map((n) => `${JSON.stringify(n.attrs.name)}: inputs[${JSON.stringify(n.attrs.name)}]`).join(', ')} }, INPUT_DTYPES);`,
          `return { ${outputs.map((out, i) => `${out.name}: outputs[${i}] as ${className}Outputs[${JSON.stringify(out.name)}]`).join(', ')} };`,
        ],
      },
      { name: 'destroy', returnType: 'void', statements: 'this.model.destroy();' },
    ],
    getAccessors: [
      { name: 'backend', returnType: 'BackendName', docs: ['The backend every kernel was verified to run on.'], statements: 'return this.model.backend;' },
      { name: 'backendDetail', returnType: 'string', docs: ["The backend as it runs here, e.g. 'wasm-simd, 2 threads, plain SIMD128'."], statements: 'return this.model.backendDetail;' },
    ],
  });
  emitTraining(file, className, inputs.map((n) => attrsOf(input, n).name), fn.graph.typeOf(fn.outputs[0]!));
  file.formatText({ indentSize: 2 });
  const header = `// Generated by peerc from ${o.source} (${o.lowering} lowering). Do not edit: recompile.\n`;
  return { fileName: `${fn.name}.ts`, className, text: header + file.getFullText() };
}

/** The training class: the same step as `peerc train`, typed with the model's inputs and targets. */
function emitTraining(file: SourceFile, className: string, inputNames: string[], out: TensorType): void {
  const logits = out.dtype === 'f32' && out.shape.length > 0;
  const targetsType = logits ? `TensorIn & { readonly shape: ${shapeType(out.shape.slice(0, -1))} }` : 'undefined';
  file.addClass({
    kind: StructureKind.Class,
    isExported: true,
    name: `${className}Training`,
    docs: [logits ? `Trains ${className} with cross-entropy of its logits against targets (class indices).` : `Trains ${className} by minimising its scalar output.`],
    ctors: [{ scope: Scope.Private, parameters: [{ name: 'trainer', type: 'CompiledTrainer', isReadonly: true, scope: Scope.Private }], statements: [] }],
    methods: [
      {
        name: 'fromSeed', isStatic: true, returnType: `${className}Training`,
        parameters: [{ name: 'seed', type: 'number' }, { name: 'options', type: 'TrainOptions', initializer: '{}' }],
        statements: `return new ${className}Training(new CompiledTrainer(IR, seededWeights(IR.params, seed), { ...options, lowering: LOWERING }, PROGRAM));`,
      },
      {
        name: 'fromSafetensors', isStatic: true, returnType: `${className}Training`,
        docs: ['Weights from a safetensors file (or a checkpoint) and a fresh optimizer; fromCheckpoint() also restores the optimizer.'],
        parameters: [{ name: 'bytes', type: 'Uint8Array' }, { name: 'options', type: 'TrainOptions', initializer: '{}' }],
        statements: `return new ${className}Training(new CompiledTrainer(IR, safetensorsWeights(IR.params, bytes), { ...options, lowering: LOWERING }, PROGRAM));`,
      },
      {
        name: 'fromCheckpoint', isStatic: true, returnType: `${className}Training`,
        docs: ["Goes on from a checkpoint's bytes (save(), or peerc train's checkpoint.safetensors): weights, optimizer state, step count and settings (options.optimizer may change the settings, not the kind)."],
        parameters: [{ name: 'bytes', type: 'Uint8Array' }, { name: 'options', type: 'TrainOptions', initializer: '{}' }],
        statements: `return new ${className}Training(CompiledTrainer.fromCheckpoint(IR, bytes, { ...options, lowering: LOWERING }, PROGRAM));`,
      },
      {
        name: 'step', isAsync: true, returnType: 'Promise<TrainStep>',
        docs: ['One optimisation step on a batch; the weights are updated in place.'],
        parameters: [{ name: 'inputs', type: `${className}Inputs` }, { name: 'targets', type: targetsType, hasQuestionToken: !logits }],
        statements: `return this.trainer.step({ ${inputNames.map((n) => `${JSON.stringify(n)}: inputs[${JSON.stringify(n)}]`).join(', ')} }, targets);`,
      },
      {
        name: 'evaluate', isAsync: true, returnType: 'Promise<EvalFigures>',
        parameters: [{ name: 'inputs', type: `${className}Inputs` }, { name: 'targets', type: targetsType, hasQuestionToken: !logits }],
        statements: `return this.trainer.evaluate({ ${inputNames.map((n) => `${JSON.stringify(n)}: inputs[${JSON.stringify(n)}]`).join(', ')} }, targets);`,
      },
      {
        name: 'model', returnType: className,
        docs: ['The trained model for inference, on the current weights.'],
        statements: `return new (${className} as unknown as new (m: CompiledModel) => ${className})(this.trainer.model());`,
      },
      {
        name: 'weights', returnType: 'ReadonlyMap<string, Float32Array>',
        docs: ['The weights the trainer updates in place. After writing into these arrays yourself, call weightsChanged().'],
        statements: 'return this.trainer.weights;',
      },
      {
        name: 'weightsChanged', returnType: 'void',
        docs: ['Call after writing into weights() yourself: a backend that keeps the weights on a device (webgpu) sends them there again before the next step.'],
        statements: 'this.trainer.weightsChanged();',
      },
      {
        name: 'save', returnType: 'Promise<Uint8Array>',
        docs: ['The weights and the optimizer state as a peerc checkpoint (safetensors bytes) for fromCheckpoint(), peerc info, run --weights and sample (tables a GPU updated in place are copied back first).'],
        statements: 'return this.trainer.checkpoint();',
      },
      {
        name: 'syncWeights', returnType: 'Promise<void>',
        docs: ['Brings weights() and the optimizer state up to date where the backend updates tables on its device (webgpu): call before reading them yourself.'],
        statements: 'return this.trainer.syncWeights();',
      },
      { name: 'destroy', returnType: 'Promise<void>', docs: ['Frees the backend; weights() holds what the device updated first.'], statements: 'return this.trainer.destroy();' },
    ],
    getAccessors: [
      { name: 'backendDetail', returnType: 'string', docs: ["The backend as it runs here, e.g. 'wasm-simd, 2 threads, plain SIMD128'."], statements: 'return this.trainer.backendDetail;' },
      { name: 'stepCount', returnType: 'number', docs: ['Steps taken, counted on from a checkpoint.'], statements: 'return this.trainer.stepCount;' },
    ],
  });
}

/**
 * Declarations of an emitted module (for its .mjs bundle: `NAME.d.mts`). Every exported member
 * of the emitted code has a written type, so they come out right without resolving the runtime:
 * they import its types from 'peerc/runtime' (the installed peerc package's exports).
 */
export function emitDeclarations(fileName: string, text: string): string {
  const project = new Project({ useInMemoryFileSystem: true, compilerOptions: { declaration: true, emitDeclarationOnly: true, strict: true, target: 9 /* ES2022 */ } });
  project.createSourceFile(fileName, text);
  const out = project.emitToMemory({ emitOnlyDtsFiles: true }).getFiles().find((f) => f.filePath.endsWith('.d.ts'));
  if (!out) throw new Error(`no declarations emitted for ${fileName}`);
  return out.text;
}
