import { closeSync, existsSync, openSync, readdirSync } from 'node:fs';
import path from 'node:path';
import nodeUtil from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { BACKEND_CHOICES, MATMUL_PRECISIONS } from './config';

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
export type MatmulPrecision = (typeof MATMUL_PRECISIONS)[number];

export interface BackendInfo {
  name: BackendName;
  /** Native TensorFlow from @tensorflow/tfjs-node-gpu (the CUDA build) rather than @tensorflow/tfjs-node. */
  gpuPackage?: boolean;
  /** The CUDA build found a GPU (tfjs-node's isUsingGpuDevice). */
  gpu?: boolean;
  /** Native TensorFlow version (`tf.backend().binding.TF_Version`) when running on tfjs-node. */
  tfVersion?: string;
  /** Float32 matmul precision native TensorFlow was loaded with (the other backends compute in float32). */
  matmulPrecision?: MatmulPrecision;
}

export interface InitBackendOptions {
  /** 'auto' (default): native (CUDA build first) if a binding loads, else WASM, else JS. Naming one makes it mandatory. */
  backend?: BackendChoice;
  /** Float32 matmul precision of native TensorFlow (default 'highest', or TTTNN_MATMUL_PRECISION); fixed once loaded. */
  matmulPrecision?: MatmulPrecision;
  log?: (line: string) => void;
}

/** What a configuration says about the engine, as initBackend and every model load take it. */
export type EngineSettings = Pick<InitBackendOptions, 'backend' | 'matmulPrecision'>;

/** The engine settings of a configuration: pass them together, so that no load picks one and defaults the other. */
export function engineSettings(config: { backend: BackendChoice; matmulPrecision: MatmulPrecision }): EngineSettings {
  return { backend: config.backend, matmulPrecision: config.matmulPrecision };
}

let current: BackendInfo | undefined;

export async function initBackend(opts: InitBackendOptions = {}): Promise<BackendInfo> {
  const env = process.env.TTTNN_BACKEND;
  if (env !== undefined && !(BACKEND_CHOICES as readonly string[]).includes(env)) {
    throw new Error(`TTTNN_BACKEND=${env}: expected ${BACKEND_CHOICES.join(', ')}`);
  }
  const choice = opts.backend ?? (env as BackendChoice | undefined) ?? 'auto';
  const envPrecision = process.env.TTTNN_MATMUL_PRECISION;
  if (envPrecision !== undefined && !(MATMUL_PRECISIONS as readonly string[]).includes(envPrecision)) {
    throw new Error(`TTTNN_MATMUL_PRECISION=${envPrecision}: expected ${MATMUL_PRECISIONS.join(', ')}`);
  }
  const precision = opts.matmulPrecision ?? (envPrecision as MatmulPrecision | undefined);
  const log = opts.log ?? ((line: string) => console.error(line));
  if (
    current &&
    (choice === 'auto' || choice === current.name || (choice === 'tensorflow-gpu' && current.gpuPackage))
  ) {
    if (precision !== undefined && current.matmulPrecision !== undefined && precision !== current.matmulPrecision) {
      throw new Error(
        `matmul precision '${precision}' asked for, but native TensorFlow was loaded with ` +
          `'${current.matmulPrecision}' in this process; it is fixed when TensorFlow loads`,
      );
    }
    return current;
  }

  let name: BackendName;
  let gpuPackage = false;
  if (choice === 'tensorflow' || choice === 'tensorflow-gpu' || choice === 'auto') {
    const loaded = loadNative(choice === 'tensorflow-gpu', precision ?? 'highest');
    if (typeof loaded !== 'string') {
      name = 'tensorflow';
      gpuPackage = loaded.gpuPackage;
    } else if (choice !== 'auto') {
      const setup = choice === 'tensorflow-gpu' ? '`tttnn setup --gpu`' : "the project's setup command";
      throw new Error(`the native TensorFlow backend does not load (${loaded}); run ${setup}`);
    } else {
      log(
        `warning: native TensorFlow is not available (${loaded}); falling back to a much slower backend. ` +
          "Run 'tttnn setup' (or 'npm run setup') to build it.",
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
    current.matmulPrecision = precision ?? 'highest';
  }
  log(`tfjs backend: ${describeBackend(current)}`);
  return current;
}

/**
 * "tensorflow (TensorFlow 2.21.0, GPU)", "wasm": the backend as logs, bench figures and results name it, with any
 * reduced matmul precision ("tensorflow (TensorFlow 2.21.0, bfloat16 matmuls)"), so that results say how they were
 * computed.
 */
export function describeBackend(info: BackendInfo): string {
  if (info.name !== 'tensorflow') return info.name;
  const gpu = info.gpuPackage === true ? (info.gpu === true ? ', GPU' : ', CUDA build but no GPU visible') : '';
  return `tensorflow (TensorFlow ${info.tfVersion ?? '?'}${gpu}${reducedPrecision(info)})`;
}

/** What precisionEnv's settings compute below float32 on this device, as describeBackend appends it. */
function reducedPrecision(info: BackendInfo): string {
  if (info.matmulPrecision === undefined || info.matmulPrecision === 'highest') return '';
  if (info.gpu === true) return ', TF32 matmuls';
  return info.matmulPrecision === 'medium' ? ', bfloat16 matmuls' : '';
}

/**
 * The environment that sets native TensorFlow's float32 matmul precision, set (not defaulted) before it loads, so
 * that what a run records is what it computed.
 * - NVIDIA_TF32_OVERRIDE=0: TensorFlow computes float32 matmuls and convolutions in TF32 on Ampere and newer GPUs
 *   unless told otherwise; PyTorch's default, and 'highest', is float32. Unset, cuBLAS and cuDNN may use TF32.
 * - ONEDNN_DEFAULT_FPMATH_MODE=BF16: oneDNN rounds matmul inputs to bfloat16 and accumulates in float32 on CPUs with
 *   AMX or AVX512-BF16, 2.7x the float32 throughput of SmolLM2's MLP product here (3.3x on one thread). Its TF32
 *   mode on a CPU is float32 arithmetic by a slower kernel (117 against 182 GFLOP/s), so 'high' stays STRICT there.
 */
function precisionEnv(precision: MatmulPrecision): Record<string, string | undefined> {
  return {
    NVIDIA_TF32_OVERRIDE: precision === 'highest' ? '0' : undefined,
    ONEDNN_DEFAULT_FPMATH_MODE: precision === 'medium' ? 'BF16' : 'STRICT',
  };
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
  // INFO lines (CPU feature notes) on every model command; warnings and errors still print.
  TF_CPP_MIN_LOG_LEVEL: '1',
};

/**
 * tfjs-node 4.22 (the latest release, both flavours) calls `util.isNullOrUndefined`, which Node 23 removed, so every
 * native op throws "util_1.isNullOrUndefined is not a function" on Node 24; on Node 22 it and `util.isArray` print
 * DEP0051/DEP0044 deprecation warnings. Upstream fixed it (tensorflow/tfjs#8425) without a release (#8609). tfjs-node
 * looks both up on the `util` module at each call, so plain equivalents installed there before its first op serve it
 * on every Node; the rest of `util` is untouched.
 */
function patchUtilForTfjsNode(): void {
  const util = nodeUtil as unknown as Record<string, unknown>;
  util.isNullOrUndefined = (value: unknown): boolean => value === null || value === undefined;
  util.isArray = (value: unknown): boolean => Array.isArray(value);
}

/** Registers tfjs-node's backend on the shared @tensorflow/tfjs instance; returns why not when it cannot. */
function loadNative(gpuOnly: boolean, precision: MatmulPrecision): { gpuPackage: boolean } | string {
  for (const [name, value] of Object.entries(NATIVE_TENSORFLOW_ENV)) process.env[name] ??= value;
  for (const [name, value] of Object.entries(precisionEnv(precision))) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
  patchUtilForTfjsNode();
  // The CUDA build exists only where `tttnn setup --gpu` built its binding (GPU workers). Importing the package
  // without one would register its kernels before failing, and tfjs-node's would then all be reported as duplicates.
  // Both register the same 'tensorflow' backend, so only one may load.
  if (builtBinding(GPU_PACKAGE) !== undefined) {
    try {
      // A synchronous require, so that the library loads inside withoutStderr's window.
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      withoutStderr(() => require(GPU_PACKAGE) as unknown);
      return { gpuPackage: true };
    } catch (err) {
      if (gpuOnly) return `${GPU_PACKAGE}: ${(err as Error).message.split('\n')[0]}`;
    }
  } else if (gpuOnly) {
    return `${GPU_PACKAGE} has no built binding`;
  }
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    withoutStderr(() => require('@tensorflow/tfjs-node') as unknown);
    return { gpuPackage: false };
  } catch (err) {
    return (err as Error).message.split('\n')[0] ?? 'unknown error';
  }
}

/**
 * Runs `load` with file descriptor 2 pointed at /dev/null. Loading libtensorflow prints absl INFO lines from static
 * initialisers ("oneDNN custom operations are on", "All log messages before absl::InitializeLog()") that no
 * environment variable silences (TF_CPP_MIN_LOG_LEVEL applies only later). POSIX `open` takes the lowest free
 * descriptor, so closing 2 and opening a file gives it number 2; a second descriptor of the original stderr
 * (reopened through /proc in append mode, which also suits a redirected log file) restores it the same way.
 * Synchronous, so nothing of ours writes to stderr in between; a failed load still reports through the exception.
 */
function withoutStderr<T>(load: () => T): T {
  let saved: number;
  try {
    saved = openSync('/proc/self/fd/2', 'a');
  } catch {
    // A socket (Node's own 'pipe' stdio, journald) cannot be reopened; not Linux; stderr closed. Keep the lines
    // rather than risk losing stderr.
    return load();
  }
  closeSync(2);
  const devNull = openSync('/dev/null', 'a');
  try {
    if (devNull !== 2) throw new Error('descriptor 2 was not reused'); // a lower descriptor was closed: leave it
    return load();
  } finally {
    closeSync(devNull);
    openSync(`/proc/self/fd/${saved}`, 'a');
    closeSync(saved);
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
