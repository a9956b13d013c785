import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { testConfig } from '../../test-config';
import { ensureNativeTensorflow, extractNvidiaLibraries } from '../../../infra/tensorflow';

const run = promisify(execFile);

/** A wheel is a zip; this writes one with the given members (name -> content) using Python's zipfile. */
async function makeWheel(file: string, members: Record<string, string>): Promise<void> {
  const script = `
import json, sys, zipfile
with zipfile.ZipFile(sys.argv[1], 'w') as z:
    for name, text in json.loads(sys.argv[2]).items():
        z.writestr(name, text)
`;
  await run('python3', ['-c', script, file, JSON.stringify(members)]);
}

describe('ensureNativeTensorflow', () => {
  it('leaves tfjs-node with a loadable native binding, and a second call only checks it', async () => {
    const cacheDir = testConfig().toolsDir;
    const lines: string[] = [];
    await ensureNativeTensorflow({ cacheDir, log: (l) => lines.push(l) });
    const second: string[] = [];
    const t0 = Date.now();
    await ensureNativeTensorflow({ cacheDir, log: (l) => second.push(l) });
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(second).toEqual([expect.stringMatching(/^native TensorFlow 2\.21\.0 already built for tfjs-node/)]);
  });

  it('rebuilds a binding compiled from other sources than the installed, patched ones', async () => {
    const cacheDir = testConfig().toolsDir;
    await ensureNativeTensorflow({ cacheDir, log: () => undefined });
    // The stamp beside the binding records the sources it was compiled from; another hash there is what a binding
    // built before a change of patches/@tensorflow+tfjs-node+*.patch looks like.
    const lib = path.join(path.dirname(require.resolve('@tensorflow/tfjs-node/package.json')), 'lib');
    const [napiDir] = (await fs.readdir(lib)).filter((d) => d.startsWith('napi-v'));
    const stamp = path.join(lib, napiDir!, 'tfjs_binding.node.sources-sha256');
    const built = await fs.readFile(stamp, 'utf8');
    await fs.writeFile(stamp, 'f'.repeat(64) + '\n');
    const lines: string[] = [];
    await ensureNativeTensorflow({ cacheDir, log: (l) => lines.push(l) });
    expect(lines[0]).toBe(
      'rebuilding the @tensorflow/tfjs-node binding: it was compiled from other sources (a patch changed)',
    );
    expect(lines.at(-1)).toBe('native TensorFlow 2.21.0 ready for @tensorflow/tfjs-node');
    expect(await fs.readFile(stamp, 'utf8')).toBe(built);
  }, 120_000);
});

describe('extractNvidiaLibraries (the CUDA flavour)', () => {
  it("puts a CUDA wheel's shared libraries where the TensorFlow libraries' RUNPATH looks, and nothing else", async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tttnn-cuda-wheel-'));
    const wheel = path.join(dir, 'nvidia_cublas_cu12-12.5.3.2-py3-none-manylinux2014_x86_64.whl');
    await makeWheel(wheel, {
      'nvidia/__init__.py': '',
      'nvidia/cublas/__init__.py': '',
      'nvidia/cublas/include/cublas_api.h': '/* header */',
      'nvidia/cublas/lib/__init__.py': '',
      'nvidia/cublas/lib/libcublas.so.12': 'ELF cublas',
      'nvidia/cublas/lib/libcublasLt.so.12': 'ELF cublasLt',
      'nvidia_cublas_cu12-12.5.3.2.dist-info/METADATA': 'Name: nvidia-cublas-cu12',
    });
    const deps = path.join(dir, 'deps');
    await fs.mkdir(path.join(deps, 'lib'), { recursive: true });
    await extractNvidiaLibraries(wheel, deps);

    // libtensorflow_framework.so.2 in deps/lib has RUNPATH $ORIGIN/../nvidia/cublas/lib (and the like).
    const runpath = path.resolve(deps, 'lib', '..', 'nvidia', 'cublas', 'lib');
    expect((await fs.readdir(runpath)).sort()).toEqual(['libcublas.so.12', 'libcublasLt.so.12']);
    expect(await fs.readFile(path.join(runpath, 'libcublasLt.so.12'), 'utf8')).toBe('ELF cublasLt');
    expect(await fs.readdir(path.join(deps, 'nvidia'))).toEqual(['cublas']);
    expect(await fs.readdir(path.join(deps, 'nvidia', 'cublas'))).toEqual(['lib']);

    const empty = path.join(dir, 'nvidia_empty_cu12-1.0-py3-none-any.whl');
    await makeWheel(empty, { 'nvidia/empty/include/x.h': '' });
    await expect(extractNvidiaLibraries(empty, deps)).rejects.toThrow(
      'nvidia_empty_cu12-1.0-py3-none-any.whl has no nvidia/*/lib/*.so libraries',
    );
    await fs.rm(dir, { recursive: true, force: true });
  });
});
