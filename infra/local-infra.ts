import { promises as fs } from 'node:fs';
import path from 'node:path';
import { CreateBucketCommand, HeadBucketCommand } from '@aws-sdk/client-s3';
import type { Config } from '../core/config';
import { s3Client } from '../core/store/s3-store';
import { type ServerSpec, type ServerStatus, ensureServer, serverStatus, stopServer } from './managed-process';
import { s3ServerSpec } from './s3-server';
import { temporalServerSpec } from './temporal-server';
import { type Log, ensureTemporalCli, ensureVersitygw } from './tools';

/** The buckets the local S3 server starts with: artifacts, and inputs users upload. */
export const LOCAL_BUCKETS = ['tttnn'];

export async function localServerSpecs(config: Config, log: Log): Promise<ServerSpec[]> {
  const specs = [temporalServerSpec(await ensureTemporalCli(config.toolsDir, log), config)];
  if (config.s3.local) specs.push(s3ServerSpec(await ensureVersitygw(config.toolsDir, log), config));
  return specs;
}

/** `tttnn infra up`: installs what is missing, starts what is not running, reuses what is. */
export async function infraUp(config: Config, log: Log): Promise<ServerStatus[]> {
  const statuses: ServerStatus[] = [];
  for (const spec of await localServerSpecs(config, log)) {
    await fs.mkdir(path.join(spec.runDir, 'buckets'), { recursive: true });
    const status = await ensureServer(spec);
    log(`${spec.name}: ${status.reused ? 'already running' : 'started'} on ${status.endpoint}`);
    statuses.push(status);
  }
  if (config.s3.local) await ensureBuckets(config, LOCAL_BUCKETS);
  return statuses;
}

export async function infraDown(config: Config, log: Log): Promise<void> {
  for (const spec of (await localServerSpecs(config, log)).reverse()) {
    log(`${spec.name}: ${(await stopServer(spec)) ? 'stopped' : 'was not running (started by this project)'}`);
  }
}

export async function infraStatus(config: Config, log: Log): Promise<ServerStatus[]> {
  return Promise.all((await localServerSpecs(config, log)).map((spec) => serverStatus(spec)));
}

export async function ensureBuckets(config: Pick<Config, 's3'>, buckets: string[]): Promise<void> {
  const client = s3Client(config.s3);
  for (const bucket of buckets) {
    try {
      await client.send(new HeadBucketCommand({ Bucket: bucket }));
    } catch {
      // Two processes starting at once (a CLI and a test run) may both see it missing: the loser's create is fine.
      await client.send(new CreateBucketCommand({ Bucket: bucket })).catch((err: Error) => {
        if (err.name !== 'BucketAlreadyOwnedByYou') throw err;
      });
    }
  }
}
