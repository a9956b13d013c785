import { createWriteStream, existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { readSafetensorsFolder, type TensorMap } from './safetensors';

/**
 * A Hugging Face checkpoint folder: `config.json`, `model.safetensors` (or sharded with an index) and
 * `tokenizer.json`. Folders are read locally; a Hub id is downloaded file by file into a local cache first
 * (`<cacheDir>/<owner>--<name>/<revision>/<file>`), the same options shape as transformers.js's hub.js, and the
 * same environment variables as huggingface_hub (HF_ENDPOINT, HF_HUB_OFFLINE, HF_TOKEN).
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
  /** Branch, tag or commit; default main. Each revision has its own cache folder. */
  revision?: string;
  cacheDir?: string;
  /** Never touch the network: a Hub id must already be in the cache. HF_HUB_OFFLINE=1 does the same. */
  localFilesOnly?: boolean;
  /** Hub base URL (a mirror or a private Hub); default $HF_ENDPOINT, else https://huggingface.co. */
  endpoint?: string;
  /** Access token for gated and private repositories, sent as `Authorization: Bearer`; default $HF_TOKEN. */
  token?: string;
  log?: (line: string) => void;
}

const DEFAULT_ENDPOINT = 'https://huggingface.co';
const CHECKPOINT_FILES = ['config.json', 'tokenizer.json', 'tokenizer_config.json'];

export interface HubSettings {
  endpoint: string;
  /** Why nothing may be downloaded ('localFilesOnly is set', 'HF_HUB_OFFLINE=1 is set'), or undefined. */
  offline?: string;
  token?: string;
}

/**
 * The options and environment variables that Hugging Face's own tools read, options first: HF_ENDPOINT (trailing
 * slashes dropped), HF_HUB_OFFLINE (1/ON/YES/TRUE, any case, as huggingface_hub parses it) and HF_TOKEN.
 */
export function hubSettings(opts: LoadOptions = {}, env: NodeJS.ProcessEnv = process.env): HubSettings {
  const endpoint = (opts.endpoint ?? env.HF_ENDPOINT ?? DEFAULT_ENDPOINT).replace(/\/+$/, '');
  if (!/^https?:\/\/[^/]+/.test(endpoint)) {
    const source = opts.endpoint !== undefined ? 'the endpoint option' : 'HF_ENDPOINT';
    throw new Error(`${source} '${endpoint}' is not an http(s) URL such as ${DEFAULT_ENDPOINT}`);
  }
  const settings: HubSettings = { endpoint };
  const offlineEnv = env.HF_HUB_OFFLINE;
  if (opts.localFilesOnly) settings.offline = 'localFilesOnly is set';
  else if (['1', 'ON', 'YES', 'TRUE'].includes(offlineEnv?.toUpperCase() ?? '')) {
    settings.offline = `HF_HUB_OFFLINE=${offlineEnv} is set`;
  }
  const token = opts.token ?? env.HF_TOKEN;
  if (token) settings.token = token;
  return settings;
}

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

/**
 * Downloads a Hub repository's config, tokenizer and safetensors weights (`{endpoint}/{id}/resolve/{revision}/{file}`,
 * the Hub's layout) into the cache; returns the folder. The files go to a temporary folder that is renamed into
 * place with its `.complete` marker only when every file has arrived, so an interrupted or failed download is never
 * taken for a checkpoint, and the files of one folder all come from one download (a branch may move in between).
 */
export async function downloadFromHub(id: string, opts: LoadOptions = {}): Promise<string> {
  if (!/^[\w.-]+(\/[\w.-]+)?$/.test(id)) throw new Error(`'${id}' is neither an existing folder nor a Hub model id`);
  const revision = opts.revision ?? 'main';
  // Branches, tags (refs/pr/1) and commits; never a path that climbs out of the cache.
  if (!/^[\w.\-/]+$/.test(revision) || revision.split('/').includes('..')) {
    throw new Error(`revision '${revision}' is not a branch, tag or commit name`);
  }
  const hub = hubSettings(opts);
  const cacheDir = opts.cacheDir ?? path.join(process.env.HOME ?? '.', '.cache', 'tttnn', 'hub');
  const dir = path.join(cacheDir, id.replace('/', '--'), revision);
  if (existsSync(path.join(dir, '.complete'))) return dir;
  if (hub.offline) {
    throw new Error(
      `${id}@${revision} is not in the cache ${dir} and ${hub.offline}: nothing is downloaded; ` +
        'load it once with network access, or pass a local folder',
    );
  }
  opts.log?.(`downloading ${id}@${revision} from ${hub.endpoint} into ${dir}`);
  await fs.mkdir(path.dirname(dir), { recursive: true });
  const tmp = await fs.mkdtemp(`${dir}.download-`);
  try {
    const get = (file: string, required: boolean) => fetchFile(hub, id, revision, file, tmp, required);
    const files = [...CHECKPOINT_FILES];
    const index = await get('model.safetensors.index.json', false);
    if (index) {
      const map = JSON.parse(await fs.readFile(index, 'utf8')) as { weight_map?: Record<string, string> };
      const shards = [...new Set(Object.values(map.weight_map ?? {}))];
      const bad = shards.find((f) => !/^[\w.-]+$/.test(f) || f.startsWith('.'));
      if (shards.length === 0 || bad !== undefined) {
        throw new Error(`${resolveUrl(hub, id, revision, 'model.safetensors.index.json')}: bad weight_map`);
      }
      files.push(...shards);
    } else {
      files.push('model.safetensors');
    }
    for (const file of files) await get(file, file !== 'tokenizer_config.json');
    await fs.writeFile(path.join(tmp, '.complete'), `${id}@${revision} from ${hub.endpoint}\n`);
    // Another process may have finished the same download meanwhile: keep its folder (it may be reading it).
    if (existsSync(path.join(dir, '.complete'))) return dir;
    await fs.rm(dir, { recursive: true, force: true }); // an incomplete folder left by an older version
    await fs.rename(tmp, dir);
    return dir;
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
}

function resolveUrl(hub: HubSettings, id: string, revision: string, file: string): string {
  return `${hub.endpoint}/${id}/resolve/${encodeURIComponent(revision)}/${file}`;
}

/** GETs one file into `dir`; undefined when an optional file does not exist (404). */
async function fetchFile(
  hub: HubSettings,
  id: string,
  revision: string,
  file: string,
  dir: string,
  required: boolean,
): Promise<string | undefined> {
  const url = resolveUrl(hub, id, revision, file);
  // fetch drops Authorization when it follows a redirect to another origin (the Hub sends weights to a CDN).
  const headers: Record<string, string> = hub.token ? { authorization: `Bearer ${hub.token}` } : {};
  const fail = (why: string) => new Error(`GET ${url}: ${why}`);
  let res: Response;
  try {
    res = await fetch(url, { headers });
  } catch (err) {
    const cause = (err as Error & { cause?: Error }).cause?.message ?? (err as Error).message;
    throw fail(`${cause} (is ${hub.endpoint} reachable? set HF_ENDPOINT for a mirror, HF_HUB_OFFLINE=1 for the cache)`);
  }
  if (res.status === 404 && !required) {
    await res.body?.cancel();
    return undefined;
  }
  if (!res.ok || !res.body) {
    await res.body?.cancel();
    const hint =
      res.status === 401 || res.status === 403
        ? ` (a private, gated or misspelt repository? ${hub.token ? 'the token was refused' : 'set HF_TOKEN'})`
        : res.status === 404
          ? ' (no such revision or file)'
          : '';
    throw fail(`HTTP ${res.status}${hint}`);
  }
  const dest = path.join(dir, file);
  try {
    await pipeline(Readable.fromWeb(res.body as WebReadableStream<Uint8Array>), createWriteStream(dest));
  } catch (err) {
    throw fail(`download interrupted: ${(err as Error).message}`);
  }
  return dest;
}
