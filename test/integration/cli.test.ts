import { execFile } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { infraUp } from '../../infra/local-infra';
import { ensureTemporalCli, ensureVersitygw } from '../../infra/tools';
import { testConfig } from '../test-config';
import { configEnv, uniqueName } from './harness';

const run = promisify(execFile);
const TTTNN = path.resolve(__dirname, '..', '..', 'bin', 'tttnn');

/** Runs the built CLI; resolves with its exit code and output instead of throwing. */
async function tttnn(
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [TTTNN, ...args], { env, timeout: 120_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('tttnn CLI', () => {
  const config = { ...testConfig(), temporal: { ...testConfig().temporal, taskQueuePrefix: uniqueName('cli') } };
  const env = configEnv(config);

  it('ingests the bundled sample with a worker of its own and prints the per-domain summary', async () => {
    const out = `s3://tttnn/${uniqueName('cli-out')}`;
    const sample = path.resolve(__dirname, '..', '..', 'samples', 'pile', 'sample.jsonl.zst');
    const result = await tttnn(['ingest', '--input', sample, '--out', out], env);
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(/ingest done \|[=█]+\| 100% 0\.2\/0\.2 MB · 1\/1 files · 180 docs/);
    expect(result.stdout).toMatch(/running a worker for cli-[0-9a-f]+-cpu in this process/);
    expect(result.stdout).toMatch(/ingest version [0-9a-f]{16}: 180 documents/);
    expect(result.stdout).toMatch(/Github\s+60 docs/);
    expect(result.stdout).toContain('skipped lines: none');
    expect(result.stdout).toContain(`manifest: ${out}/`);
  });

  it('gives one clear line for an unreachable Temporal server, a missing input and a bad flag', async () => {
    const down = await tttnn(['ingest', '-i', '/tmp/x.jsonl', '-o', '/tmp/out'], {
      ...env,
      TTTNN_TEMPORAL_ADDRESS: '127.0.0.1:9',
    });
    expect(down.code).toBe(1);
    expect(down.stderr.trim()).toBe(
      "tttnn: cannot reach the Temporal server at 127.0.0.1:9: start it with 'tttnn infra up' or set temporal.address",
    );
    const missing = await tttnn(['ingest', '-i', '/nonexistent/dir', '-o', '/tmp/out', '--no-progress'], env);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/no \*\.jsonl or \*\.jsonl\.zst files under \/nonexistent\/dir/);
    const missingFile = await tttnn(
      ['ingest', '-i', '/tmp/nest/a/missing.jsonl.zst', '-o', '/tmp/out', '--no-progress'],
      env,
    );
    expect(missingFile.code).toBe(1);
    expect(missingFile.stderr.trim()).toBe('tttnn: input file /tmp/nest/a/missing.jsonl.zst does not exist');
    const sample = path.resolve(__dirname, '..', '..', 'samples', 'pile', 'sample.jsonl.zst');
    const creds = await tttnn(['ingest', '-i', sample, '-o', 's3://tttnn/x', '--no-progress'], {
      ...env,
      TTTNN_S3_SECRET_ACCESS_KEY: 'wrong-secret-123',
    });
    expect(creds.code).toBe(1);
    expect(creds.stderr.trim()).toMatch(
      /^tttnn: the S3 server at .* rejected the credentials of access key id tttnn-test/,
    );
    expect(creds.stderr + creds.stdout).not.toContain('wrong-secret-123');
    const bad = await tttnn(['infra', 'status', '--set', 'temporal.uiPort=abc'], env);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/temporal\.uiPort/);
    const badK = await tttnn(['demo', '--k', '0'], env);
    expect(badK.code).toBe(1);
    expect(badK.stderr).toMatch(/--k must be a positive integer, not 0/);
  });

  it('reuses running servers, installs nothing the second time, and names a port taken by another program', async () => {
    const lines: string[] = [];
    const statuses = await infraUp(config, (line) => lines.push(line));
    expect(statuses.every((s) => s.reused)).toBe(true);
    expect(lines.filter((l) => l.startsWith('install') || l.startsWith('build'))).toEqual([]);
    await ensureTemporalCli(config.toolsDir, (l) => lines.push(l));
    await ensureVersitygw(config.toolsDir, (l) => lines.push(l));
    expect(lines.filter((l) => l.startsWith('install') || l.startsWith('build'))).toEqual([]);

    const blocker = net.createServer(() => undefined);
    await new Promise<void>((resolve) => blocker.listen(17471, '127.0.0.1', resolve));
    try {
      const result = await tttnn(['infra', 'up'], {
        ...env,
        TTTNN_HOME: path.join(config.home, uniqueName('ports')),
        TTTNN_TEMPORAL_ADDRESS: '127.0.0.1:17471',
      });
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/port 17471 on 127\.0\.0\.1 is in use by another program .*temporal\.address/);
    } finally {
      blocker.close();
    }
  });
});
