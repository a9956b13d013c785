import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { createIngestActivities } from '../../../activities/ingest';
import type { ArtifactStore } from '../../../core/store/artifact-store';
import { FileStore } from '../../../core/store/file-store';
import type { IngestFileHeartbeat, IngestLimits, IngestPlanRef } from '../../../workflows/shared';
import { writeGeneratedPile } from '../../integration/harness';

/** A file store that records every key written through it, in order. */
function recordingStore(url: string, writes: string[]): ArtifactStore {
  const store = new FileStore(url);
  return Object.assign(Object.create(store) as FileStore, {
    putFile: (key: string, local: string) => {
      writes.push(key);
      return store.putFile(key, local);
    },
    putBytes: (key: string, data: Uint8Array | string) => {
      writes.push(key);
      return store.putBytes(key, data);
    },
  });
}

const quiet = { logger: new DefaultLogger('ERROR') };

/**
 * ingestFile's per-file checkpoint, on a local store: a run cancelled after N committed shards resumes from its
 * heartbeat without writing those shards again, and ends with shards, record and manifest identical to an
 * undisturbed run's.
 */
describe('ingestFile resume from its heartbeat checkpoint', () => {
  const limits: IngestLimits = { rowsPerShard: 50, maxShardBytes: 64 * 1024 * 1024, maxDocumentBytes: 1 << 20 };
  let scratch: string;
  let input: string;
  const writes: string[] = [];
  const activities = createIngestActivities({ openStore: (url) => recordingStore(url, writes) });

  beforeAll(async () => {
    scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'tttnn-resume-'));
    input = path.join(scratch, 'input');
    await writeGeneratedPile(path.join(input, 'a.jsonl'), 480, false, 7);
  });
  afterAll(async () => {
    await fs.rm(scratch, { recursive: true, force: true });
  });

  const plan = (out: string): Promise<IngestPlanRef> =>
    new MockActivityEnvironment({}, quiet).run(activities.planIngest, { inputUrl: input, outUrl: out, limits });
  const shardsOf = async (dir: string) =>
    (await fs.readdir(path.join(dir, 'shards'))).filter((name) => name.endsWith('.parquet')).sort();

  it('does not re-write committed shards, and ends byte-identical to an undisturbed run', async () => {
    // Undisturbed.
    const a = await plan(path.join(scratch, 'out-a'));
    const countersA = await new MockActivityEnvironment({}, quiet).run(activities.ingestFile, {
      outStoreUrl: a.outStoreUrl,
      limits,
      index: 0,
    });
    const shardNames = await shardsOf(a.outStoreUrl);
    expect(shardNames).toHaveLength(Math.ceil(480 / 50));

    // Cancelled (as a killed worker's attempt ends) once its heartbeat says 3 shards are committed.
    const b = await plan(path.join(scratch, 'out-b'));
    expect(b.version).toBe(a.version);
    const killed = new MockActivityEnvironment({}, quiet);
    let last: IngestFileHeartbeat | undefined;
    killed.on('heartbeat', (details: IngestFileHeartbeat) => {
      last = details;
      if ((details.checkpoint?.shards.length ?? 0) >= 3) killed.cancel();
    });
    await expect(killed.run(activities.ingestFile, { outStoreUrl: b.outStoreUrl, limits, index: 0 })).rejects.toThrow();
    const committed = last?.checkpoint?.shards.map((s) => s.key) ?? [];
    expect(committed).toEqual(shardNames.slice(0, 3).map((name) => `shards/${name}`));
    expect(await shardsOf(b.outStoreUrl)).toEqual(shardNames.slice(0, 3));
    const mtimes = await Promise.all(
      committed.map(async (key) => (await fs.stat(path.join(b.outStoreUrl, key))).mtimeMs),
    );

    // The retry, seeded with the last heartbeat as the server would hand it over.
    writes.length = 0;
    const countersB = await new MockActivityEnvironment({ heartbeatDetails: last }, quiet).run(activities.ingestFile, {
      outStoreUrl: b.outStoreUrl,
      limits,
      index: 0,
    });
    expect(writes).toEqual([...shardNames.slice(3).map((name) => `shards/${name}`), 'parts/00000.json']);
    expect(
      await Promise.all(committed.map(async (key) => (await fs.stat(path.join(b.outStoreUrl, key))).mtimeMs)),
    ).toEqual(mtimes);
    expect(countersB).toEqual(countersA);
    expect(countersB).toMatchObject({ files: 1, documents: 480, shards: shardNames.length });
    for (const name of shardNames) {
      const [bytesA, bytesB] = await Promise.all(
        [a, b].map((run) => fs.readFile(path.join(run.outStoreUrl, 'shards', name))),
      );
      expect(bytesB!.equals(bytesA!)).toBe(true);
    }
    const record = (dir: string) => fs.readFile(path.join(dir, 'parts', '00000.json'), 'utf8');
    expect(await record(b.outStoreUrl)).toBe(await record(a.outStoreUrl));

    // Done is done: a further attempt returns the record's counters and writes nothing.
    writes.length = 0;
    expect(
      await new MockActivityEnvironment({}, quiet).run(activities.ingestFile, {
        outStoreUrl: b.outStoreUrl,
        limits,
        index: 0,
      }),
    ).toEqual(countersA);
    expect(writes).toEqual([]);

    // The manifests agree byte for byte, and each is the last object its step writes.
    for (const run of [a, b]) {
      writes.length = 0;
      const summary = await new MockActivityEnvironment({}, quiet).run(activities.writeIngestManifest, {
        outStoreUrl: run.outStoreUrl,
        limits,
      });
      expect(summary).toMatchObject({ version: a.version, files: 1, documents: 480, shards: shardNames.length });
      expect(writes.at(-1)).toBe('manifest.json');
    }
    const manifest = (dir: string) => fs.readFile(path.join(dir, 'manifest.json'));
    expect((await manifest(b.outStoreUrl)).equals(await manifest(a.outStoreUrl))).toBe(true);
  });
});
