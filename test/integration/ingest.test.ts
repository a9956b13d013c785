import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { DuckDBInstance } from '@duckdb/node-api';
import type { Client } from '@temporalio/client';
import { connectClient } from '../../cli/temporal-client';
import { ingestInput, startIngest } from '../../cli/ingest-command';
import type { Config } from '../../core/config';
import { readDocumentShard } from '../../core/corpus/document-shards';
import { downloadVerified } from '../../core/store/manifest';
import { openStore } from '../../core/store/open-store';
import { ensureServer, stopServer } from '../../infra/managed-process';
import { temporalServerSpec } from '../../infra/temporal-server';
import { ensurePythonReaders, ensureTemporalCli } from '../../infra/tools';
import { pageWorkflowId, pagedStageId } from '../../workflows/paged';
import { INGEST_FILES_STAGE, type IngestSummary } from '../../workflows/shared';
import { testConfig } from '../test-config';
import { type WorkerProcess, ingestArtifacts, spawnWorker, uniqueName, waitFor, writeGeneratedPile } from './harness';

const run = promisify(execFile);

/** A config for one test: its own task queues, so that workers of other tests never take its tasks. */
function isolated(base: Config = testConfig(), ingest: Partial<Config['ingest']> = {}): Config {
  return {
    ...base,
    temporal: { ...base.temporal, taskQueuePrefix: uniqueName('t') },
    ingest: { ...base.ingest, heartbeatTimeoutSeconds: 3, rowsPerShard: 400, concurrency: 2, ...ingest },
  };
}

async function uploadInput(config: Config, files: Record<string, string>): Promise<string> {
  const url = `s3://tttnn/${uniqueName('input')}`;
  const store = openStore(url, config);
  for (const [name, local] of Object.entries(files)) await store.putFile(name, local);
  return url;
}

async function ingest(client: Client, config: Config, input: string, out: string, id = uniqueName('ingest')) {
  const handle = await startIngest(client, config, ingestInput(config, { input, out }), id);
  return { handle, result: handle.result() };
}

/** Shards written so far under an ingest's output, as the object store shows them. */
async function shardsWritten(config: Config, out: string): Promise<number> {
  let shards = 0;
  for await (const object of openStore(out, config).list('')) if (object.key.endsWith('.parquet')) shards += 1;
  return shards;
}

describe('ingest workflow on the real Temporal server and versitygw', () => {
  const scratch = path.join(os.tmpdir(), uniqueName('tttnn-ingest-test'));
  let bigInput: string;
  let client: Client;
  const workers: WorkerProcess[] = [];

  beforeAll(async () => {
    const config = testConfig();
    client = await connectClient(config);
    // Big enough (~60 MB of text) that a kill or a restart lands in the middle of the run.
    await writeGeneratedPile(path.join(scratch, 'a.jsonl.zst'), 30_000, true, 1);
    await writeGeneratedPile(path.join(scratch, 'b.jsonl'), 20_000, false, 2);
    await writeGeneratedPile(path.join(scratch, 'c.jsonl.zst'), 15_000, true, 3);
    bigInput = await uploadInput(config, {
      'a.jsonl.zst': path.join(scratch, 'a.jsonl.zst'),
      'b.jsonl': path.join(scratch, 'b.jsonl'),
      'nested/c.jsonl.zst': path.join(scratch, 'c.jsonl.zst'),
    });
  });

  afterEach(() => {
    for (const worker of workers.splice(0)) worker.child.kill('SIGKILL');
  });

  afterAll(async () => {
    await client.connection.close();
    await fs.rm(scratch, { recursive: true, force: true });
  });

  let reference: { summary: IngestSummary; manifest: Buffer } | undefined;
  async function undisturbed(): Promise<{ summary: IngestSummary; manifest: Buffer }> {
    if (!reference) {
      const config = isolated();
      workers.push(await spawnWorker(config));
      const summary = await (await ingest(client, config, bigInput, `s3://tttnn/${uniqueName('out')}`)).result;
      const { store } = await ingestArtifacts(config, summary.manifestUrl);
      reference = { summary, manifest: await store.getBytes('manifest.json') };
    }
    return reference;
  }

  it('counts every kind of bad input per reason in the manifest and keeps every good document', async () => {
    const config = isolated();
    const bad = path.join(scratch, 'bad.jsonl');
    await fs.writeFile(
      bad,
      Buffer.concat([
        Buffer.from('{"text": "good one", "meta": {"pile_set_name": "Github"}}\n'),
        Buffer.from('{"text": "broken json\n'),
        Buffer.from('{"meta": {"pile_set_name": "Github"}}\n'),
        Buffer.from('{"text": 42}\n'),
        Buffer.concat([Buffer.from('{"text": "bad '), Buffer.from([0xc3, 0x28]), Buffer.from('"}\n')]),
        Buffer.from('{"text": ""}\n'),
        Buffer.from('{"text": "  \\n "}\n'),
        Buffer.from(`{"text": "${'x'.repeat(3000)}"}\n`),
        Buffer.from('\n'),
        Buffer.from('{"text": "NUL \\u0000 inside is fine", "meta": {"pile_set_name": "ArXiv"}}\n'),
        Buffer.from('{"text": "no meta"}'),
      ]),
    );
    const input = await uploadInput(config, { 'bad.jsonl': bad });
    workers.push(await spawnWorker(config));
    const summary = await (
      await ingest(client, { ...config, ingest: { ...config.ingest, maxDocumentBytes: 2000 } }, input, `${input}-out`)
    ).result;

    const { manifest } = await ingestArtifacts(config, summary.manifestUrl);
    expect(manifest.body.summary.skipped).toEqual({
      malformed_json: 1,
      missing_text: 2,
      invalid_utf8: 1,
      empty_text: 2,
      too_large: 1,
      blank_line: 1,
    });
    expect(manifest.body.summary.documents).toBe(3);
    expect(manifest.body.summary.domains).toEqual({
      ArXiv: { documents: 1, bytes: Buffer.byteLength('NUL \u0000 inside is fine') },
      Github: { documents: 1, bytes: 8 },
      unknown: { documents: 1, bytes: 7 },
    });
    expect(manifest.body.files[0]).toMatchObject({ file: 'bad.jsonl', lines: 11, documents: 3 });
  });

  it('writes Parquet shards that read back unchanged in parquetjs, DuckDB and pyarrow', async () => {
    const { summary } = await undisturbed();
    const config = testConfig();
    const { store, manifest } = await ingestArtifacts(config, summary.manifestUrl);
    expect(manifest.body.summary.documents).toBe(65_000);
    expect(manifest.body.summary.files).toBe(3);
    expect(manifest.objects.length).toBe(Math.ceil(30_000 / 400) + Math.ceil(20_000 / 400) + Math.ceil(15_000 / 400));

    const dir = path.join(scratch, 'shards');
    const files = [];
    for (const entry of manifest.objects.slice(0, 3)) {
      const local = path.join(dir, entry.key.replace(/\//g, '_'));
      await downloadVerified(store, entry, local);
      files.push(local);
    }
    const expected = (await Promise.all(files.map(readDocumentShard))).flat();
    expect(expected.length).toBe(1200);
    expect(expected[0]).toMatchObject({ source_file: 'a.jsonl.zst', line: 1, domain: 'Github' });
    expect(expected[0]!.byte_length).toBe(Buffer.byteLength(expected[0]!.text));

    const duck = await (await DuckDBInstance.create(':memory:')).connect();
    const list = files.map((f) => `'${f}'`).join(', ');
    const reader = await duck.runAndReadAll(
      `SELECT doc_id, domain, source_file, line, byte_length, text FROM read_parquet([${list}]) ORDER BY source_file, line`,
    );
    const fromDuck = reader
      .getRowObjectsJson()
      .map((r) => ({ ...r, line: Number(r.line), byte_length: Number(r.byte_length) }));
    const byKey = (a: { source_file: string; line: number }, b: { source_file: string; line: number }) =>
      a.source_file === b.source_file ? a.line - b.line : a.source_file < b.source_file ? -1 : 1;
    expect(fromDuck).toEqual([...expected].sort(byKey));

    const python = await ensurePythonReaders(config.toolsDir, () => undefined);
    const script =
      'import json, sys, pyarrow.parquet as pq\n' +
      'rows = [r for f in sys.argv[1:] for r in pq.read_table(f).to_pylist()]\n' +
      'print(json.dumps(rows))';
    const { stdout } = await run(python, ['-c', script, ...files], { maxBuffer: 256 * 1024 * 1024 });
    expect(JSON.parse(stdout)).toEqual(expected);
  });

  it('after a SIGKILLed worker, resumes and produces artifacts identical to an undisturbed run', async () => {
    const baseline = await undisturbed();
    const config = isolated();
    const first = await spawnWorker(config);
    workers.push(first);
    const out = `s3://tttnn/${uniqueName('out')}`;
    const { handle, result } = await ingest(client, config, bigInput, out);
    await waitFor('committed shards', async () => ((await shardsWritten(config, out)) >= 3 ? true : undefined));
    first.child.kill('SIGKILL');
    await first.exited;
    expect((await handle.describe()).status.name).toBe('RUNNING');
    workers.push(await spawnWorker(config));
    const summary = await result;

    const { store } = await ingestArtifacts(config, summary.manifestUrl);
    expect((await store.getBytes('manifest.json')).equals(baseline.manifest)).toBe(true);
    expect(summary.version).toBe(baseline.summary.version);
    // The files' activities run in the stage's page workflow: the killed worker's file was retried there.
    const page = client.workflow.getHandle(pageWorkflowId(pagedStageId(handle.workflowId, INGEST_FILES_STAGE), 0));
    const attempts = ((await page.fetchHistory()).events ?? []).map(
      (event) => event.activityTaskStartedEventAttributes?.attempt ?? 0,
    );
    expect(Math.max(...attempts)).toBeGreaterThan(1);
  });

  it('drains a worker on SIGTERM (its file handed back and resumed elsewhere) with identical artifacts', async () => {
    const baseline = await undisturbed();
    const config = isolated();
    const first = await spawnWorker({ ...config, worker: { ...config.worker, shutdownGraceSeconds: 1 } });
    workers.push(first);
    const out = `s3://tttnn/${uniqueName('out')}`;
    const { handle, result } = await ingest(client, config, bigInput, out);
    await waitFor('committed shards', async () => ((await shardsWritten(config, out)) >= 3 ? true : undefined));
    first.child.kill('SIGTERM');
    expect(await first.exited).toBe(0);
    expect(first.output()).toContain('worker stopped');
    expect((await handle.describe()).status.name).toBe('RUNNING');
    workers.push(await spawnWorker(config));
    const summary = await result;
    const { store } = await ingestArtifacts(config, summary.manifestUrl);
    expect((await store.getBytes('manifest.json')).equals(baseline.manifest)).toBe(true);
  });

  it('survives a restart of the Temporal server mid-run with identical artifacts', async () => {
    const baseline = await undisturbed();
    const home = path.join(testConfig().home, uniqueName('restart'));
    const base = testConfig({ home, temporal: { address: '127.0.0.1:17333', httpPort: 17343, metricsPort: 17344 } });
    const config = isolated(base);
    const spec = temporalServerSpec(await ensureTemporalCli(config.toolsDir, () => undefined), config);
    await ensureServer(spec);
    const ownClient = await connectClient(config);
    try {
      workers.push(await spawnWorker(config));
      const out = `s3://tttnn/${uniqueName('out')}`;
      const { handle } = await ingest(ownClient, config, bigInput, out);
      await waitFor('committed shards', async () => ((await shardsWritten(config, out)) >= 3 ? true : undefined));
      await stopServer(spec);
      expect(await shardsWritten(config, out)).toBeLessThan(baseline.summary.shards);
      await ensureServer(spec);
      const summary = await waitFor(
        'the ingest to finish after the restart',
        () => ownClient.workflow.getHandle(handle.workflowId).result() as Promise<IngestSummary>,
        150_000,
      );
      const { store } = await ingestArtifacts(config, summary.manifestUrl);
      expect((await store.getBytes('manifest.json')).equals(baseline.manifest)).toBe(true);
    } finally {
      await ownClient.connection.close();
      await stopServer(spec);
      await fs.rm(home, { recursive: true, force: true });
    }
  });

  it('re-running the same input gives the same version without new work; another input a new version', async () => {
    const baseline = await undisturbed();
    const config = isolated();
    workers.push(await spawnWorker(config));
    const out = baseline.summary.manifestUrl.split('/').slice(0, -2).join('/');
    const again = await (await ingest(client, config, bigInput, out)).result;
    expect(again).toEqual(baseline.summary);

    const other = await uploadInput(config, { 'a.jsonl.zst': path.join(scratch, 'c.jsonl.zst') });
    const changed = await (await ingest(client, config, other, out)).result;
    expect(changed.version).not.toBe(baseline.summary.version);
    expect(changed.documents).toBe(15_000);
  });
});
