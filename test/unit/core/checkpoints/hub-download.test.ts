import { createHash } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { hubSettings, loadHfCheckpoint } from '../../../../core/checkpoints/hf-folder';
import { readSafetensorsFile, serializeSafetensors } from '../../../../core/checkpoints/safetensors';
import { loadCausalLM } from '../../../../core/models/registry';
import { FIXTURES } from '../../../helpers/parity';

/**
 * The Hub download path (@huggingface/hub), against a local HTTP server that answers what the library asks, in the
 * Hub's format: `GET /api/models/{id}/revision/{revision}` (the commit, as `sha`), `POST /api/models/{id}/paths-info/
 * {revision}` (size, git oid, LFS sha256 and last commit of the files that exist) and `/{id}/resolve/{revision}/{file}`
 * (ranges, `ETag`, `X-Repo-Commit`; 404 with `X-Error-Code: EntryNotFound` for a missing file, 401 for an unknown
 * repository or a missing token), with weights redirected to a second server standing in for the Hub's CDN. Nothing is
 * fetched from huggingface.co.
 */

interface Request {
  server: 'hub' | 'cdn';
  method: string;
  path: string;
  /** Range requests are the library's probes for size and ETag; a download is a GET without one. */
  range?: string;
  authorization?: string;
}

/**
 * What the hub does instead of serving a file: an HTTP status (404: the file is not in the repository), or, on the
 * CDN, close the connection halfway through.
 */
type Fault = number | 'truncate';

/** The blob name the Hub gives a file: the sha256 of an LFS file (here the weights), else its git blob oid. */
function blobName(file: string, body: Buffer): string {
  if (file.endsWith('.safetensors')) return createHash('sha256').update(body).digest('hex');
  return gitOid(body);
}

function gitOid(body: Buffer): string {
  return createHash('sha1').update(`blob ${body.length}\0`).update(body).digest('hex');
}

/** A fixed commit id per `owner/name@revision`. */
function commitOf(repoRevision: string): string {
  return createHash('sha1').update(`commit ${repoRevision}`).digest('hex');
}

class FakeHub {
  readonly requests: Request[] = [];
  /** `owner/name@revision` to the folder served for it. */
  readonly repos = new Map<string, string>();
  readonly faults = new Map<string, Fault>();
  requireToken?: string;
  endpoint = '';
  private readonly hub = http.createServer((req, res) => void this.serveHub(req, res));
  private readonly cdn = http.createServer((req, res) => void this.serveCdn(req, res));
  private cdnUrl = '';

  async start(): Promise<void> {
    const listen = (server: http.Server) =>
      new Promise<string>((resolve) =>
        server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)),
      );
    this.endpoint = await listen(this.hub);
    this.cdnUrl = await listen(this.cdn);
  }

  async stop(): Promise<void> {
    for (const server of [this.hub, this.cdn]) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  }

  private record(server: Request['server'], req: http.IncomingMessage): void {
    const entry: Request = { server, method: req.method ?? '', path: req.url ?? '' };
    if (req.headers.range !== undefined) entry.range = req.headers.range;
    if (req.headers.authorization !== undefined) entry.authorization = req.headers.authorization;
    this.requests.push(entry);
  }

  /** The folder and commit a revision (a branch, tag or commit id) of a repository names. */
  private find(id: string, revision: string): { folder: string; commit: string } | undefined {
    for (const [key, folder] of this.repos) {
      const commit = commitOf(key);
      if (key.startsWith(`${id}@`) && (key === `${id}@${revision}` || revision === commit)) return { folder, commit };
    }
    return undefined;
  }

  /** A file the repository has: on disk and not hidden by a 404 fault. */
  private async read(folder: string, file: string): Promise<Buffer | undefined> {
    if (this.faults.get(file) === 404 || !existsSync(path.join(folder, file))) return undefined;
    return fs.readFile(path.join(folder, file));
  }

  private async serveHub(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    this.record('hub', req);
    let body = '';
    for await (const chunk of req) body += String(chunk);
    const json = (status: number, value: unknown, headers: Record<string, string> = {}) =>
      res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(value));

    const url = new URL(req.url ?? '', this.endpoint);
    const match =
      /^\/api\/models\/([\w.-]+\/[\w.-]+)\/(revision|paths-info)\/([^/]+)$/.exec(url.pathname) ??
      /^\/([\w.-]+\/[\w.-]+)\/(resolve)\/([^/]+)\/([\w.-]+)$/.exec(url.pathname);
    const [, id = '', route = '', revision = '', file = ''] = match ?? [];
    const known = [...this.repos.keys()].some((key) => key.startsWith(`${id}@`));
    if (!match || !known || (this.requireToken && req.headers.authorization !== `Bearer ${this.requireToken}`)) {
      // What the Hub answers for unknown and private repositories alike.
      json(401, { error: 'Repository not found' }, { 'x-error-code': 'RepoNotFound' });
      return;
    }
    const repo = this.find(id, decodeURIComponent(revision));
    if (!repo) {
      json(404, { error: `Invalid rev id: ${revision}` }, { 'x-error-code': 'RevisionNotFound' });
      return;
    }
    if (route === 'revision') {
      const lastModified = '2024-01-01T00:00:00.000Z';
      json(200, { _id: id, id, private: false, downloads: 0, likes: 0, gated: false, lastModified, sha: repo.commit });
    } else if (route === 'paths-info') {
      const request = JSON.parse(body) as { paths: string[]; expand?: boolean };
      const entries = [];
      for (const file of request.paths) {
        const content = await this.read(repo.folder, file);
        if (!content) continue; // the Hub leaves out paths that do not exist
        const lfs = file.endsWith('.safetensors');
        const pointer = `version https://git-lfs.github.com/spec/v1\noid sha256:${blobName(file, content)}\nsize ${content.length}\n`;
        entries.push({
          type: 'file',
          path: file,
          size: content.length,
          oid: gitOid(lfs ? Buffer.from(pointer) : content),
          ...(lfs && { lfs: { oid: blobName(file, content), size: content.length, pointerSize: pointer.length } }),
          ...(request.expand && { lastCommit: { id: repo.commit, title: 'Upload', date: '2024-01-01T00:00:00.000Z' } }),
        });
      }
      json(200, entries);
    } else {
      const fault = this.faults.get(file);
      const content = await this.read(repo.folder, file);
      if (typeof fault === 'number' && fault !== 404) {
        res.writeHead(fault).end();
      } else if (!content) {
        res.writeHead(404, { 'x-error-code': 'EntryNotFound' }).end();
      } else if (file.endsWith('.safetensors')) {
        // Weights are LFS files: the Hub redirects them to its CDN, saying what the CDN will send.
        res
          .writeHead(302, {
            location: `${this.cdnUrl}/blobs/${encodeURIComponent(repo.folder)}/${file}`,
            'x-repo-commit': repo.commit,
            'x-linked-etag': `"${blobName(file, content)}"`,
            'x-linked-size': String(content.length),
          })
          .end();
      } else {
        send(req, res, content, { etag: `"${gitOid(content)}"`, 'x-repo-commit': repo.commit });
      }
    }
  }

  private async serveCdn(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    this.record('cdn', req);
    const [, , folder, file] = (req.url ?? '').split('/');
    const body = await fs.readFile(path.join(decodeURIComponent(folder ?? ''), file ?? ''));
    if (this.faults.get(file ?? '') === 'truncate' && req.headers.range === undefined) {
      // Announce the whole file, send half, drop the connection: what a network failure mid-download looks like.
      res.writeHead(200, { 'content-length': body.length });
      res.write(body.subarray(0, body.length >> 1), () => res.destroy());
      return;
    }
    send(req, res, body, { etag: `"${blobName(file ?? '', body)}"` });
  }
}

/** Answers a GET with the whole body, or with the part that a `Range: bytes=a-b` header asks for. */
function send(req: http.IncomingMessage, res: http.ServerResponse, body: Buffer, headers: Record<string, string>) {
  const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
  if (!range) {
    res.writeHead(200, { ...headers, 'accept-ranges': 'bytes', 'content-length': body.length }).end(body);
    return;
  }
  const start = Number(range[1]);
  const end = Math.min(range[2] ? Number(range[2]) : body.length - 1, body.length - 1);
  res
    .writeHead(206, {
      ...headers,
      'content-range': `bytes ${start}-${end}/${body.length}`,
      'content-length': end - start + 1,
    })
    .end(body.subarray(start, end + 1));
}

const TINY = path.join(FIXTURES, 'tiny-gpt2');
const DOWNLOADED = ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'];
const HF_ENV = ['HF_ENDPOINT', 'HF_HUB_OFFLINE', 'HF_TOKEN', 'HF_HUB_CACHE', 'HUGGINGFACE_HUB_CACHE', 'HF_HOME'];
const MAIN = commitOf('tttnn/tiny-gpt2@main');

/** tiny-gpt2 with its weights in two shards and a model.safetensors.index.json, as save_pretrained writes them. */
async function shardedCopy(dir: string): Promise<void> {
  for (const file of DOWNLOADED.filter((f) => f !== 'model.safetensors')) {
    await fs.copyFile(path.join(TINY, file), path.join(dir, file));
  }
  const tensors = [...(await readSafetensorsFile(path.join(TINY, 'model.safetensors')))];
  const half = Math.ceil(tensors.length / 2);
  const weightMap: Record<string, string> = {};
  for (const [i, part] of [tensors.slice(0, half), tensors.slice(half)].entries()) {
    const file = `model-0000${i + 1}-of-00002.safetensors`;
    await fs.writeFile(path.join(dir, file), serializeSafetensors(new Map(part)));
    for (const [name] of part) weightMap[name] = file;
  }
  await fs.writeFile(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: weightMap }));
}

/**
 * What huggingface_hub's snapshot_download leaves in a cache for tttnn/tiny-gpt2@main: each file once in `blobs/`,
 * relative links to them in `snapshots/<commit>/`, and `refs/main` holding the commit (no newline).
 */
async function pythonCache(cacheDir: string, files: string[]): Promise<string> {
  const repoDir = path.join(cacheDir, 'models--tttnn--tiny-gpt2');
  const snapshot = path.join(repoDir, 'snapshots', MAIN);
  await fs.mkdir(path.join(repoDir, 'blobs'), { recursive: true });
  await fs.mkdir(snapshot, { recursive: true });
  await fs.mkdir(path.join(repoDir, 'refs'));
  for (const file of files) {
    const body = await fs.readFile(path.join(TINY, file));
    await fs.writeFile(path.join(repoDir, 'blobs', blobName(file, body)), body);
    await fs.symlink(path.join('..', '..', 'blobs', blobName(file, body)), path.join(snapshot, file));
  }
  await fs.writeFile(path.join(repoDir, 'refs', 'main'), MAIN);
  return snapshot;
}

/** Logits of a fixed input, to compare two loads of the same weights. */
async function logitsOf(idOrDir: string, opts: Parameters<typeof loadCausalLM>[1] = {}): Promise<number[]> {
  const { model } = await loadCausalLM(idOrDir, { log: () => undefined, ...opts });
  const ids = tf.tensor2d([[5, 17, 42, 99, 7, 3, 250, 11]], undefined, 'int32');
  const logits = tf.tidy(() => Array.from(model.forward(ids).dataSync()));
  ids.dispose();
  model.dispose();
  return logits;
}

describe('Hub download (local server with the Hub API and URL layout)', () => {
  const hub = new FakeHub();
  const savedEnv: Record<string, string | undefined> = {};
  let scratch: string;
  let cacheDir: string;
  let repoDir: string;
  let localLogits: number[];
  /** The files the library downloaded in full (not its range probes nor API calls), by URL path. */
  const downloads = () =>
    hub.requests
      .filter((r) => r.method === 'GET' && r.range === undefined && !r.path.startsWith('/api/'))
      .map((r) => r.path);

  beforeAll(async () => {
    scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'tttnn-hub-'));
    const sharded = path.join(scratch, 'sharded');
    await fs.mkdir(sharded);
    await shardedCopy(sharded);
    hub.repos.set('tttnn/tiny-gpt2@main', TINY);
    hub.repos.set('tttnn/tiny-gpt2@v1', sharded);
    await hub.start();
    localLogits = await logitsOf(TINY);
  });
  afterAll(async () => {
    await hub.stop();
    await fs.rm(scratch, { recursive: true, force: true });
  });

  beforeEach(async () => {
    // The machine's own Hub settings must not leak into the tests.
    for (const name of HF_ENV) {
      savedEnv[name] = process.env[name];
      delete process.env[name];
    }
    cacheDir = await fs.mkdtemp(path.join(scratch, 'cache-'));
    repoDir = path.join(cacheDir, 'models--tttnn--tiny-gpt2');
    hub.requests.length = 0;
    hub.faults.clear();
    delete hub.requireToken;
    jest.spyOn(console, 'debug').mockImplementation(() => undefined); // the library's line per downloaded file
  });
  afterEach(() => {
    jest.restoreAllMocks();
    for (const name of HF_ENV) {
      if (savedEnv[name] === undefined) delete process.env[name];
      else process.env[name] = savedEnv[name];
    }
  });

  it('loads a Hub id from HF_ENDPOINT into the HF cache layout: same files and logits as the folder, then no requests', async () => {
    process.env.HF_ENDPOINT = `${hub.endpoint}/`; // a trailing slash, as people write it
    const lines: string[] = [];
    const logits = await logitsOf('tttnn/tiny-gpt2', { cacheDir, log: (l) => lines.push(l) });
    expect(logits).toEqual(localLogits);

    const dir = path.join(repoDir, 'snapshots', MAIN);
    expect((await fs.readdir(dir)).sort()).toEqual(DOWNLOADED);
    const blobs: string[] = [];
    for (const file of DOWNLOADED) {
      const body = await fs.readFile(path.join(TINY, file));
      blobs.push(blobName(file, body));
      expect(await fs.readlink(path.join(dir, file))).toBe(path.join('..', '..', 'blobs', blobName(file, body)));
      expect((await fs.readFile(path.join(dir, file))).equals(body)).toBe(true);
    }
    // Blobs named by git oid / sha256, no `.incomplete` left, the branch pointing at its commit.
    expect((await fs.readdir(path.join(repoDir, 'blobs'))).sort()).toEqual(blobs.sort());
    expect((await fs.readdir(repoDir)).sort()).toEqual(['blobs', 'refs', 'snapshots']);
    expect(await fs.readFile(path.join(repoDir, 'refs', 'main'), 'utf8')).toBe(MAIN);

    // The branch is resolved to its commit once; every file comes from that commit, the weights from the CDN.
    expect(hub.requests[0]?.path).toMatch(/^\/api\/models\/tttnn\/tiny-gpt2\/revision\/main\?/);
    expect(downloads()).toEqual([
      ...['config.json', 'tokenizer.json', 'tokenizer_config.json', 'model.safetensors'].map(
        (file) => `/tttnn/tiny-gpt2/resolve/${MAIN}/${file}`,
      ),
      `/blobs/${encodeURIComponent(TINY)}/model.safetensors`,
    ]);
    expect(lines.join('\n')).toContain(
      `downloading tttnn/tiny-gpt2@main (commit ${MAIN}) from ${hub.endpoint} into ${dir}`,
    );

    const made = hub.requests.length;
    expect(await logitsOf('tttnn/tiny-gpt2', { cacheDir })).toEqual(localLogits);
    expect(hub.requests.length).toBe(made); // served from the cache
  });

  it('puts another revision (here sharded weights) in a snapshot of its own; the endpoint option beats HF_ENDPOINT', async () => {
    process.env.HF_ENDPOINT = 'http://127.0.0.1:9'; // nothing listens there
    const logits = await logitsOf('tttnn/tiny-gpt2', { cacheDir, revision: 'v1', endpoint: hub.endpoint });
    expect(logits).toEqual(localLogits);
    const v1 = commitOf('tttnn/tiny-gpt2@v1');
    expect((await fs.readdir(path.join(repoDir, 'snapshots', v1))).sort()).toEqual([
      'config.json',
      'model-00001-of-00002.safetensors',
      'model-00002-of-00002.safetensors',
      'model.safetensors.index.json',
      'tokenizer.json',
      'tokenizer_config.json',
    ]);
    expect(await fs.readdir(path.join(repoDir, 'snapshots'))).toEqual([v1]);
    expect(await fs.readdir(path.join(repoDir, 'refs'))).toEqual(['v1']);
    const hubPaths = hub.requests.filter((r) => r.server === 'hub').map((r) => r.path);
    expect(hubPaths.every((p) => p.includes('/revision/v1?') || p.includes(`/${v1}`))).toBe(true);
    expect(downloads()).toContain(`/tttnn/tiny-gpt2/resolve/${v1}/model-00002-of-00002.safetensors`);

    // A commit id is its own revision: loaded from the cache with no request, no ref written for it.
    hub.requests.length = 0;
    const pinned = await loadHfCheckpoint('tttnn/tiny-gpt2', { cacheDir, revision: v1, endpoint: hub.endpoint });
    expect(pinned.dir).toBe(path.join(repoDir, 'snapshots', v1));
    expect(hub.requests).toEqual([]);
    expect(await fs.readdir(path.join(repoDir, 'refs'))).toEqual(['v1']);
  });

  it.each<[string, string, Fault, (endpoint: string) => string]>([
    [
      'an HTTP 500 on the weights',
      'model.safetensors',
      500,
      (endpoint) => `${endpoint}/tttnn/tiny-gpt2/resolve/${MAIN}/model.safetensors: HTTP 500`,
    ],
    [
      'a repository without tokenizer.json',
      'tokenizer.json',
      404,
      (endpoint) => `tttnn/tiny-gpt2@main has no tokenizer.json (${endpoint}/tttnn/tiny-gpt2/tree/main)`,
    ],
    [
      'a connection closed mid-file',
      'model.safetensors',
      'truncate',
      (endpoint) => `${endpoint}/tttnn/tiny-gpt2/resolve/${MAIN}/model.safetensors: download failed: other side closed`,
    ],
  ])(
    'fails clearly on %s, naming the URL, and leaves nothing that passes for a download',
    async (_, file, fault, why) => {
      hub.faults.set(file, fault);
      const opts = { cacheDir, endpoint: hub.endpoint };
      await expect(loadHfCheckpoint('tttnn/tiny-gpt2', opts)).rejects.toHaveProperty('message', why(hub.endpoint));
      // No ref, no blob (at most `<blob>.incomplete`) and no link for the file: the cache does not pass for the
      // revision, offline or not.
      expect(existsSync(path.join(repoDir, 'refs'))).toBe(false);
      const blob = blobName(file, await fs.readFile(path.join(TINY, file)));
      expect(existsSync(path.join(repoDir, 'blobs', blob))).toBe(false);
      expect(existsSync(path.join(repoDir, 'snapshots', MAIN, file))).toBe(false);
      await expect(loadHfCheckpoint('tttnn/tiny-gpt2', { ...opts, localFilesOnly: true })).rejects.toThrow(
        'is not in the cache',
      );

      // Once the server behaves, the next load fetches what is missing and succeeds.
      hub.faults.clear();
      const ckpt = await loadHfCheckpoint('tttnn/tiny-gpt2', opts);
      expect(ckpt.dir).toBe(path.join(repoDir, 'snapshots', MAIN));
      expect(ckpt.weights.size).toBe((await readSafetensorsFile(path.join(TINY, 'model.safetensors'))).size);
      expect(await fs.readFile(path.join(repoDir, 'refs', 'main'), 'utf8')).toBe(MAIN);
    },
  );

  it('names an unknown revision, an unreachable endpoint and ids or revisions it will not use', async () => {
    const opts = { cacheDir, endpoint: hub.endpoint };
    await expect(loadHfCheckpoint('tttnn/tiny-gpt2', { ...opts, revision: 'nope' })).rejects.toHaveProperty(
      'message',
      `${hub.endpoint}/api/models/tttnn/tiny-gpt2/revision/nope: HTTP 404 (no such revision or file)`,
    );
    const closed = http.createServer();
    const unreachable = await new Promise<string>((resolve) =>
      closed.listen(0, '127.0.0.1', () => resolve(`127.0.0.1:${(closed.address() as AddressInfo).port}`)),
    );
    await new Promise((resolve) => closed.close(resolve)); // nothing listens there any more
    await expect(loadHfCheckpoint('tttnn/tiny-gpt2', { ...opts, endpoint: `http://${unreachable}` })).rejects.toThrow(
      `http://${unreachable}/api/models/tttnn/tiny-gpt2/revision/main: connect ECONNREFUSED ${unreachable} ` +
        `(is http://${unreachable} reachable? set HF_ENDPOINT for a mirror, HF_HUB_OFFLINE=1 for the cache)`,
    );
    await expect(loadHfCheckpoint('tttnn/tiny/gpt2', opts)).rejects.toThrow('is neither an existing folder nor a Hub');
    await expect(loadHfCheckpoint('tttnn/tiny-gpt2', { ...opts, revision: '../../x' })).rejects.toThrow(
      "revision '../../x' is not a branch, tag or commit name",
    );
    expect(existsSync(repoDir)).toBe(false);
  });

  it('with localFilesOnly or HF_HUB_OFFLINE=1 makes no request: a clear error on an empty cache, a load from a full one', async () => {
    const opts = { cacheDir, endpoint: hub.endpoint };
    const missing = `tttnn/tiny-gpt2@main is not in the cache ${repoDir} and`;
    await expect(loadHfCheckpoint('tttnn/tiny-gpt2', { ...opts, localFilesOnly: true })).rejects.toThrow(
      `${missing} localFilesOnly is set: nothing is downloaded`,
    );
    process.env.HF_HUB_OFFLINE = '1';
    await expect(loadHfCheckpoint('tttnn/tiny-gpt2', opts)).rejects.toThrow(
      `${missing} HF_HUB_OFFLINE=1 is set: nothing is downloaded`,
    );
    expect(hub.requests).toEqual([]);

    delete process.env.HF_HUB_OFFLINE;
    await loadHfCheckpoint('tttnn/tiny-gpt2', opts);
    const made = hub.requests.length;
    process.env.HF_HUB_OFFLINE = 'true';
    expect((await loadHfCheckpoint('tttnn/tiny-gpt2', opts)).config.model_type).toBe('gpt2');
    expect(hub.requests.length).toBe(made);
  });

  it('reuses what huggingface_hub put in $HF_HUB_CACHE or $HF_HOME/hub: offline with no request, and fetches only what it lacks', async () => {
    const snapshot = await pythonCache(cacheDir, DOWNLOADED);
    process.env.HF_HUB_CACHE = cacheDir;
    process.env.HF_HUB_OFFLINE = '1';
    expect(await logitsOf('tttnn/tiny-gpt2')).toEqual(localLogits);
    delete process.env.HF_HUB_OFFLINE;
    expect((await loadHfCheckpoint('tttnn/tiny-gpt2', { endpoint: hub.endpoint })).dir).toBe(snapshot);
    expect(hub.requests).toEqual([]);

    // HF_HOME/hub when HF_HUB_CACHE is unset; a snapshot that lacks tokenizer.json is not a checkpoint.
    delete process.env.HF_HUB_CACHE;
    const home = await fs.mkdtemp(path.join(scratch, 'home-'));
    process.env.HF_HOME = home;
    const partial = await pythonCache(path.join(home, 'hub'), ['config.json', 'model.safetensors']);
    await expect(loadHfCheckpoint('tttnn/tiny-gpt2', { localFilesOnly: true })).rejects.toThrow(
      `tttnn/tiny-gpt2@main is not in the cache ${path.join(home, 'hub', 'models--tttnn--tiny-gpt2')}`,
    );
    const ckpt = await loadHfCheckpoint('tttnn/tiny-gpt2', { endpoint: hub.endpoint });
    expect(ckpt.dir).toBe(partial);
    expect(ckpt.tokenizer).toBeDefined();
    expect(downloads()).toEqual(
      ['tokenizer.json', 'tokenizer_config.json'].map((file) => `/tttnn/tiny-gpt2/resolve/${MAIN}/${file}`),
    );
  });

  it('sends HF_TOKEN as a bearer token to the Hub only, not to the CDN it redirects to, and never prints it', async () => {
    hub.requireToken = 'hf_secret_for_tests';
    const lines: string[] = [];
    const opts = { cacheDir, endpoint: hub.endpoint, log: (l: string) => lines.push(l) };
    const anonymous = loadHfCheckpoint('tttnn/tiny-gpt2', opts);
    await expect(anonymous).rejects.toThrow(/HTTP 401 \(a private, gated or misspelt repository\? set HF_TOKEN\)$/);

    process.env.HF_TOKEN = 'hf_wrong_token';
    const wrong = loadHfCheckpoint('tttnn/tiny-gpt2', opts).catch((err: Error) => err.message);
    expect(await wrong).toMatch(/the token was refused/);
    expect(await wrong).not.toContain('hf_wrong_token');

    process.env.HF_TOKEN = 'hf_secret_for_tests';
    hub.requests.length = 0;
    const ckpt = await loadHfCheckpoint('tttnn/tiny-gpt2', opts);
    expect(ckpt.config.model_type).toBe('gpt2');
    const hubAuth = hub.requests.filter((r) => r.server === 'hub').map((r) => r.authorization);
    expect(hubAuth.length).toBeGreaterThan(DOWNLOADED.length);
    expect(new Set(hubAuth)).toEqual(new Set(['Bearer hf_secret_for_tests']));
    const cdn = hub.requests.filter((r) => r.server === 'cdn');
    expect(cdn.length).toBeGreaterThan(0);
    expect(cdn.every((r) => r.authorization === undefined)).toBe(true);
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.join('\n')).not.toContain('hf_secret_for_tests');
  });
});

describe('hubSettings', () => {
  it('reads HF_ENDPOINT, HF_HUB_OFFLINE and HF_TOKEN as huggingface_hub does, options first', () => {
    expect(hubSettings({}, {})).toEqual({ endpoint: 'https://huggingface.co' });
    expect(hubSettings({}, { HF_ENDPOINT: 'https://hf-mirror.example//' }).endpoint).toBe('https://hf-mirror.example');
    expect(hubSettings({ endpoint: 'http://127.0.0.1:1' }, { HF_ENDPOINT: 'https://x.example' }).endpoint).toBe(
      'http://127.0.0.1:1',
    );
    expect(() => hubSettings({}, { HF_ENDPOINT: 'huggingface.co' })).toThrow(
      "HF_ENDPOINT 'huggingface.co' is not an http(s) URL",
    );
    for (const on of ['1', 'ON', 'yes', 'True']) expect(hubSettings({}, { HF_HUB_OFFLINE: on }).offline).toBeDefined();
    for (const off of ['0', 'false', 'no', ''])
      expect(hubSettings({}, { HF_HUB_OFFLINE: off }).offline).toBeUndefined();
    expect(hubSettings({ localFilesOnly: true }, {}).offline).toBe('localFilesOnly is set');
    expect(hubSettings({}, { HF_TOKEN: 'hf_a' }).token).toBe('hf_a');
    expect(hubSettings({ token: 'hf_b' }, { HF_TOKEN: 'hf_a' }).token).toBe('hf_b');
    expect(hubSettings({}, { HF_TOKEN: '' }).token).toBeUndefined();
  });
});
