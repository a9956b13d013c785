import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { BACKEND_CHOICES } from './config';

/**
 * TensorFlow.js backend selection.
 *
 * 'tensorflow' is tfjs-node's native TensorFlow (oneDNN; measured 26-87x faster than WASM for a GPT-2 block step),
 * built by `ensureNativeTensorflow` (infra/tensorflow.ts). Without it we fall back to WASM, then to pure JS, so
 * that tests and small runs still work everywhere, and say once how to get the fast path. On GPU workers
 * `tttnn setup --gpu` builds the CUDA flavour (@tensorflow/tfjs-node-gpu), which 'auto' then prefers and
 * 'tensorflow-gpu' requires; it registers under the same backend name.
 */
export type BackendName = 'tensorflow' | 'wasm' | 'cpu';
export type BackendChoice = (typeof BACKEND_CHOICES)[number];

export interface BackendInfo {
  name: BackendName;
  /** Native TensorFlow from @tensorflow/tfjs-node-gpu (the CUDA build) rather than @tensorflow/tfjs-node. */
  gpuPackage?: boolean;
  /** The CUDA build found a GPU (tfjs-node's isUsingGpuDevice). */
  gpu?: boolean;
  /** Native TensorFlow version (`tf.backend().binding.TF_Version`) when running on tfjs-node. */
  tfVersion?: string;
}

export interface InitBackendOptions {
  /** 'auto' (default): native (CUDA build first) if a binding loads, else WASM, else JS. Naming one makes it mandatory. */
  backend?: BackendChoice;
  log?: (line: string) => void;
}

let current: BackendInfo | undefined;

export async function initBackend(opts: InitBackendOptions = {}): Promise<BackendInfo> {
  const env = process.env.TTTNN_BACKEND;
  if (env !== undefined && !(BACKEND_CHOICES as readonly string[]).includes(env)) {
    throw new Error(`TTTNN_BACKEND=${env}: expected ${BACKEND_CHOICES.join(', ')}`);
  }
  const choice = opts.backend ?? (env as BackendChoice | undefined) ?? 'auto';
  const log = opts.log ?? ((line: string) => console.error(line));
  if (
    current &&
    (choice === 'auto' || choice === current.name || (choice === 'tensorflow-gpu' && current.gpuPackage))
  ) {
    return current;
  }

  let name: BackendName;
  let gpuPackage = false;
  if (choice === 'tensorflow' || choice === 'tensorflow-gpu' || choice === 'auto') {
    const loaded = await loadNative(choice === 'tensorflow-gpu');
    if (typeof loaded !== 'string') {
      name = 'tensorflow';
      gpuPackage = loaded.gpuPackage;
    } else if (choice !== 'auto') {
      const setup = choice === 'tensorflow-gpu' ? '`tttnn setup --gpu`' : "the project's setup command";
      throw new Error(`the native TensorFlow backend does not load (${loaded}); run ${setup}`);
    } else {
      log(
        `warning: native TensorFlow is not available (${loaded}); falling back to a much slower backend. ` +
          'Run the setup command (ensureNativeTensorflow) to build it.',
      );
      name = (await trySetBackend('wasm')) ? 'wasm' : 'cpu';
    }
  } else {
    name = choice;
  }
  if (!(await trySetBackend(name))) throw new Error(`could not initialise the TensorFlow.js '${name}' backend`);

  current = { name, gpuPackage };
  if (name === 'tensorflow') {
    const native = tf.backend() as unknown as { binding?: { TF_Version?: string }; isUsingGpuDevice?: boolean };
    if (native.binding?.TF_Version !== undefined) current.tfVersion = native.binding.TF_Version;
    current.gpu = native.isUsingGpuDevice === true;
  }
  log(`tfjs backend: ${describeBackend(current)}`);
  return current;
}

/** "tensorflow (TensorFlow 2.21.0, GPU)", "wasm": the backend as logs and bench figures name it. */
export function describeBackend(info: BackendInfo): string {
  if (info.name !== 'tensorflow') return info.name;
  const gpu = info.gpuPackage === true ? (info.gpu === true ? ', GPU' : ', CUDA build but no GPU visible') : '';
  return `tensorflow (TensorFlow ${info.tfVersion ?? '?'}${gpu})`;
}

/**
 * Native TensorFlow settings we default (a value already in the environment wins). TensorFlow reads them when it
 * creates its CPU allocator and oneDNN thread pool, i.e. at the first op, so setting them before the import works.
 * - TF_CPU_ALLOCATOR_USE_BFC: eager tfjs allocates and frees every intermediate; with the default allocator each
 *   tensor over glibc's 32 MB mmap limit (attention scores, logits, MLP activations) is a fresh mmap whose pages the
 *   kernel faults in and zeroes. MiniLM embedding spent 35 s of system time against 47 s of user time that way;
 *   TensorFlow's best-fit-with-coalescing arena reuses the memory: 1.9x faster (docs/engine-performance.md).
 * - TF_ONEDNN_THREADPOOL_USE_CALLER_THREAD: oneDNN runs one of its shards on the calling thread instead of handing
 *   all of them to the pool; bench:embed 18.4 s against 19.3 s without it (one run each, within run-to-run noise).
 */
const NATIVE_TENSORFLOW_ENV: Readonly<Record<string, string>> = {
  TF_CPU_ALLOCATOR_USE_BFC: 'true',
  TF_ONEDNN_THREADPOOL_USE_CALLER_THREAD: 'true',
};

/** Registers tfjs-node's backend on the shared @tensorflow/tfjs instance; returns why not when it cannot. */
async function loadNative(gpuOnly: boolean): Promise<{ gpuPackage: boolean } | string> {
  for (const [name, value] of Object.entries(NATIVE_TENSORFLOW_ENV)) process.env[name] ??= value;
  // The CUDA build exists only where `tttnn setup --gpu` built its binding (GPU workers). Importing the package
  // without one would register its kernels before failing, and tfjs-node's would then all be reported as duplicates.
  // Both register the same 'tensorflow' backend, so only one may load.
  if (builtBinding(GPU_PACKAGE) !== undefined) {
    try {
      await import(GPU_PACKAGE);
      return { gpuPackage: true };
    } catch (err) {
      if (gpuOnly) return `${GPU_PACKAGE}: ${(err as Error).message.split('\n')[0]}`;
    }
  } else if (gpuOnly) {
    return `${GPU_PACKAGE} has no built binding`;
  }
  try {
    await import('@tensorflow/tfjs-node');
    return { gpuPackage: false };
  } catch (err) {
    return (err as Error).message.split('\n')[0] ?? 'unknown error';
  }
}

/** The package's compiled binding (lib/napi-v<N>/tfjs_binding.node), when it is installed and built. */
function builtBinding(npmPackage: string): string | undefined {
  let lib: string;
  try {
    lib = path.join(path.dirname(require.resolve(`${npmPackage}/package.json`)), 'lib');
  } catch {
    return undefined; // an optional dependency npm did not install here
  }
  if (!existsSync(lib)) return undefined;
  return readdirSync(lib)
    .map((dir) => path.join(lib, dir, 'tfjs_binding.node'))
    .find((file) => existsSync(file));
}

/** A variable, so that TypeScript does not require the optional package's types at build time. */
const GPU_PACKAGE: string = '@tensorflow/tfjs-node-gpu';

async function trySetBackend(name: BackendName): Promise<boolean> {
  if (name === 'wasm') await import('@tensorflow/tfjs-backend-wasm');
  try {
    const ok = await tf.setBackend(name);
    // The JS backend prints its own multi-line "install our node backend" banner; we have already said so once.
    if (ok && name === 'cpu') (tf.backend() as unknown as { firstUse: boolean }).firstUse = false;
    return ok;
  } catch {
    return false;
  }
}
