import * as tf from '@tensorflow/tfjs';

/**
 * Raw TensorFlow ops through tfjs-node's binding: the backend runs any op registered in libtensorflow by name,
 * with its attributes, on tfjs tensors. The engine reaches TensorFlow's fused kernels this way where tfjs has no
 * op for them: the optimizer's `ResourceApplyAdam` (core/training/adamw.ts) and oneDNN's layer norm, products with
 * bias and activation, attention scores and softmax (OneDnnKernel, used by core/models/layers.ts).
 */

export interface TensorflowBinding {
  TF_ATTR_STRING: number;
  TF_ATTR_INT: number;
  TF_ATTR_TYPE: number;
  TF_ATTR_SHAPE: number;
  TF_ATTR_BOOL: number;
  TF_ATTR_FLOAT: number;
  TF_FLOAT: number;
}

export interface OpAttr {
  name: string;
  type: number;
  value: string | number | boolean | number[] | string[];
}

/** The parts of tfjs-node's NodeJSKernelBackend used here: running any TensorFlow op by name. */
export interface NativeBackend {
  binding: TensorflowBinding;
  isUsingGpuDevice?: boolean;
  executeSingleOutput(name: string, attrs: OpAttr[], inputs: tf.Tensor[]): tf.Tensor;
  executeMultipleOutputs(name: string, attrs: OpAttr[], inputs: tf.Tensor[], outputs: number): tf.Tensor[];
}

/** The native TensorFlow backend when it is the current one. */
export function nativeTensorflow(): NativeBackend | undefined {
  if (tf.getBackend() !== 'tensorflow') return undefined;
  const backend = tf.backend() as unknown as Partial<NativeBackend>;
  return backend.binding && backend.executeSingleOutput && backend.executeMultipleOutputs
    ? (backend as NativeBackend)
    : undefined;
}

/** The native backend when it computes on the CPU (where TensorFlow's oneDNN kernels live), else undefined. */
export function nativeCpuTensorflow(): NativeBackend | undefined {
  const native = nativeTensorflow();
  return native && native.isUsingGpuDevice !== true ? native : undefined;
}

/** The attributes of a kernel call, built against the binding's type codes. */
export type KernelAttrs = (binding: TensorflowBinding) => OpAttr[];

/**
 * One of oneDNN's fused kernels (the ones TensorFlow's graph optimizer rewrites ops into; eager TensorFlow never
 * does), run by name on native CPU TensorFlow. `run` gives undefined where the kernel is not available: another
 * backend, a GPU, or a TensorFlow or binding without it (found at the first call and remembered, so the callers'
 * tfjs ops take over from then on). Its output is not recorded on tfjs's gradient tape: call it where no tape
 * records, or in the forward of an op whose gradient is written out (customOp).
 */
export class OneDnnKernel {
  private runs: boolean | undefined;

  /** `label`: the kernel label it is registered under (eager TensorFlow asks for oneDNN's rename label otherwise). */
  constructor(
    readonly op: string,
    readonly label: '' | 'MklNameChangeOp',
  ) {}

  /** Whether the kernel has run in this process (undefined before the first call on native CPU TensorFlow). */
  get ran(): boolean | undefined {
    return this.runs;
  }

  run(attrs: KernelAttrs, inputs: tf.Tensor[]): tf.Tensor | undefined {
    const native = nativeCpuTensorflow();
    if (!native || this.runs === false || inputs.some((x) => x.dtype !== 'float32')) return undefined;
    const t = native.binding;
    const all = [
      { name: 'T', type: t.TF_ATTR_TYPE, value: t.TF_FLOAT },
      ...attrs(t),
      { name: '_kernel', type: t.TF_ATTR_STRING, value: this.label },
    ];
    try {
      const y = native.executeSingleOutput(this.op, all, inputs);
      this.runs = true;
      return y;
    } catch (err) {
      if (this.runs) throw err;
      this.runs = false;
      return undefined;
    }
  }
}
