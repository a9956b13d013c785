import { readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { z } from 'zod';
import { INDEX_KINDS, VECTOR_PRECISIONS } from './index/kinds';
import { DEFAULT_SIFT_LAMBDA, DEFAULT_SIFT_POOL } from './selection/sift';

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

/** The project's folder, from its sources (tests) or from `dist/` alike. */
export const PROJECT_ROOT = path.resolve(__dirname, __dirname.includes(`${path.sep}dist${path.sep}`) ? '../..' : '..');

/**
 * TensorFlow.js backends a run can ask for; 'auto' picks native TensorFlow when it loads (the CUDA build where
 * `tttnn setup --gpu` made one), else WASM, else JS; 'tensorflow-gpu' requires the CUDA build.
 */
export const BACKEND_CHOICES = ['auto', 'tensorflow', 'tensorflow-gpu', 'wasm', 'cpu'] as const;

/** Float32 matrix-multiply precision, named as `torch.set_float32_matmul_precision` names it (core/backend.ts). */
export const MATMUL_PRECISIONS = ['highest', 'high', 'medium'] as const;

export const configSchema = z.strictObject({
  home: z
    .string()
    .default(path.join(PROJECT_ROOT, '.tttnn'))
    .meta({
      description:
        'Where the local servers of `tttnn infra up` keep their data: the Temporal SQLite file (`temporal/`), the ' +
        "S3 server's objects (`s3/`), logs and pid files. Default: `.tttnn/` in the repository.",
      docDefault: '<repo>/.tttnn',
    }),
  toolsDir: z
    .string()
    .default(path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'tttnn'))
    .meta({
      description:
        'Where pinned tool binaries, native TensorFlow and models are cached, and where workers cache the corpus ' +
        'shards (`corpus-cache/`) and index files (`index-cache/`) they read; shared by every clone on this ' +
        'machine. Default: `$XDG_CACHE_HOME/tttnn`, else `~/.cache/tttnn`.',
      docDefault: '~/.cache/tttnn',
    }),
  backend: z
    .enum(BACKEND_CHOICES)
    .default('auto')
    .describe(
      'TensorFlow.js backend of model work: `auto` picks native TensorFlow when its binding loads (the CUDA build ' +
        'where `tttnn setup --gpu` made one), else WASM, else JS; naming one makes it mandatory ' +
        '(`tensorflow-gpu` requires the CUDA build).',
    ),
  matmulPrecision: z
    .enum(MATMUL_PRECISIONS)
    .default('highest')
    .describe(
      "Float32 matrix multiplies on native TensorFlow, as PyTorch's `set_float32_matmul_precision` names them: " +
        "`highest` computes them in float32 (results match PyTorch's defaults); `high` allows TF32 on GPUs " +
        "(TensorFlow's own default there), float32 on CPUs; `medium` also rounds their inputs to bfloat16 on " +
        'CPUs with AMX or AVX512-BF16, as PyTorch does: TTT-NN 1.4x faster on a 2-core Xeon, but bits/byte move ' +
        'by up to 0.5% before training and the gains at k = 10 come out 2-7% smaller (docs/engine-performance.md). ' +
        'Fixed per process; results record it with the backend.',
    ),
  model: z
    .string()
    .min(1)
    .default('smollm2-135m')
    .describe(
      'The language model of `lm`, `model push`, the demo and evaluations: `smollm2-135m` (SmolLM2-135M-Instruct ' +
        'quantised Q4_1, a GGUF file fetched by setup), a `.gguf` file or HF folder (local, or a model version in ' +
        'the store: `s3://`, `file://`), or a Hub id.',
    ),
  temporal: z
    .strictObject({
      address: z
        .string()
        .default('127.0.0.1:7233')
        .describe('gRPC address (`host:port`) of the Temporal server; `tttnn infra up` starts its dev server there.'),
      namespace: z
        .string()
        .default('default')
        .describe('Temporal namespace of every workflow (the local dev server is started with it).'),
      taskQueuePrefix: z
        .string()
        .regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, _ . - only')
        .default('tttnn')
        .describe(
          'Prefix of every task queue (`<prefix>-cpu`, `<prefix>-gpu`, `<prefix>-index`, ' +
            '`<prefix>-retrieval-g<n>`): deployments sharing a server keep apart by prefix.',
        ),
      uiPort: port.default(8233).describe("Port of the local dev server's web UI (`tttnn infra up`)."),
      httpPort: port.default(7243).describe("Port of the local dev server's HTTP API."),
      metricsPort: port.default(7244).describe("Port of the local dev server's metrics endpoint."),
      ui: bool.default(true).describe("Serve the local dev server's web UI (`false` starts it headless)."),
      tlsCertFile: z
        .string()
        .default('')
        .describe(
          'PEM client certificate for mTLS to the Temporal server (Temporal Cloud); with `tlsKeyFile`, every ' +
            'connection uses TLS with this client certificate. Empty: plain gRPC.',
        ),
      tlsKeyFile: z.string().default('').describe('PEM private key of `tlsCertFile`.'),
    })
    .prefault({})
    .describe(
      'The Temporal server that the CLI and the workers connect to, and the ports of the local dev server that ' +
        '`tttnn infra up` starts (its gRPC port comes from `address`).',
    ),
  s3: z
    .strictObject({
      endpoint: z
        .url()
        .default('http://127.0.0.1:7070')
        .describe(
          'URL of the S3 API behind every `s3://bucket/prefix` location; with `local`, `tttnn infra up` starts ' +
            'the local server on its host and port.',
        ),
      region: z.string().default('us-east-1').describe('Region the requests are signed for.'),
      accessKeyId: z
        .string()
        .min(1)
        .default('tttnn-local')
        .describe("Access key id of every request (and the local server's root key)."),
      secretAccessKey: secret
        .default(new Secret('tttnn-local-secret'))
        .describe(
          "Secret access key (and the local server's root secret): prints as `***` and is scrubbed from error " +
            "messages. The default is the local server's fixed key; set your own for any other store.",
        ),
      credentials: z
        .enum(['static', 'aws'])
        .default('static')
        .describe(
          "`static` signs with `accessKeyId` and `secretAccessKey`; `aws` takes credentials from the AWS SDK's " +
            'default chain (an EC2 instance profile, `AWS_*` variables, SSO) and ignores the two keys: no long-lived ' +
            'keys on AWS machines.',
        ),
      forcePathStyle: bool
        .default(true)
        .describe('Path-style URLs (`<endpoint>/<bucket>/<key>`), as local S3-compatible servers need.'),
      local: bool
        .default(true)
        .describe("Start a local S3-compatible server (versitygw) on the endpoint's port with `tttnn infra up`."),
      maxAttempts: positiveInt
        .default(5)
        .describe("Attempts per S3 request, in the SDK's standard retry mode (exponential backoff with jitter)."),
    })
    .prefault({})
    .describe('The S3-compatible artifact store and the local server.'),
  worker: z
    .strictObject({
      queues: z
        .union([z.string().transform((s) => s.split(',').map((q) => q.trim())), z.array(z.string())])
        .pipe(z.array(z.enum(['cpu', 'gpu', 'index', 'retrieval'])).min(1))
        .default(['cpu'])
        .describe(
          'Queue kinds a worker process polls; `cpu` workers also run every workflow. `tttnn worker` takes them ' +
            'from `--queues` (its default: `cpu`).',
        ),
      retrievalGroups: z
        .string()
        .regex(/^\d+(-\d+)?(,\d+(-\d+)?)*$/, 'expected groups like 0-3,8')
        .default('0-7')
        .describe(
          'Shard groups whose queues (`<prefix>-retrieval-g<n>`) a `retrieval` worker serves, e.g. `0-3,8`; a ' +
            'build has ceil(shards / `index.shardsPerGroup`) groups, and every one needs a worker.',
        ),
      maxConcurrentActivities: positiveInt
        .default(2)
        .describe(
          'Activities run at once per queue by this process (a language model still serves one document at a time).',
        ),
      engineProcesses: positiveInt
        .default(1)
        .describe(
          'Processes serving the `gpu` queue when this worker polls it: above 1, each runs as a child process with ' +
            "this machine's cores shared out as TensorFlow threads and one activity at a time. For CPU-only " +
            'machines: on 2 cores, 2 single-threaded processes ran 1.37-1.54x the TTT steps per second of one ' +
            'two-threaded process (docs/engine-performance.md), each holding its own copy of the models.',
        ),
      shutdownGraceSeconds: positiveInt
        .default(30)
        .describe(
          'On SIGTERM or SIGINT, how long activities in flight may finish before they are cancelled and retried ' +
            'elsewhere.',
        ),
    })
    .prefault({})
    .describe('What a worker process (`tttnn worker`) serves.'),
  ingest: z
    .strictObject({
      rowsPerShard: positiveInt.default(50_000).describe('Documents per Parquet shard at most.'),
      maxShardBytes: positiveInt
        .default(64 * 1024 * 1024)
        .describe('A shard is closed once its documents reach this many text bytes (or `rowsPerShard` documents).'),
      maxDocumentBytes: positiveInt
        .default(64 * 1024 * 1024)
        .describe('Lines longer than this are skipped and counted as `too_large`.'),
      concurrency: positiveInt.default(4).describe('Input files ingested at once (one activity each).'),
      heartbeatTimeoutSeconds: positiveInt
        .default(60)
        .describe(
          "A file's activity is retried elsewhere, from its last committed shard, once its worker is silent this long.",
        ),
    })
    .prefault({})
    .describe('Pile ingest (`tttnn ingest`): input files to versioned, sharded Parquet.'),
  index: z
    .strictObject({
      root: z
        .string()
        .min(1)
        .default('s3://tttnn/indexes/default')
        .describe('Where builds go (`<root>/builds/<build id>/`) and `current.json` points at the one that serves.'),
      encoder: z
        .string()
        .min(1)
        .default('all-minilm-l6-v2')
        .describe('A named model (`all-minilm-l6-v2`), a model version URL or a local HF folder.'),
      maxLength: positiveInt
        .default(256)
        .describe(
          "Tokens of each document the encoder sees: its first ones (MiniLM's limit; the reference's RoBERTa: 512).",
        ),
      batchSize: positiveInt.default(32).describe('Documents per encoder forward pass.'),
      segmentRows: positiveInt
        .default(1024)
        .describe('Documents per uploaded embedding segment: what a retried shard need not redo.'),
      vectorPrecision: z
        .enum(VECTOR_PRECISIONS)
        .default('float32')
        .describe(
          'How the embedding segments store vectors: float16 halves their size; indexes are built from float32.',
        ),
      kind: z
        .enum(INDEX_KINDS)
        .default('usearch')
        .describe('Vector index library: `usearch`, `hnswlib`, or `flat` (exact search).'),
      metric: z
        .enum(['l2sq', 'cos'])
        .default('l2sq')
        .describe('Squared L2 (`l2sq`, as faiss IndexFlatL2 and the reference) or cosine distance (`cos`).'),
      connectivity: positiveInt
        .default(16)
        .describe('HNSW graph degree M (usearch, hnswlib); measured by `npm run bench:index`.'),
      expansionAdd: positiveInt.default(128).describe('HNSW beam width while building (efConstruction).'),
      expansionSearch: positiveInt
        .default(256)
        .describe('HNSW beam width while searching (efSearch); 256 keeps recall@20 ≥ 0.99 up to 1M-vector shards.'),
      recallQueries: positiveInt
        .default(200)
        .describe("Each shard's recall@k against exact search is measured at build time on this many of its vectors."),
      recallK: positiveInt.default(20).describe('The k of that recall@k.'),
      embedConcurrency: positiveInt.default(2).describe('Shards embedded at once (gpu-queue activities in flight).'),
      buildConcurrency: positiveInt
        .default(2)
        .describe('Shards indexed or verified at once (index-queue activities in flight).'),
      heartbeatTimeoutSeconds: positiveInt
        .default(300)
        .describe("A build's shard activity is retried elsewhere once its worker is silent this long."),
      shardsPerGroup: positiveInt
        .default(64)
        .describe(
          'Shards per retrieval group: each group is searched by one activity on its own queue ' +
            '(`<prefix>-retrieval-g<n>`).',
        ),
      maxDistance: z.coerce
        .number()
        .positive()
        .default(4)
        .describe('Neighbors farther than this are dropped (the reference: 4.0 in squared L2, which filters nothing).'),
    })
    .prefault({})
    .describe('Index builds (`tttnn index build`) and search.'),
  eval: z
    .strictObject({
      root: z.string().min(1).default('s3://tttnn/evals').describe('Runs go to `<root>/runs/<run id>/`.'),
      perDomain: positiveInt
        .default(10)
        .describe('Test documents drawn per domain (seeded); `eval start --ids` names them instead.'),
      seed: z.coerce
        .number()
        .int()
        .nonnegative()
        .default(1216)
        .describe("Seed of the per-domain draw, the random control's neighbors and the documents' dropout masks."),
      k: positiveInt
        .default(20)
        .describe("Neighbors per document: 20, as the reproducibility report (the paper's headline: 50)."),
      lr: z.coerce.number().positive().default(2e-5).describe('AdamW learning rate of the TTT steps.'),
      maxLength: z.coerce
        .number()
        .int()
        .nonnegative()
        .default(0)
        .describe(
          'Training chunk and evaluation window in tokens; 0: 1024 when the starting CLI has ' +
            '`backend=tensorflow-gpu`, else 512.',
        ),
      maxNeighborTokens: z.coerce
        .number()
        .int()
        .nonnegative()
        .default(0)
        .describe('Neighbors are cut to their first tokens; 0 trains on whole neighbors, as the reference does.'),
      maxDocumentBytes: positiveInt
        .default(1_000_000)
        .describe('Test documents larger than this are not drawn (explicit ids over it are skipped and counted).'),
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
        .pipe(z.array(z.enum(['random', 'dynamic', 'in-context', 'sift'])))
        .default(['random'])
        .describe(
          'Baselines computed on the same documents in the same run; `sift` trains on the neighbors SIFT selects ' +
            '(see `siftPool`, `siftLambda`, `siftAlpha`).',
        ),
      siftPool: positiveInt
        .default(DEFAULT_SIFT_POOL)
        .describe(
          'SIFT baseline: it picks from this many nearest neighbors of each document (retrieval fetches ' +
            'max(k, siftPool); TTT-NN still trains on the first k).',
        ),
      siftLambda: z.coerce
        .number()
        .positive()
        .default(DEFAULT_SIFT_LAMBDA)
        .describe("SIFT baseline: λ, the noise variance of one observation (activeft's default 0.01)."),
      siftAlpha: z.coerce
        .number()
        .nonnegative()
        .default(0)
        .describe(
          'SIFT baseline: α of adaptive SIFT; > 0 records per document where the adaptive rule stops (the curve ' +
            'up to it is the fixed-k curve, nothing is trained twice); 0: no adaptive stop.',
        ),
      excludeExactCopies: bool
        .default(false)
        .describe("Leave out neighbors whose text equals the test document's (they are counted either way)."),
      dynamicIterations: positiveInt
        .default(7)
        .describe("Dynamic evaluation: passes over the test document's first half (the paper reports 7)."),
      concurrency: positiveInt.default(1).describe('Documents evaluated at once across the gpu-queue workers.'),
      heartbeatTimeoutSeconds: positiveInt
        .default(900)
        .describe(
          "A document's activity heartbeats after every neighbor and is retried elsewhere once its worker is silent " +
            "this long: one neighbor's steps must fit in it. Also the heartbeat timeout of the run's query " +
            'embedding, retrieval and compaction.',
        ),
      checkpointEvery: z.coerce
        .number()
        .int()
        .nonnegative()
        .default(0)
        .describe(
          "Workers save a document's training state to the run every this many neighbors, and a retry continues " +
            'from it instead of replaying the steps; for big models with long neighbors. 0 replays: for SmolLM2 on ' +
            'a CPU a checkpoint costs about four steps (`npm run bench:checkpoint`).',
        ),
    })
    .prefault({})
    .describe(
      "Evaluations (`tttnn eval start`): TTT-NN on test documents with the paper's settings, and its baselines. " +
        "A run's settings (all but `root`, `concurrency` and `heartbeatTimeoutSeconds`) are fixed in its `run.json` " +
        'when it starts; `eval resume` reads them from there.',
    ),
});

export type Config = z.infer<typeof configSchema>;

/** TTTNN_ variables that steer the process rather than configure it. */
const PROCESS_VARIABLES = new Set(['TTTNN_CONFIG', 'TTTNN_DEBUG', 'TTTNN_LOG_LEVEL', 'TTTNN_EXIT_WITH_PARENT']);

/** Whether `loadConfig` reads this environment variable as a setting (TTTNN_<SECTION>_<FIELD>). */
export const isConfigVariable = (key: string): boolean => key.startsWith('TTTNN_') && !PROCESS_VARIABLES.has(key);
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
    if (!isConfigVariable(key) || value === undefined) continue;
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
export function envKeyToPath(key: string): string[] {
  const camel = (parts: string[]) =>
    parts.map((p, i) => (i === 0 ? p.toLowerCase() : p[0]!.toUpperCase() + p.slice(1).toLowerCase())).join('');
  const parts = key.split('_');
  const section = parts[0]!.toLowerCase();
  if (parts.length > 1 && sections.has(section) && section !== camel(parts)) {
    return [section, camel(parts.slice(1))];
  }
  return [camel(parts)];
}

/** The environment variable of a field, the inverse of envKeyToPath: ['s3', 'accessKeyId'] -> TTTNN_S3_ACCESS_KEY_ID. */
export function envVariableName(fieldPath: readonly string[]): string {
  return `TTTNN_${fieldPath.map((part) => part.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()).join('_')}`;
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
