/**
 * One real operation through every native addon the project loads, under whichever Node runs this file: the check
 * behind the Node versions that package.json `engines` and the README claim (test/integration/node-versions.test.ts
 * runs it under each claimed version; scripts/test-node-versions.sh runs the whole suite's build and unit tests).
 *
 *   ~/.cache/tttnn/node-24.22.3/bin/node dist/scripts/node-smoke.js [--temporal 127.0.0.1:7233]
 *
 * Prints one JSON line per check ({ check, ok, ms, detail }) and exits 1 when any failed. The addons were compiled
 * by whichever Node ran `npm ci`; all are N-API (ABI-stable), so one build must load in every claimed version.
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { ParquetReader, ParquetSchema, ParquetWriter } from '@dsnp/parquetjs';
import { compress, decompress } from 'zstd-napi';
import { buildIndex } from '../core/index/vector-index';
import { initBackend } from '../core/backend';

const REPO = path.resolve(__dirname, '..', '..');

async function parquetRoundTrip(dir: string): Promise<string> {
  const file = path.join(dir, 'smoke.parquet');
  const schema = new ParquetSchema({
    id: { type: 'INT64' },
    text: { type: 'UTF8', compression: 'SNAPPY' },
  });
  const writer = await ParquetWriter.openFile(schema, file);
  for (let i = 0; i < 3; i++) await writer.appendRow({ id: i, text: `row ${i}` });
  await writer.close();
  const reader = await ParquetReader.openFile(file);
  const cursor = reader.getCursor();
  const texts: string[] = [];
  for (let row = await cursor.next(); row !== null; row = await cursor.next()) {
    texts.push(String((row as { text: unknown }).text));
  }
  await reader.close();
  if (texts.join('|') !== 'row 0|row 1|row 2') throw new Error(`read back ${JSON.stringify(texts)}`);
  // DuckDB is a dev dependency (the tests read our Parquet with it); absent from a production install.
  let duck: typeof import('@duckdb/node-api') | undefined;
  try {
    duck = await import('@duckdb/node-api');
  } catch {
    return '3 rows written and read back (DuckDB not installed)';
  }
  const instance = await duck.DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  const rows = (
    await connection.runAndReadAll(`SELECT count(*) AS n FROM read_parquet('${file}')`)
  ).getRowObjectsJson();
  connection.closeSync();
  instance.closeSync();
  if (Number(rows[0]?.n) !== 3) throw new Error(`DuckDB counted ${JSON.stringify(rows[0]?.n)} rows`);
  return '3 rows written and read back, DuckDB counts 3';
}

function zstdRoundTrip(): string {
  const input = Buffer.from('test-time training on nearest neighbors '.repeat(100));
  const packed = compress(input);
  if (!decompress(packed).equals(input)) throw new Error('round trip changed the bytes');
  return `${input.length} → ${packed.length} bytes and back`;
}

function indexSearch(kind: 'usearch' | 'hnswlib'): string {
  const d = 8;
  const n = 64;
  const vectors = new Float32Array(n * d).map((_, i) => Math.sin(i * 0.37) + Math.floor(i / d) * 0.01);
  const index = buildIndex({ kind, metric: 'l2sq', dtype: 'f32' }, vectors, d, { threads: 1 });
  try {
    const found = index.search(vectors.subarray(17 * d, 18 * d), 1);
    if (found.rows[0] !== 17 || found.distances[0] !== 0) {
      throw new Error(`nearest to row 17 was row ${found.rows[0]} at ${found.distances[0]}`);
    }
  } finally {
    index.dispose();
  }
  return `${n} × ${d}-d vectors, row 17 finds itself`;
}

async function tensorflowOp(): Promise<string> {
  const info = await initBackend({ backend: 'tensorflow', log: () => undefined });
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const tf = require('@tensorflow/tfjs') as typeof import('@tensorflow/tfjs');
  const product = tf.matMul(tf.tensor2d([[1, 2]]), tf.tensor2d([[3], [4]]));
  const value = (await product.data())[0];
  product.dispose();
  if (tf.getBackend() !== 'tensorflow' || value !== 11) throw new Error(`${tf.getBackend()} computed ${value}`);
  return `matMul on TensorFlow ${info.tfVersion ?? '?'}`;
}

async function temporal(address: string | undefined): Promise<string> {
  const { NativeConnection, Runtime } = await import('@temporalio/worker');
  Runtime.instance(); // loads @temporalio/core-bridge and starts Core's runtime
  // @swc/core (native) compiles TypeScript for jest and the workflow bundle.
  const swc = await import('@swc/core');
  const js = swc.transformSync('const a: number = 1;', { jsc: { parser: { syntax: 'typescript' } } }).code;
  if (!js.includes('a = 1')) throw new Error(`swc wrote ${js}`);
  if (address === undefined) return 'Core runtime started; swc compiled TypeScript';
  const connection = await NativeConnection.connect({ address });
  try {
    await connection.workflowService.getSystemInfo({});
  } finally {
    await connection.close();
  }
  return `Core runtime started, GetSystemInfo from ${address}; swc compiled TypeScript`;
}

async function cliHelp(): Promise<string> {
  const { stdout } = await promisify(execFile)(process.execPath, [path.join(REPO, 'bin', 'tttnn'), '--help']);
  if (!stdout.includes('Usage: tttnn')) throw new Error(`unexpected --help output: ${stdout.slice(0, 200)}`);
  return 'bin/tttnn --help';
}

async function main(): Promise<void> {
  const at = process.argv.indexOf('--temporal');
  const address = at >= 0 ? process.argv[at + 1] : undefined;
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tttnn-node-smoke-'));
  const checks: [string, () => string | Promise<string>][] = [
    ['parquet', () => parquetRoundTrip(dir)],
    ['zstd', zstdRoundTrip],
    ['usearch', () => indexSearch('usearch')],
    ['hnswlib', () => indexSearch('hnswlib')],
    ['tensorflow', tensorflowOp],
    ['temporal', () => temporal(address)],
    ['cli', cliHelp],
  ];
  let failed = false;
  for (const [check, run] of checks) {
    const t0 = performance.now();
    try {
      const detail = await run();
      console.log(JSON.stringify({ check, ok: true, ms: Math.round(performance.now() - t0), detail }));
    } catch (err) {
      failed = true;
      const detail = (err as Error).message.split('\n')[0];
      console.log(JSON.stringify({ check, ok: false, ms: Math.round(performance.now() - t0), detail }));
    }
  }
  await fs.rm(dir, { recursive: true, force: true });
  console.log(JSON.stringify({ node: process.version, ok: !failed }));
  // Core's runtime and TensorFlow's thread pools keep the event loop alive.
  process.exit(failed ? 1 : 0);
}

void main();
