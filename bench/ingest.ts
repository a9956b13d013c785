import { execFileSync } from 'node:child_process';
import { createWriteStream, existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { CompressStream } from 'zstd-napi';
import { followIngest, ingestInput, startIngest } from '../cli/ingest-command';
import { connectClient } from '../cli/temporal-client';
import { loadConfig } from '../core/config';
import { infraUp } from '../infra/local-infra';
import { startWorkers } from '../workers/worker';
import { taskQueueName } from '../workflows/shared';
import { seededRandom } from '../core/seeded-random';

/**
 * `npm run bench:ingest`: ingest throughput on a generated 200 MB Pile-format file (zstd), through the whole
 * system (Temporal workflow, a worker in this process, Parquet shards into the local S3 server), beside the
 * floor of merely decompressing and counting its lines (`zstd -d | wc -l`).
 */
const TARGET_BYTES = 200 * 1024 * 1024;
const DOMAINS = ['Pile-CC', 'Github', 'ArXiv', 'PubMed Central', 'FreeLaw', 'StackExchange'];

async function generate(file: string): Promise<{ documents: number; bytes: number }> {
  const random = seededRandom(42);
  const vocabulary = Array.from({ length: 20_000 }, (_, i) => i.toString(36) + 'abcdefghij'.slice(0, 1 + (i % 7)));
  const out = new CompressStream({ compressionLevel: 3 });
  const sink = out.pipe(createWriteStream(file));
  let bytes = 0;
  let documents = 0;
  while (bytes < TARGET_BYTES) {
    // Document lengths spread like the Pile's: many short, some long (100 B – 64 KB).
    const words = Math.floor(Math.exp(3 + random() * 6.5));
    const text = Array.from({ length: words }, () => vocabulary[Math.floor(random() ** 2 * vocabulary.length)]).join(
      ' ',
    );
    const line = `${JSON.stringify({ text, meta: { pile_set_name: DOMAINS[documents % DOMAINS.length] } })}\n`;
    bytes += Buffer.byteLength(line);
    documents += 1;
    if (!out.write(line)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
  }
  out.end();
  await new Promise<void>((resolve) => sink.on('finish', () => resolve()));
  return { documents, bytes };
}

async function main(): Promise<void> {
  const config = loadConfig();
  const dir = path.join(config.home, 'bench');
  const file = path.join(dir, 'pile-200mb.jsonl.zst');
  await fs.mkdir(dir, { recursive: true });
  if (!existsSync(file)) {
    const t = Date.now();
    const { documents, bytes } = await generate(file);
    console.log(`generated ${file}: ${documents} documents, ${(bytes / 1e6).toFixed(0)} MB (${Date.now() - t} ms)`);
  }
  const compressed = (await fs.stat(file)).size;

  const t0 = process.hrtime.bigint();
  const lines = execFileSync('bash', ['-c', `zstd -d -c '${file}' | wc -l`])
    .toString()
    .trim();
  const floorSeconds = Number(process.hrtime.bigint() - t0) / 1e9;

  await infraUp(config, () => undefined);
  const workers = await startWorkers(config, () => undefined, true);
  const client = await connectClient(config);
  try {
    const input = ingestInput(config, { input: file, out: `s3://tttnn/bench/ingest-${Date.now()}` });
    const t1 = process.hrtime.bigint();
    const handle = await startIngest(client, config, input, `bench-${Date.now()}`);
    const summary = await followIngest(handle, false, taskQueueName(config.temporal.taskQueuePrefix, 'cpu'));
    const seconds = Number(process.hrtime.bigint() - t1) / 1e9;
    const uncompressedMb = Number(execFileSync('bash', ['-c', `zstd -d -c '${file}' | wc -c`]).toString()) / 1e6;
    console.log(
      `input: ${file} (${(compressed / 1e6).toFixed(1)} MB zstd, ${uncompressedMb.toFixed(1)} MB JSON lines)`,
    );
    console.log(
      `floor  zstd -d | wc -l : ${floorSeconds.toFixed(2)} s, ${lines} lines, ${(uncompressedMb / floorSeconds).toFixed(1)} MB/s`,
    );
    console.log(
      `ingest (workflow → Parquet on S3): ${seconds.toFixed(2)} s, ${(summary.documents / seconds).toFixed(0)} documents/s, ` +
        `${(uncompressedMb / seconds).toFixed(1)} MB/s of input, ${(summary.bytes / 1e6 / seconds).toFixed(1)} MB/s of text, ` +
        `${summary.shards} shards, ${(seconds / floorSeconds).toFixed(1)}× the floor`,
    );
  } finally {
    await workers.shutdown();
    await client.connection.close();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
