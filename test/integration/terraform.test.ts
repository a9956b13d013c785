import { execFile } from 'node:child_process';
import { existsSync, promises as fs, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { ConfigError, loadConfig, parseConfig } from '../../core/config';
import { ensureCheckov, ensurePythonHcl2, ensureShellcheck, ensureTofu } from '../../infra/tools';

/**
 * Offline checks of terraform/ (no cloud account, no provider registry): `tofu fmt -check`, checkov with zero failed
 * checks, the least-privilege policies and the bucket's protections statement by statement (python-hcl2), shellcheck
 * of the user-data and the drain script, and the rendered user-data's configuration through the config schema.
 * Tools are installed from registries into the tools cache once (the Go build of OpenTofu takes minutes cold).
 */
const run = promisify(execFile);
const ROOT = path.resolve(__dirname, '..', '..');
const TF = path.join(ROOT, 'terraform');
const FLEET = path.join(TF, 'modules', 'worker_fleet');
const toolsDir = parseConfig({}).toolsDir;
const log = (line: string) => process.stderr.write(`[terraform] ${line}\n`);

let tofu: string;
let checkov: string;
let hclPython: string;
let shellcheck: string;

type Hcl = Record<string, unknown>;

async function tfFiles(dir: string): Promise<string[]> {
  const entries = await fs.readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile() && e.name.endsWith('.tf') && !e.parentPath.includes('.terraform'))
    .map((e) => path.join(e.parentPath, e.name))
    .sort();
}

async function parseHcl(files: string[]): Promise<Record<string, Hcl>> {
  const script = path.join(TF, 'tests', 'parse_hcl.py');
  const { stdout } = await run(hclPython, [script, ...files], { maxBuffer: 64 * 1024 * 1024 });
  return JSON.parse(stdout) as Record<string, Hcl>;
}

/** python-hcl2 keeps string literals quoted (`"s3:GetObject"`) and expressions as `${...}`. */
function unquote(value: unknown): string {
  const s = String(value);
  return s.startsWith('"') && s.endsWith('"') ? s.slice(1, -1) : s;
}

/** A list attribute, or an expression (`concat([...], [...])`): the string literals and references in it. */
function strings(value: unknown): string[] {
  if (Array.isArray(value)) return value.map(unquote);
  const s = String(value);
  // String literals, and bare references (`local.releases`) other than a for expression's collection.
  const tokens = [...s.matchAll(/\\?"((?:[^"\\]|\\.)*?)\\?"|(?<!in )\b((?:local|var)\.[\w.]+)/g)];
  const literals = tokens.map((m) => m[1] ?? `\${${m[2]}}`);
  return literals.length > 0 ? literals : [unquote(s)];
}

function blocks(file: Hcl, kind: 'data' | 'resource', type: string): Record<string, Hcl> {
  const out: Record<string, Hcl> = {};
  for (const entry of (file[kind] as Record<string, Record<string, Hcl>>[] | undefined) ?? []) {
    for (const [t, named] of Object.entries(entry)) {
      if (unquote(t) !== type) continue;
      for (const [name, body] of Object.entries(named)) out[unquote(name)] = body;
    }
  }
  return out;
}

export interface Statement {
  sid: string;
  effect: string;
  actions: string[];
  resources: string[];
}

/** The statements of an aws_iam_policy_document, the dynamic ones included. */
function statementsOf(doc: Hcl): Statement[] {
  const plain = (doc.statement as Hcl[] | undefined) ?? [];
  const dynamic = ((doc.dynamic as Record<string, Hcl>[] | undefined) ?? []).flatMap((d) =>
    Object.entries(d)
      .filter(([name]) => unquote(name) === 'statement')
      .flatMap(([, body]) => (body.content as Hcl[] | undefined) ?? []),
  );
  return [...plain, ...dynamic].map((s) => ({
    sid: unquote(s.sid),
    effect: s.effect === undefined ? 'Allow' : unquote(s.effect),
    actions: strings(s.actions),
    resources: strings(s.resources),
  }));
}

/**
 * Least privilege, as this project means it: no Allow statement whose action is `*`, a service-wide `svc:*` or any
 * other wildcard action, and none whose resource is `*` (every action the workers use can be scoped to an ARN).
 */
export function leastPrivilegeViolations(policy: string, statements: Statement[]): string[] {
  const violations: string[] = [];
  for (const s of statements.filter((st) => st.effect === 'Allow')) {
    for (const action of s.actions.filter((a) => a.includes('*'))) {
      violations.push(`${policy}/${s.sid}: wildcard action ${action}`);
    }
    for (const resource of s.resources.filter((r) => r.trim() === '*')) {
      violations.push(`${policy}/${s.sid}: resource ${resource}`);
    }
  }
  return violations;
}

/** templatefile's `${name}` substitution for the plain variables the user-data uses; anything else is an error. */
export function renderTemplate(template: string, vars: Record<string, string | number>): string {
  if (/(^|[^%])%\{/.test(template)) throw new Error('template directives (%{...}) are not rendered here');
  return template.replace(/\$(\$?)\{([^}]*)\}/g, (whole, escaped: string, name: string) => {
    if (escaped === '$') return `\${${name}}`;
    if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`template expression ${whole} is not a plain variable`);
    if (!(name in vars)) throw new Error(`template variable ${name} is not given`);
    return String(vars[name]);
  });
}

/** The example values of examples/small, as the root module passes them (main.tf: local.user_data). */
function exampleVars(extraEnv: Record<string, string> = {}): Record<string, string | number> {
  return {
    region: 'us-east-1',
    gpu: 'true',
    queues: 'gpu',
    processes: 1,
    node_version: '22.23.5',
    node_integrity: 'sha512-3jhC+wcoWxKZxcRqF2sUSl0c9HEXFnur/nuIPx6O6CWKV0jOUWQm7Htw5SuXqqlMCEhi0cJqybFPEb5hhcBiMw==',
    npm_version: '10.9.4',
    npm_integrity: 'sha512-OnUG836FwboQIbqtefDNlyR0gTHzIfwRfE3DuiNewBvnMnWEpB0VEXwBlFVgqpNzIgYo/MHh3d2Hel/pszapAA==',
    release_url: 's3://tttnn-small-artifacts/tttnn/releases/tttnn-v0.1.0.tar.gz',
    temporal_address: 'temporal.internal:7233',
    temporal_namespace: 'default',
    task_queue_prefix: 'small',
    tls_cert_file: '/etc/tttnn/tls/client.pem',
    tls_key_file: '/etc/tttnn/tls/client.key',
    tls_cert_secret_arn: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:tttnn-cert-AbCdEf',
    tls_key_secret_arn: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:tttnn-key-AbCdEf',
    backend: 'tensorflow-gpu',
    max_concurrent_activities: 1,
    shutdown_grace_seconds: 90,
    stop_timeout_seconds: 105,
    retrieval_groups: '0-7',
    index_root: 's3://tttnn-small-artifacts/tttnn/indexes/demo',
    eval_root: 's3://tttnn-small-artifacts/tttnn/evals',
    // As the fleet module joins var.user_data.extra_env: sorted keys, one KEY=value per line.
    extra_env: Object.keys(extraEnv)
      .sort()
      .map((k) => `${k}=${extraEnv[k]}`)
      .join('\n'),
    drain_script: readFileSync(path.join(FLEET, 'spot-drain.sh'), 'utf8').trim(),
  };
}

function renderUserData(extraEnv: Record<string, string> = {}): string {
  return renderTemplate(readFileSync(path.join(FLEET, 'user-data.sh.tftpl'), 'utf8'), exampleVars(extraEnv));
}

/** The TTTNN_* lines user-data writes to /etc/tttnn/tttnn.env. */
function envFileOf(userData: string): NodeJS.ProcessEnv {
  const body = /<<'TTTNN_ENV'\n([\s\S]*?)\nTTTNN_ENV\n/.exec(userData)?.[1];
  if (body === undefined) throw new Error('user-data writes no environment file');
  const env: NodeJS.ProcessEnv = {};
  for (const line of body.split('\n').filter((l) => l.trim() !== '')) {
    const eq = line.indexOf('=');
    env[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return env;
}

beforeAll(async () => {
  // Cold: the Go build of OpenTofu (minutes), two venvs from PyPI, one .deb; warm: nothing.
  [tofu, checkov, hclPython, shellcheck] = await Promise.all([
    ensureTofu(toolsDir, log),
    ensureCheckov(toolsDir, log),
    ensurePythonHcl2(toolsDir, log),
    ensureShellcheck(toolsDir, log),
  ]);
}, 1_800_000);

describe('terraform/', () => {
  it('is formatted (tofu fmt -check)', async () => {
    const env = { ...process.env, TF_CLI_CONFIG_FILE: '/dev/null', TF_IN_AUTOMATION: '1' };
    await expect(run(tofu, ['fmt', '-check', '-recursive', '-diff', TF], { env })).resolves.toBeDefined();
  });

  it('passes checkov with zero failed checks, every skip justified inline', async () => {
    const args = ['-d', TF, '--framework', 'terraform', '--quiet', '--compact', '--skip-download', '-o', 'json'];
    const env = { ...process.env, BC_SKIP_MAPPING: 'TRUE', CHECKOV_RUN_SCA_PACKAGE_SCAN_V2: 'false' };
    const { stdout } = await run(checkov, args, { env, maxBuffer: 64 * 1024 * 1024 }).catch(
      (err: { stdout?: string }) => ({ stdout: err.stdout ?? '' }),
    );
    type Report = { summary: { failed: number; passed: number } };
    const reports = ([] as Report[]).concat(JSON.parse(stdout) as Report | Report[]);
    expect(reports.map((r) => r.summary.failed)).toEqual([0]);
    expect(reports[0]!.summary.passed).toBeGreaterThan(100);
    for (const file of await tfFiles(TF)) {
      for (const line of readFileSync(file, 'utf8')
        .split('\n')
        .filter((l) => l.includes('checkov:skip'))) {
        expect(line).toMatch(/#checkov:skip=CKV2?_AWS_\d+:\S.{30,}/);
      }
    }
  }, 120_000);

  it('declares every variable with a description and a type', async () => {
    const parsed = await parseHcl(await tfFiles(TF));
    let count = 0;
    for (const [file, hcl] of Object.entries(parsed)) {
      for (const entry of (hcl.variable as Record<string, Hcl>[] | undefined) ?? []) {
        for (const [name, body] of Object.entries(entry)) {
          count++;
          expect({ file, name, description: typeof body.description }).toEqual({ file, name, description: 'string' });
          expect(unquote(body.description).length).toBeGreaterThan(10);
          expect({ file, name, type: body.type !== undefined }).toEqual({ file, name, type: true });
        }
      }
    }
    expect(count).toBeGreaterThan(40);
  });

  describe('worker roles', () => {
    let policies: Record<string, Statement[]>;
    beforeAll(async () => {
      const file = path.join(TF, 'modules', 'worker_iam', 'main.tf');
      const docs = blocks((await parseHcl([file]))[file]!, 'data', 'aws_iam_policy_document');
      policies = Object.fromEntries(Object.entries(docs).map(([name, doc]) => [name, statementsOf(doc)]));
    });

    const S = '${local.store}';
    const P = '${local.prefix}';
    const bucket = '${var.bucket_arn}';
    const key = '${var.kms_key_arn}';
    const secrets = '${var.temporal_secret_arns}';
    const releases = '${local.releases}';
    const kms = { sid: 'UseBucketKey', actions: ['kms:Decrypt', 'kms:GenerateDataKey'], resources: [key] };
    const tls = { sid: 'ReadTemporalCertificates', actions: ['secretsmanager:GetSecretValue'], resources: [secrets] };
    const expected: Record<string, { sid: string; actions: string[]; resources: string[] }[]> = {
      gpu: [
        { sid: 'ListStore', actions: ['s3:ListBucket'], resources: [bucket] },
        {
          sid: 'ReadCorpusModelsIndexesRunsRelease',
          actions: ['s3:GetObject'],
          resources: [`${S}/corpus/*`, `${S}/models/*`, `${S}/indexes/*`, `${S}/evals/*`, releases],
        },
        {
          sid: 'WriteEmbeddingsAndResults',
          actions: ['s3:PutObject', 's3:AbortMultipartUpload'],
          resources: [
            `${S}/indexes/*/builds/*/embeddings/*`,
            `${S}/evals/*runs/*/queries.parquet`,
            `${S}/evals/*runs/*/documents/*`,
            `${S}/evals/*runs/*/checkpoints/*`,
          ],
        },
        {
          sid: 'DeleteCommittedCheckpoints',
          actions: ['s3:DeleteObject'],
          resources: [`${S}/evals/*runs/*/checkpoints/*`],
        },
        kms,
        tls,
      ],
      index: [
        { sid: 'ListBuilds', actions: ['s3:ListBucket'], resources: [bucket] },
        { sid: 'ReadBuildsRelease', actions: ['s3:GetObject'], resources: [`${S}/indexes/*/builds/*`, releases] },
        {
          sid: 'WriteShardIndexes',
          actions: ['s3:PutObject', 's3:AbortMultipartUpload'],
          resources: [`${S}/indexes/*/builds/*/index/*`],
        },
        {
          sid: 'DeleteDamagedShardObjects',
          actions: ['s3:DeleteObject'],
          resources: [`${S}/indexes/*/builds/*/embeddings/*`, `${S}/indexes/*/builds/*/index/*`],
        },
        kms,
        tls,
      ],
      retrieval: [
        { sid: 'ListIndexesRuns', actions: ['s3:ListBucket'], resources: [bucket] },
        {
          sid: 'ReadIndexesQueriesRelease',
          actions: ['s3:GetObject'],
          resources: [
            `${S}/indexes/*`,
            `${S}/evals/*runs/*/queries.parquet`,
            `${S}/evals/*runs/*/retrieval/*`,
            releases,
          ],
        },
        {
          sid: 'WriteGroupCandidates',
          actions: ['s3:PutObject', 's3:AbortMultipartUpload'],
          resources: [`${S}/evals/*runs/*/retrieval/groups/*`],
        },
        kms,
        tls,
      ],
      cpu: [
        { sid: 'ListStoreAndInput', actions: ['s3:ListBucket'], resources: [bucket] },
        {
          sid: 'ReadInputStoreRelease',
          actions: ['s3:GetObject'],
          resources: [
            `${S}/samples/*`,
            `${S}/corpus/*`,
            `${S}/models/*`,
            `${S}/indexes/*`,
            `${S}/evals/*`,
            releases,
            '${var.bucket_arn}/${p}*',
          ],
        },
        {
          sid: 'WriteCorpusPlansManifestsRuns',
          actions: ['s3:PutObject', 's3:AbortMultipartUpload'],
          resources: [
            `${S}/corpus/*`,
            `${S}/indexes/*/current.json`,
            `${S}/indexes/*/builds/*/plan.json`,
            `${S}/indexes/*/builds/*/manifest.json`,
            ...[
              'run.json',
              'plan.json',
              'selection.parquet',
              'random/*',
              'retrieval/neighbors.parquet',
              'retrieval/pool.parquet',
              'sift/*',
            ].map((f) => `${S}/evals/*runs/*/${f}`),
            ...['retrieval/manifest.json', 'results/*', 'manifest.json'].map((f) => `${S}/evals/*runs/*/${f}`),
          ],
        },
        {
          sid: 'WithdrawBuildManifests',
          actions: ['s3:DeleteObject'],
          resources: [`${S}/indexes/*/builds/*/manifest.json`],
        },
        kms,
        tls,
      ],
    };

    it.each(['gpu', 'index', 'retrieval', 'cpu'])('%s: exactly the statements its activities need', (role) => {
      const actual = policies[role]!.map(({ sid, actions, resources }) => ({ sid, actions, resources }));
      expect(actual).toEqual(expected[role]);
    });

    it('lists only under the store prefixes the role reads', async () => {
      const file = path.join(TF, 'modules', 'worker_iam', 'main.tf');
      const doc = blocks((await parseHcl([file]))[file]!, 'data', 'aws_iam_policy_document').index!;
      const list = (doc.statement as Hcl[])[0]!;
      const condition = (list.condition as Hcl[])[0]!;
      expect([unquote(condition.test), unquote(condition.variable), strings(condition.values)]).toEqual([
        'StringLike',
        's3:prefix',
        [`${P}/indexes/*`],
      ]);
    });

    it('have no wildcard action and no "*" resource', () => {
      expect(Object.keys(policies).sort()).toEqual(['assume_ec2', 'cpu', 'gpu', 'index', 'retrieval']);
      for (const [name, statements] of Object.entries(policies)) {
        expect(leastPrivilegeViolations(name, statements)).toEqual([]);
      }
    });

    it('the checker rejects a widened policy (s3:*, "*" action, Resource "*")', async () => {
      const file = path.join(ROOT, 'test', 'fixtures', 'terraform', 'widened-policy.tf');
      const doc = blocks((await parseHcl([file]))[file]!, 'data', 'aws_iam_policy_document').widened!;
      expect(leastPrivilegeViolations('widened', statementsOf(doc))).toEqual([
        'widened/ReadEverything: wildcard action s3:*',
        'widened/AnyKey: resource *',
        'widened/AnyAction: wildcard action *',
      ]);
    });
  });

  it('the bucket is versioned, SSE-KMS with its own rotated key, private, TLS-only, with lifecycle rules', async () => {
    const file = path.join(TF, 'modules', 'artifact_bucket', 'main.tf');
    const hcl = (await parseHcl([file]))[file]!;
    const res = (type: string) => blocks(hcl, 'resource', type).artifacts!;
    const first = (value: unknown) => (value as Hcl[])[0]!;

    expect(unquote(first(res('aws_s3_bucket_versioning').versioning_configuration).status)).toBe('Enabled');
    const sse = first(res('aws_s3_bucket_server_side_encryption_configuration').rule);
    expect(unquote(first(sse.apply_server_side_encryption_by_default).sse_algorithm)).toBe('aws:kms');
    expect(first(sse.apply_server_side_encryption_by_default).kms_master_key_id).toBe('${aws_kms_key.artifacts.arn}');
    expect(sse.bucket_key_enabled).toBe(true);
    expect(res('aws_kms_key').enable_key_rotation).toBe(true);
    const block = res('aws_s3_bucket_public_access_block');
    for (const field of ['block_public_acls', 'block_public_policy', 'ignore_public_acls', 'restrict_public_buckets']) {
      expect(block[field]).toBe(true);
    }
    expect(unquote(first(res('aws_s3_bucket_ownership_controls').rule).object_ownership)).toBe('BucketOwnerEnforced');

    const policy = statementsOf(blocks(hcl, 'data', 'aws_iam_policy_document').bucket!);
    const tlsOnly = (blocks(hcl, 'data', 'aws_iam_policy_document').bucket!.statement as Hcl[])[0]!;
    expect(policy[0]).toMatchObject({ sid: 'DenyInsecureTransport', effect: 'Deny', actions: ['s3:*'] });
    const condition = first(tlsOnly.condition);
    expect([unquote(condition.test), unquote(condition.variable), strings(condition.values)]).toEqual([
      'Bool',
      'aws:SecureTransport',
      ['false'],
    ]);

    const rules = res('aws_s3_bucket_lifecycle_configuration').rule as Hcl[];
    const byId = Object.fromEntries(rules.map((r) => [unquote(r.id), r]));
    expect(Object.keys(byId)).toEqual(['eval-run-checkpoints', 'superseded-index-builds', 'abort-incomplete-uploads']);
    expect(unquote(first(byId['eval-run-checkpoints']!.filter).prefix)).toBe('${var.store_prefix}/evals/');
    expect(first(byId['eval-run-checkpoints']!.noncurrent_version_expiration).noncurrent_days).toBe(
      '${var.checkpoint_noncurrent_days}',
    );
    expect(unquote(first(byId['superseded-index-builds']!.filter).prefix)).toBe('${var.store_prefix}/indexes/');
  });

  it('fleets: IMDSv2 only, encrypted volumes, no public IP, capacity rebalancing, a drain hook', async () => {
    const file = path.join(FLEET, 'main.tf');
    const hcl = (await parseHcl([file]))[file]!;
    const template = blocks(hcl, 'resource', 'aws_launch_template').workers!;
    const first = (value: unknown) => (value as Hcl[])[0]!;
    expect(unquote(first(template.metadata_options).http_tokens)).toBe('required');
    expect(first(template.network_interfaces).associate_public_ip_address).toBe(false);
    expect(first(first(template.block_device_mappings).ebs).encrypted).toBe(true);
    const group = blocks(hcl, 'resource', 'aws_autoscaling_group').workers!;
    expect(group.capacity_rebalance).toBe(true);
    expect(unquote(first(group.initial_lifecycle_hook).lifecycle_transition)).toBe(
      'autoscaling:EC2_INSTANCE_TERMINATING',
    );
  });
});

describe('worker user-data', () => {
  it('renders and passes shellcheck, as does the drain script', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tttnn-user-data-'));
    const rendered = path.join(dir, 'user-data.sh');
    await fs.writeFile(rendered, renderUserData({ TTTNN_INDEX_ENCODER: 's3://b/tttnn/models/minilm/v1' }));
    await expect(
      run(shellcheck, ['--severity=style', '--shell=bash', rendered, path.join(FLEET, 'spot-drain.sh')]),
    ).resolves.toBeDefined();
    await fs.rm(dir, { recursive: true });
  });

  it('starts the workers with explicit --queues and drains on SIGTERM', () => {
    const userData = renderUserData();
    expect(userData).toContain('ExecStart=/opt/tttnn/bin/tttnn worker --queues gpu\n');
    expect(userData).toContain('KillSignal=SIGTERM');
    expect(userData).toContain('TimeoutStopSec=105');
    expect(userData).toContain("systemctl stop 'tttnn-worker@*.service'");
    expect(userData).toContain('meta-data/spot/instance-action');
    expect(userData).toContain('/opt/tttnn/bin/tttnn setup --gpu');
  });

  it("writes a configuration that the project's schema accepts", () => {
    const config = loadConfig({ env: envFileOf(renderUserData({ TTTNN_INDEX_ENCODER: 's3://b/m/v1' })) });
    expect(config.s3.credentials).toBe('aws');
    expect(config.s3.local).toBe(false);
    expect(config.s3.endpoint).toBe('https://s3.us-east-1.amazonaws.com');
    expect(config.temporal).toMatchObject({ address: 'temporal.internal:7233', taskQueuePrefix: 'small' });
    expect(config.temporal.tlsCertFile).toBe('/etc/tttnn/tls/client.pem');
    expect(config.worker).toMatchObject({ maxConcurrentActivities: 1, shutdownGraceSeconds: 90 });
    expect(config.backend).toBe('tensorflow-gpu');
    expect(config.index.encoder).toBe('s3://b/m/v1');
  });

  it("a mistyped setting fails with the schema's message", () => {
    const env = envFileOf(renderUserData({ TTTNN_WORKER_MAX_CONCURENT_ACTIVITIES: '1' }));
    expect(() => loadConfig({ env })).toThrow(ConfigError);
    expect(() => loadConfig({ env })).toThrow(/worker: Unrecognized key: "maxConcurentActivities"/);
  });

  it('the renderer refuses what it does not implement, as templatefile would refuse unknown variables', () => {
    expect(renderTemplate('a $${b} ${c}', { c: 1 })).toBe('a ${b} 1');
    expect(() => renderTemplate('${missing}', {})).toThrow(/not given/);
    expect(() => renderTemplate('${upper(x)}', { x: 1 })).toThrow(/not a plain variable/);
    expect(existsSync(path.join(FLEET, 'user-data.sh.tftpl'))).toBe(true);
  });
});
