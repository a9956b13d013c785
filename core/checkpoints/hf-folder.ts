import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { readSafetensorsFolder, type TensorMap } from './safetensors';

/**
 * A Hugging Face checkpoint folder: `config.json`, `model.safetensors` (or sharded with an index) and
 * `tokenizer.json`. Folders are read locally; a Hub id is downloaded file by file into a local cache first
 * (`<cacheDir>/<owner>--<name>/<revision>/<file>`), the same options shape as transformers.js's hub.js.
 */
export interface HfConfig {
  model_type: string;
  [key: string]: unknown;
}

export interface HfCheckpoint {
  dir: string;
  config: HfConfig;
  weights: TensorMap;
  /** The file the weights came from (model.safetensors, its shard index, or a .gguf file), for error messages. */
  weightsFile: string;
  /** Parsed `tokenizer.json`, when the folder has one. */
  tokenizer?: unknown;
  tokenizerConfig?: Record<string, unknown>;
}

export interface LoadOptions {
  revision?: string;
  cacheDir?: string;
  /** Never touch the network: a Hub id must already be in the cache. */
  localFilesOnly?: boolean;
  log?: (line: string) => void;
}

const HUB = 'https://huggingface.co';
const CHECKPOINT_FILES = ['config.json', 'tokenizer.json', 'tokenizer_config.json'];

export async function loadHfCheckpoint(idOrDir: string, opts: LoadOptions = {}): Promise<HfCheckpoint> {
  const dir = existsSync(idOrDir) ? idOrDir : await downloadFromHub(idOrDir, opts);
  const configFile = path.join(dir, 'config.json');
  if (!existsSync(configFile)) throw new Error(`${configFile} does not exist`);
  const config = JSON.parse(await fs.readFile(configFile, 'utf8')) as HfConfig;
  if (typeof config.model_type !== 'string') throw new Error(`${configFile}: no model_type`);
  const weights = await readSafetensorsFolder(dir);
  const single = path.join(dir, 'model.safetensors');
  const weightsFile = existsSync(single) ? single : path.join(dir, 'model.safetensors.index.json');
  const checkpoint: HfCheckpoint = { dir, config, weights, weightsFile };
  const tokenizerFile = path.join(dir, 'tokenizer.json');
  if (existsSync(tokenizerFile)) checkpoint.tokenizer = JSON.parse(await fs.readFile(tokenizerFile, 'utf8'));
  const tokenizerConfigFile = path.join(dir, 'tokenizer_config.json');
  if (existsSync(tokenizerConfigFile)) {
    checkpoint.tokenizerConfig = JSON.parse(await fs.readFile(tokenizerConfigFile, 'utf8')) as Record<string, unknown>;
  }
  return checkpoint;
}

/** Downloads a Hub repository's config, tokenizer and safetensors weights into the cache; returns the folder. */
export async function downloadFromHub(id: string, opts: LoadOptions = {}): Promise<string> {
  if (!/^[\w.-]+(\/[\w.-]+)?$/.test(id)) throw new Error(`'${id}' is neither an existing folder nor a Hub model id`);
  const revision = opts.revision ?? 'main';
  const cacheDir = opts.cacheDir ?? path.join(process.env.HOME ?? '.', '.cache', 'tttnn', 'hub');
  const dir = path.join(cacheDir, id.replace('/', '--'), revision);
  const complete = path.join(dir, '.complete');
  if (existsSync(complete)) return dir;
  if (opts.localFilesOnly) throw new Error(`${id}@${revision} is not in the cache ${dir} and localFilesOnly is set`);
  opts.log?.(`downloading ${id}@${revision} from ${HUB} into ${dir}`);
  await fs.mkdir(dir, { recursive: true });

  const files = [...CHECKPOINT_FILES];
  const index = await fetchFile(id, revision, 'model.safetensors.index.json', dir, false);
  if (index) {
    const map = JSON.parse(await fs.readFile(index, 'utf8')) as { weight_map: Record<string, string> };
    files.push(...new Set(Object.values(map.weight_map)));
  } else {
    files.push('model.safetensors');
  }
  for (const file of files) await fetchFile(id, revision, file, dir, file !== 'tokenizer_config.json');
  await fs.writeFile(complete, new Date().toISOString());
  return dir;
}

async function fetchFile(
  id: string,
  rev: string,
  file: string,
  dir: string,
  required: boolean,
): Promise<string | undefined> {
  const dest = path.join(dir, file);
  if (existsSync(dest)) return dest;
  const url = `${HUB}/${id}/resolve/${encodeURIComponent(rev)}/${file}`;
  const res = await fetch(url);
  if (res.status === 404 && !required) return undefined;
  if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status}`);
  // Write to a temporary name first so that an interrupted download is never mistaken for a complete file.
  await fs.writeFile(`${dest}.partial`, Buffer.from(await res.arrayBuffer()));
  await fs.rename(`${dest}.partial`, dest);
  return dest;
}
