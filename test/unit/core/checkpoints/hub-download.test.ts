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
 * The Hub download path, against a local HTTP server with the Hub's URL layout: `/{owner}/{name}/resolve/{revision}/
 * {file}`, 404 for a missing file, 401 for an unknown repository (or a missing token), and weights redirected to a
 * second server standing in for the Hub's CDN. Nothing is fetched from huggingface.co.
 */

interface Request {
  server: 'hub' | 'cdn';
  path: string;
  authorization?: string;
}

/** What the hub does instead of serving a file: an HTTP status, or close the connection halfway through. */
type Fault = number | 'truncate';

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
    const entry: Request = { server, path: req.url ?? '' };
    if (req.headers.authorization !== undefined) entry.authorization = req.headers.authorization;
    this.requests.push(entry);
  }

  private async serveHub(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    this.record('hub', req);
    const match = /^\/([\w.-]+\/[\w.-]+)\/resolve\/([^/]+)\/([\w.-]+)$/.exec(req.url ?? '');
    const repo = match && this.repos.get(`${match[1]}@${decodeURIComponent(match[2] as string)}`);
    if (!match || !repo || (this.requireToken && req.headers.authorization !== `Bearer ${this.requireToken}`)) {
      res.writeHead(401).end('Repository not found'); // what the Hub answers for unknown and private repositories
      return;
    }
    const file = match[3] as string;
    const fault = this.faults.get(file);
    if (typeof fault === 'number') {
      res.writeHead(fault).end();
    } else if (!existsSync(path.join(repo, file))) {
      res.writeHead(404, { 'x-error-code': 'EntryNotFound' }).end();
    } else if (file.endsWith('.safetensors')) {
      // Weights are LFS files: the Hub redirects them to its CDN.
      res.writeHead(302, { location: `${this.cdnUrl}/blobs/${encodeURIComponent(repo)}/${file}` }).end();
    } else {
      res.writeHead(200).end(await fs.readFile(path.join(repo, file)));
    }
  }

  private async serveCdn(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    this.record('cdn', req);
    const [, , folder, file] = (req.url ?? '').split('/');
    const body = await fs.readFile(path.join(decodeURIComponent(folder ?? ''), file ?? ''));
    if (this.faults.get(file ?? '') === 'truncate') {
      // Announce the whole file, send half, drop the connection: what a network failure mid-download looks like.
      res.writeHead(200, { 'content-length': body.length });
      res.write(body.subarray(0, body.length >> 1), () => res.destroy());
      return;
    }
    res.writeHead(200, { 'content-length': body.length }).end(body);
  }
}

const TINY = path.join(FIXTURES, 'tiny-gpt2');
const DOWNLOADED = ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'];
const HF_ENV = ['HF_ENDPOINT', 'HF_HUB_OFFLINE', 'HF_TOKEN'];

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

/** Logits of a fixed input, to compare two loads of the same weights. */
async function logitsOf(idOrDir: string, opts: Parameters<typeof loadCausalLM>[1] = {}): Promise<number[]> {
  const { model } = await loadCausalLM(idOrDir, { log: () => undefined, ...opts });
  const ids = tf.tensor2d([[5, 17, 42, 99, 7, 3, 250, 11]], undefined, 'int32');
  const logits = tf.tidy(() => Array.from(model.forward(ids).dataSync()));
  ids.dispose();
  model.dispose();
  return logits;
}

describe('Hub download (local server with the Hub URL layout)', () => {
  const hub = new FakeHub();
  const savedEnv: Record<string, string | undefined> = {};
  let scratch: string;
  let cacheDir: string;
  let localLogits: number[];

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
    hub.requests.length = 0;
    hub.faults.clear();
    delete hub.requireToken;
  });
  afterEach(() => {
    for (const name of HF_ENV) {
      if (savedEnv[name] === undefined) delete process.env[name];
      else process.env[name] = savedEnv[name];
    }
  });

  it('loads a Hub id from HF_ENDPOINT into the cache: same files and logits as the folder, then no requests', async () => {
    process.env.HF_ENDPOINT = `${hub.endpoint}/`; // a trailing slash, as people write it
    const lines: string[] = [];
    const logits = await logitsOf('tttnn/tiny-gpt2', { cacheDir, log: (l) => lines.push(l) });
    expect(logits).toEqual(localLogits);

    const dir = path.join(cacheDir, 'tttnn--tiny-gpt2', 'main');
    expect((await fs.readdir(dir)).sort()).toEqual(['.complete', ...DOWNLOADED]);
    for (const file of DOWNLOADED) {
      expect((await fs.readFile(path.join(dir, file))).equals(await fs.readFile(path.join(TINY, file)))).toBe(true);
    }
    // Nothing else lies beside the published folder (no temporary download folder left behind).
    expect(await fs.readdir(path.join(cacheDir, 'tttnn--tiny-gpt2'))).toEqual(['main']);
    expect(hub.requests.map((r) => `${r.server} ${r.path}`)).toEqual([
      'hub /tttnn/tiny-gpt2/resolve/main/model.safetensors.index.json',
      'hub /tttnn/tiny-gpt2/resolve/main/config.json',
      'hub /tttnn/tiny-gpt2/resolve/main/tokenizer.json',
      'hub /tttnn/tiny-gpt2/resolve/main/tokenizer_config.json',
      'hub /tttnn/tiny-gpt2/resolve/main/model.safetensors',
      `cdn /blobs/${encodeURIComponent(TINY)}/model.safetensors`,
    ]);
    expect(lines.join('\n')).toContain(`downloading tttnn/tiny-gpt2@main from ${hub.endpoint} into ${dir}`);

    const made = hub.requests.length;
    expect(await logitsOf('tttnn/tiny-gpt2', { cacheDir })).toEqual(localLogits);
    expect(hub.requests.length).toBe(made); // served from the cache
  });

  it('puts another revision (here sharded weights) in a folder of its own; the endpoint option beats HF_ENDPOINT', async () => {
    process.env.HF_ENDPOINT = 'http://127.0.0.1:9'; // nothing listens there
    const logits = await logitsOf('tttnn/tiny-gpt2', { cacheDir, revision: 'v1', endpoint: hub.endpoint });
    expect(logits).toEqual(localLogits);
    const dir = path.join(cacheDir, 'tttnn--tiny-gpt2', 'v1');
    expect((await fs.readdir(dir)).sort()).toEqual([
      '.complete',
      'config.json',
      'model-00001-of-00002.safetensors',
      'model-00002-of-00002.safetensors',
      'model.safetensors.index.json',
      'tokenizer.json',
      'tokenizer_config.json',
    ]);
    expect(existsSync(path.join(cacheDir, 'tttnn--tiny-gpt2', 'main'))).toBe(false);
    const hubPaths = hub.requests.filter((r) => r.server === 'hub').map((r) => r.path);
    expect(hubPaths.every((p) => p.startsWith('/tttnn/tiny-gpt2/resolve/v1/'))).toBe(true);
    expect(hubPaths).toContain('/tttnn/tiny-gpt2/resolve/v1/model-00002-of-00002.safetensors');
  });

  it.each<[string, string, Fault, RegExp]>([
    ['an HTTP 500 on the weights', 'model.safetensors', 500, /model\.safetensors: HTTP 500$/],
    ['a missing tokenizer.json', 'tokenizer.json', 404, /tokenizer\.json: HTTP 404 \(no such revision or file\)$/],
    ['a connection closed mid-file', 'model.safetensors', 'truncate', /model\.safetensors: download interrupted/],
  ])(
    'fails clearly on %s, naming the URL, and leaves nothing that passes for a download',
    async (_, file, fault, why) => {
      hub.faults.set(file, fault);
      const load = loadHfCheckpoint('tttnn/tiny-gpt2', { cacheDir, endpoint: hub.endpoint });
      await expect(load).rejects.toThrow(`GET ${hub.endpoint}/tttnn/tiny-gpt2/resolve/main/${file}: `);
      await expect(load).rejects.toThrow(why);
      // No checkpoint folder, no .complete marker, no half-written temporary folder.
      expect(await fs.readdir(path.join(cacheDir, 'tttnn--tiny-gpt2'))).toEqual([]);

      // Once the server behaves, the next load downloads everything again and succeeds.
      hub.faults.clear();
      const ckpt = await loadHfCheckpoint('tttnn/tiny-gpt2', { cacheDir, endpoint: hub.endpoint });
      expect(ckpt.dir).toBe(path.join(cacheDir, 'tttnn--tiny-gpt2', 'main'));
      expect(existsSync(path.join(ckpt.dir, '.complete'))).toBe(true);
      expect(ckpt.weights.size).toBe((await readSafetensorsFile(path.join(TINY, 'model.safetensors'))).size);
    },
  );

  it('with localFilesOnly or HF_HUB_OFFLINE=1 makes no request: a clear error on an empty cache, a load from a full one', async () => {
    const opts = { cacheDir, endpoint: hub.endpoint };
    const missing = `tttnn/tiny-gpt2@main is not in the cache ${path.join(cacheDir, 'tttnn--tiny-gpt2', 'main')} and`;
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
    expect(hubAuth).toHaveLength(5);
    expect(new Set(hubAuth)).toEqual(new Set(['Bearer hf_secret_for_tests']));
    const cdn = hub.requests.filter((r) => r.server === 'cdn');
    expect(cdn).toHaveLength(1);
    expect(cdn[0]?.authorization).toBeUndefined();
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.join('\n')).not.toContain('hf_secret_for_tests');
    expect(await fs.readFile(path.join(ckpt.dir, '.complete'), 'utf8')).not.toContain('hf_secret_for_tests');
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
