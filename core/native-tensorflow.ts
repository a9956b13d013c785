import * as tf from '@tensorflow/tfjs';

/**
 * Raw TensorFlow ops through tfjs-node's binding: the backend runs any op registered in libtensorflow by name,
 * with its attributes, on tfjs tensors. The engine reaches TensorFlow's fused kernels this way where tfjs has no
 * op for them (the optimizer's `ResourceApplyAdam`, oneDNN's layer norm).
 */

interface TensorflowBinding {
  TF_ATTR_STRING: number;
  TF_ATTR_TYPE: number;
  TF_ATTR_SHAPE: number;
  TF_ATTR_BOOL: number;
  TF_ATTR_FLOAT: number;
  TF_FLOAT: number;
}

export interface OpAttr {
  name: string;
  type: number;
  value: string | number | boolean | number[];
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
