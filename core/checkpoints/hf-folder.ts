import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { types } from 'node:util';
import {
  downloadFileToCacheDir,
  getHFHubCachePath,
  getRepoFolderName,
  HubApiError,
  modelInfo,
  pathsInfo,
} from '@huggingface/hub';
import { readSafetensorsFolder, type TensorMap } from './safetensors';

/**
 * A Hugging Face checkpoint folder: `config.json`, `model.safetensors` (or sharded with an index) and
 * `tokenizer.json`. Folders are read locally; a Hub id is downloaded with @huggingface/hub into the Hugging Face cache
 * first (the one Python's huggingface_hub fills, so what it downloaded is reused), with the same options shape as
 * transformers.js's hub.js and the same environment variables as huggingface_hub (HF_ENDPOINT, HF_HUB_OFFLINE,
 * HF_TOKEN, HF_HUB_CACHE, HF_HOME).
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
  /** Branch, tag or commit; default main. */
  revision?: string;
  /** The Hugging Face hub cache; default $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub. */
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
/** What a checkpoint folder must have beside its weights, and what it may have. */
const REQUIRED_FILES = ['config.json', 'tokenizer.json'];
const OPTIONAL_FILES = ['tokenizer_config.json'];
const WEIGHTS = 'model.safetensors';
const WEIGHTS_INDEX = 'model.safetensors.index.json';
const COMMIT_HASH = /^[0-9a-f]{40}$/;

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
 * Downloads a Hub repository's config, tokenizer and safetensors weights with @huggingface/hub into the Hugging Face
 * cache (`<cacheDir>/models--<owner>--<name>/`: `blobs/`, `snapshots/<commit>/` of links to them, `refs/<revision>`
 * holding the commit, as huggingface_hub lays it out); returns the snapshot folder. A revision already in the cache,
 * whoever downloaded it, is used without a request, so that loads repeat and need no network: to follow a branch
 * that moved on the Hub, pass its new commit as the revision. Downloads are pinned to the commit the revision named
 * when they started, so a branch that moves meanwhile cannot mix two commits' files, and the ref is written last. The
 * library writes each blob as `<blob>.incomplete` and renames it once the body has arrived in full, so an interrupted
 * file never shows in a snapshot; and a snapshot is only used when it has every file a checkpoint needs.
 */
export async function downloadFromHub(id: string, opts: LoadOptions = {}): Promise<string> {
  if (!/^[\w.-]+(\/[\w.-]+)?$/.test(id)) throw new Error(`'${id}' is neither an existing folder nor a Hub model id`);
  const revision = opts.revision ?? 'main';
  // Branches, tags (refs/pr/1) and commits; never a path that climbs out of the cache's refs folder.
  if (!/^[\w.\-/]+$/.test(revision) || revision.split('/').includes('..')) {
    throw new Error(`revision '${revision}' is not a branch, tag or commit name`);
  }
  const hub = hubSettings(opts);
  const repo = { type: 'model', name: id } as const;
  const cacheDir = opts.cacheDir ?? getHFHubCachePath();
  const repoDir = path.join(cacheDir, getRepoFolderName(repo));
  const cachedCommit = COMMIT_HASH.test(revision) ? revision : await readRef(repoDir, revision);
  if (cachedCommit && (await missingFiles(snapshotDir(repoDir, cachedCommit))).length === 0) {
    return snapshotDir(repoDir, cachedCommit);
  }
  if (hub.offline) {
    throw new Error(
      `${id}@${revision} is not in the cache ${repoDir} and ${hub.offline}: nothing is downloaded; ` +
        'load it once with network access, or pass a local folder',
    );
  }

  const request = { repo, hubUrl: hub.endpoint, accessToken: hub.token, fetch: hubFetch(hub) };
  const commit = COMMIT_HASH.test(revision)
    ? revision
    : (
        await withUrl(`${hub.endpoint}/api/models/${id}/revision/${encodeURIComponent(revision)}`, 'request', hub, () =>
          modelInfo({ ...request, name: id, revision, additionalFields: ['sha'] }),
        )
      ).sha;
  const dir = snapshotDir(repoDir, commit);
  opts.log?.(`downloading ${id}@${revision} (commit ${commit}) from ${hub.endpoint} into ${dir}`);

  const candidates = [...REQUIRED_FILES, ...OPTIONAL_FILES, WEIGHTS, WEIGHTS_INDEX];
  const listed = await withUrl(`${hub.endpoint}/api/models/${id}/paths-info/${commit}`, 'request', hub, () =>
    pathsInfo({ ...request, paths: candidates, revision: commit }),
  );
  const inRepo = new Set(listed.map((entry) => entry.path));
  const lacking = (what: string) =>
    new Error(`${id}@${revision} has no ${what} (${hub.endpoint}/${id}/tree/${encodeURIComponent(revision)})`);
  for (const file of REQUIRED_FILES) if (!inRepo.has(file)) throw lacking(file);
  const download = (file: string) =>
    withUrl(`${hub.endpoint}/${id}/resolve/${commit}/${file}`, 'download', hub, () =>
      downloadFileToCacheDir({ ...request, path: file, revision: commit, cacheDir }),
    );

  for (const file of [...REQUIRED_FILES, ...OPTIONAL_FILES]) {
    if (inRepo.has(file)) await download(file);
  }
  // The same choice as readSafetensorsFolder: the single file when there is one, else the index and its shards.
  if (inRepo.has(WEIGHTS)) {
    await download(WEIGHTS);
  } else if (inRepo.has(WEIGHTS_INDEX)) {
    await download(WEIGHTS_INDEX);
    for (const shard of await shardsOf(dir)) await download(shard);
  } else {
    throw lacking(`${WEIGHTS} or ${WEIGHTS_INDEX}`);
  }

  const missing = await missingFiles(dir);
  if (missing.length > 0) throw new Error(`${dir}: ${missing.join(', ')} missing after the download`);
  if (revision !== commit) {
    const ref = path.join(repoDir, 'refs', revision);
    await fs.mkdir(path.dirname(ref), { recursive: true });
    await fs.writeFile(ref, commit);
  }
  return dir;
}

function snapshotDir(repoDir: string, commit: string): string {
  return path.join(repoDir, 'snapshots', commit);
}

/** The commit that `refs/<revision>` names, when the cache has that ref. */
async function readRef(repoDir: string, revision: string): Promise<string | undefined> {
  try {
    const commit = (await fs.readFile(path.join(repoDir, 'refs', revision), 'utf8')).trim();
    return COMMIT_HASH.test(commit) ? commit : undefined;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * The files a checkpoint needs that `dir` lacks: config.json, tokenizer.json and the weights (model.safetensors, else
 * the index and every shard it names). A link to a blob that is not there counts as missing.
 */
async function missingFiles(dir: string): Promise<string[]> {
  const needed = [...REQUIRED_FILES];
  if (!existsSync(path.join(dir, WEIGHTS))) needed.push(WEIGHTS_INDEX, ...(await shardsOf(dir)));
  return needed.filter((file) => !existsSync(path.join(dir, file)));
}

/** The shard files that `dir`'s model.safetensors.index.json names; none when it has no index. */
async function shardsOf(dir: string): Promise<string[]> {
  const indexFile = path.join(dir, WEIGHTS_INDEX);
  if (!existsSync(indexFile)) return [];
  const index = JSON.parse(await fs.readFile(indexFile, 'utf8')) as { weight_map?: Record<string, string> };
  const shards = [...new Set(Object.values(index.weight_map ?? {}))];
  // Plain file names beside the index: a shard must not name a path elsewhere in the cache.
  if (shards.length === 0 || shards.some((file) => !/^[\w.-]+$/.test(file) || file.startsWith('.'))) {
    throw new Error(`${indexFile}: bad weight_map`);
  }
  return shards;
}

/** A request that never reached the Hub (refused, DNS, TLS); the message says what to check. */
class HubUnreachableError extends Error {}

/** fetch for the library, with a hint when the endpoint cannot be reached (undici says only 'fetch failed'). */
function hubFetch(hub: HubSettings): typeof fetch {
  return async (input, init) => {
    try {
      return await fetch(input, init);
    } catch (err) {
      const cause = (err as Error & { cause?: Error }).cause?.message ?? (err as Error).message;
      throw new HubUnreachableError(
        `${cause} (is ${hub.endpoint} reachable? set HF_ENDPOINT for a mirror, HF_HUB_OFFLINE=1 for the cache)`,
      );
    }
  };
}

/**
 * Runs one library call, its failure named by `url` (the library's own errors carry long query strings or a CDN's
 * signed URL) with a hint for the usual causes. The token never appears: neither the library nor we put it in a message.
 */
async function withUrl<T>(
  url: string,
  what: 'request' | 'download',
  hub: HubSettings,
  run: () => Promise<T>,
): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if (err instanceof HubApiError) {
      const hint =
        err.statusCode === 401 || err.statusCode === 403
          ? ` (a private, gated or misspelt repository? ${hub.token ? 'the token was refused' : 'set HF_TOKEN'})`
          : err.statusCode === 404
            ? ' (no such revision or file)'
            : '';
      throw new Error(`${url}: HTTP ${err.statusCode}${hint}`, { cause: err });
    }
    if (err instanceof HubUnreachableError) throw new Error(`${url}: ${err.message}`, { cause: err });
    // A body cut short reaches us as undici's 'terminated' with the socket's reason as its cause; the library
    // passes some stream failures on as bare strings. (isNativeError: Node's own errors may come from another realm.)
    const why = types.isNativeError(err) ? ((err.cause as Error | undefined)?.message ?? err.message) : String(err);
    throw new Error(`${url}: ${what} failed: ${why}`, { cause: err });
  }
}
