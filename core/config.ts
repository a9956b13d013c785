import { readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { z } from 'zod';
import { INDEX_KINDS, VECTOR_PRECISIONS } from './index/kinds';

/**
 * The one configuration object. Sources, later ones winning: defaults < config file < environment < flags.
 * Environment variables are `TTTNN_<SECTION>_<FIELD>` in SCREAMING_SNAKE_CASE (e.g. TTTNN_S3_ENDPOINT);
 * flags are `--set section.field=value`. Secrets are wrapped so that they never print.
 */

export class Secret {
  constructor(private readonly value: string) {}
  reveal(): string {
    return this.value;
  }
  toString(): string {
    return '***';
  }
  toJSON(): string {
    return '***';
  }
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return 'Secret(***)';
  }
}

const port = z.coerce.number().int().min(1).max(65535);
const positiveInt = z.coerce.number().int().positive();
const secret = z.union([z.string(), z.instanceof(Secret)]).transform((v) => (v instanceof Secret ? v : new Secret(v)));
const bool = z.union([z.boolean(), z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1')]);

const repoRoot = path.resolve(__dirname, __dirname.includes(`${path.sep}dist${path.sep}`) ? '../..' : '..');

/**
 * TensorFlow.js backends a run can ask for; 'auto' picks native TensorFlow when it loads (the CUDA build where
 * `tttnn setup --gpu` made one), else WASM, else JS; 'tensorflow-gpu' requires the CUDA build.
 */
export const BACKEND_CHOICES = ['auto', 'tensorflow', 'tensorflow-gpu', 'wasm', 'cpu'] as const;

export const configSchema = z.strictObject({
  /** Where local servers keep their data (SQLite, objects, logs, pid files). */
  home: z.string().default(path.join(repoRoot, '.tttnn')),
  /** Where pinned tool binaries are cached; shared by every clone on this machine. */
  toolsDir: z.string().default(path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'tttnn')),
  /** TensorFlow.js backend of model work: native TensorFlow when its binding loads, else WASM, else JS. */
  backend: z.enum(BACKEND_CHOICES).default('auto'),
  /** The language model: smollm2-135m (fetched by setup), a .gguf file or HF folder (local or s3://), or a Hub id. */
  model: z.string().min(1).default('smollm2-135m'),
  temporal: z
    .strictObject({
      address: z.string().default('127.0.0.1:7233'),
      namespace: z.string().default('default'),
      taskQueuePrefix: z
        .string()
        .regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, _ . - only')
        .default('tttnn'),
      /** Ports of the local dev server started by `tttnn infra up` (its gRPC port comes from `address`). */
      uiPort: port.default(8233),
      httpPort: port.default(7243),
      metricsPort: port.default(7244),
      ui: bool.default(true),
    })
    .prefault({}),
  s3: z
    .strictObject({
      endpoint: z.url().default('http://127.0.0.1:7070'),
      region: z.string().default('us-east-1'),
      accessKeyId: z.string().min(1).default('tttnn-local'),
      secretAccessKey: secret.default(new Secret('tttnn-local-secret')),
      forcePathStyle: bool.default(true),
      /** Start a local S3-compatible server (versitygw) on the endpoint's port with `tttnn infra up`. */
      local: bool.default(true),
      maxAttempts: positiveInt.default(5),
    })
    .prefault({}),
  worker: z
    .strictObject({
      queues: z
        .union([z.string().transform((s) => s.split(',').map((q) => q.trim())), z.array(z.string())])
        .pipe(z.array(z.enum(['cpu', 'gpu', 'index', 'retrieval'])).min(1))
        .default(['cpu']),
      /** Shard groups whose retrieval queues a `retrieval` worker serves: `0-3,8` (a build has ceil(shards/shardsPerGroup)). */
      retrievalGroups: z
        .string()
        .regex(/^\d+(-\d+)?(,\d+(-\d+)?)*$/, 'expected groups like 0-3,8')
        .default('0-7'),
      maxConcurrentActivities: positiveInt.default(2),
      shutdownGraceSeconds: positiveInt.default(30),
    })
    .prefault({}),
  ingest: z
    .strictObject({
      rowsPerShard: positiveInt.default(50_000),
      maxShardBytes: positiveInt.default(64 * 1024 * 1024),
      maxDocumentBytes: positiveInt.default(64 * 1024 * 1024),
      concurrency: positiveInt.default(4),
      heartbeatTimeoutSeconds: positiveInt.default(60),
    })
    .prefault({}),
  /** Index builds (`tttnn index build`) and search. */
  index: z
    .strictObject({
      /** Where builds go (`<root>/builds/<build id>/`) and `current.json` points at the one that serves. */
      root: z.string().min(1).default('s3://tttnn/indexes/default'),
      /** A named model (all-minilm-l6-v2), a model version URL or a local HF folder. */
      encoder: z.string().min(1).default('all-minilm-l6-v2'),
      /** Tokens of each document the encoder sees: its first ones (MiniLM's limit; the reference's RoBERTa: 512). */
      maxLength: positiveInt.default(256),
      batchSize: positiveInt.default(32),
      /** Documents per uploaded embedding segment: what a retried shard need not redo. */
      segmentRows: positiveInt.default(1024),
      /** How the embedding segments store vectors: float16 halves their size; indexes are built from float32. */
      vectorPrecision: z.enum(VECTOR_PRECISIONS).default('float32'),
      kind: z.enum(INDEX_KINDS).default('usearch'),
      /** Squared L2 ('l2sq', as faiss IndexFlatL2 and the reference) or cosine distance. */
      metric: z.enum(['l2sq', 'cos']).default('l2sq'),
      /** HNSW graph degree and beam widths (usearch, hnswlib); measured by `npm run bench:index`. */
      connectivity: positiveInt.default(16),
      expansionAdd: positiveInt.default(128),
      expansionSearch: positiveInt.default(64),
      /** Each shard's recall@k against exact search is measured at build time on this many of its vectors. */
      recallQueries: positiveInt.default(200),
      recallK: positiveInt.default(20),
      embedConcurrency: positiveInt.default(2),
      buildConcurrency: positiveInt.default(2),
      heartbeatTimeoutSeconds: positiveInt.default(300),
      /** Shards per retrieval group: each group is searched by one activity on its own queue (`…-retrieval-g<n>`). */
      shardsPerGroup: positiveInt.default(64),
      /** Neighbors farther than this are dropped (the reference: 4.0 in squared L2, which filters nothing). */
      maxDistance: z.coerce.number().positive().default(4),
    })
    .prefault({}),
  /** Evaluations (`tttnn eval start`): TTT-NN on test documents with the paper's settings, and its baselines. */
  eval: z
    .strictObject({
      /** Runs go to `<root>/runs/<run id>/`. */
      root: z.string().min(1).default('s3://tttnn/evals'),
      /** Test documents drawn per domain (seeded); `--ids` names them instead. */
      perDomain: positiveInt.default(10),
      seed: z.coerce.number().int().nonnegative().default(1216),
      /** Neighbors per document: 20 as the reproducibility report (the paper's headline: 50). */
      k: positiveInt.default(20),
      lr: z.coerce.number().positive().default(2e-5),
      /** Training chunk and evaluation window; 0 = 1024 on a GPU backend (`backend=tensorflow-gpu`), else 512. */
      maxLength: z.coerce.number().int().nonnegative().default(0),
      /** Neighbors are cut to their first tokens; 0 trains on whole neighbors, as the reference does. */
      maxNeighborTokens: z.coerce.number().int().nonnegative().default(0),
      /** Test documents larger than this are not drawn (explicit ids over it are skipped and counted). */
      maxDocumentBytes: positiveInt.default(1_000_000),
      /** Baselines computed on the same documents in the same run: random, dynamic, in-context. */
      baselines: z
        .union([
          z.string().transform((s) =>
            s
              .split(',')
              .map((b) => b.trim())
              .filter(Boolean),
          ),
          z.array(z.string()),
        ])
        .pipe(z.array(z.enum(['random', 'dynamic', 'in-context'])))
        .default(['random']),
      /** Leave out neighbors whose text equals the test document's (they are counted either way). */
      excludeExactCopies: bool.default(false),
      /** Dynamic evaluation: passes over the test document's first half (the paper reports 7). */
      dynamicIterations: positiveInt.default(7),
      /** Documents evaluated at once across the gpu-queue workers. */
      concurrency: positiveInt.default(1),
      /** A document's activity heartbeats after every neighbor: one neighbor's steps must fit in this. */
      heartbeatTimeoutSeconds: positiveInt.default(900),
    })
    .prefault({}),
});

export type Config = z.infer<typeof configSchema>;

/** TTTNN_ variables that steer the process rather than configure it. */
const PROCESS_VARIABLES = new Set(['TTTNN_CONFIG', 'TTTNN_DEBUG', 'TTTNN_LOG_LEVEL']);
type ConfigInput = z.input<typeof configSchema>;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export interface LoadConfigOptions {
  /** Path of a JSON config file; defaults to $TTTNN_CONFIG or ./tttnn.config.json when present. */
  file?: string;
  env?: NodeJS.ProcessEnv;
  /** `section.field=value` overrides, as given to `--set`. */
  overrides?: string[];
}

export function loadConfig(options: LoadConfigOptions = {}): Config {
  const env = options.env ?? process.env;
  const file = options.file ?? env.TTTNN_CONFIG ?? (existsSync('tttnn.config.json') ? 'tttnn.config.json' : undefined);
  const raw: Record<string, unknown> = file ? readConfigFile(file) : {};
  for (const [key, value] of Object.entries(env)) {
    if (!key.startsWith('TTTNN_') || PROCESS_VARIABLES.has(key) || value === undefined) continue;
    setPath(raw, envKeyToPath(key.slice('TTTNN_'.length)), value, `environment variable ${key}`);
  }
  for (const assignment of options.overrides ?? []) {
    const eq = assignment.indexOf('=');
    if (eq <= 0) throw new ConfigError(`--set ${assignment}: expected section.field=value`);
    setPath(raw, assignment.slice(0, eq).split('.'), assignment.slice(eq + 1), `--set ${assignment.slice(0, eq)}`);
  }
  return parseConfig(raw, file ? `config file ${file} + environment + flags` : 'environment + flags');
}

export function parseConfig(input: ConfigInput, source = 'configuration'): Config {
  const result = configSchema.safeParse(input);
  if (!result.success) {
    const lines = result.error.issues.map((issue) => `  ${issue.path.join('.') || '(root)'}: ${issue.message}`);
    throw new ConfigError(`invalid ${source}:\n${lines.join('\n')}`);
  }
  return result.data;
}

function readConfigFile(file: string): Record<string, unknown> {
  if (!existsSync(file)) throw new ConfigError(`config file ${file} does not exist`);
  try {
    const parsed: unknown = JSON.parse(readFileSync(file, 'utf8'));
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not a JSON object');
    return parsed as Record<string, unknown>;
  } catch (err) {
    throw new ConfigError(`config file ${file} is not valid JSON: ${(err as Error).message}`);
  }
}

const sections = new Set(Object.keys(configSchema.shape));

/** S3_SECRET_ACCESS_KEY -> ['s3', 'secretAccessKey']; TOOLS_DIR -> ['toolsDir']. */
function envKeyToPath(key: string): string[] {
  const camel = (parts: string[]) =>
    parts.map((p, i) => (i === 0 ? p.toLowerCase() : p[0]!.toUpperCase() + p.slice(1).toLowerCase())).join('');
  const parts = key.split('_');
  const section = parts[0]!.toLowerCase();
  if (parts.length > 1 && sections.has(section) && section !== camel(parts)) {
    return [section, camel(parts.slice(1))];
  }
  return [camel(parts)];
}

function setPath(target: Record<string, unknown>, keys: string[], value: unknown, source: string): void {
  let node = target;
  for (const key of keys.slice(0, -1)) {
    const next = node[key];
    if (next !== undefined && (typeof next !== 'object' || next === null)) {
      throw new ConfigError(`${source}: ${key} is not a section`);
    }
    node = (next as Record<string, unknown> | undefined) ?? (node[key] = {});
  }
  node[keys[keys.length - 1]!] = value;
}

/** Replace every secret of the config that occurs in a text (error messages from SDKs, logs). */
export function redact(text: string, config: Pick<Config, 's3'>): string {
  const secretValue = config.s3.secretAccessKey.reveal();
  return secretValue ? text.split(secretValue).join('***') : text;
}

/** `0-3,8` → [0, 1, 2, 3, 8]. */
export function parseGroups(spec: string): number[] {
  const groups = new Set<number>();
  for (const part of spec.split(',')) {
    const [from, to = from] = part.split('-').map(Number) as [number, number?];
    for (let g = from; g <= to; g++) groups.add(g);
  }
  return [...groups].sort((a, b) => a - b);
}
