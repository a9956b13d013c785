import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { ensureNodeBinary, testedNodeVersions } from '../helpers/node-binary';
import { testConfig } from '../test-config';

const run = promisify(execFile);
const SMOKE = path.resolve(__dirname, '..', '..', 'dist', 'scripts', 'node-smoke.js');

interface Check {
  check?: string;
  ok: boolean;
  detail?: string;
}

/**
 * The addons in node_modules were compiled by the Node that ran `npm ci`; each tested version loads every one and
 * does one real operation (scripts/node-smoke.ts). The whole build, lint and unit suite per version is
 * scripts/test-node-versions.sh.
 */
describe.each(testedNodeVersions())('Node %s', (version) => {
  it('loads every native addon and does one real operation with each', async () => {
    const config = testConfig();
    const node = await ensureNodeBinary(version, config.toolsDir);
    const result = await run(node, [SMOKE, '--temporal', config.temporal.address], { timeout: 90_000 }).catch(
      (err: { stdout?: string; stderr?: string; message: string }) => ({
        stdout: err.stdout ?? '',
        stderr: `${err.message}\n${err.stderr ?? ''}`,
      }),
    );
    const lines = result.stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Check);
    const failed = lines.filter((l) => !l.ok).map((l) => `${l.check ?? 'all'}: ${l.detail ?? ''}`);
    expect({ failed, stderr: failed.length > 0 ? result.stderr.slice(-2000) : '' }).toEqual({ failed: [], stderr: '' });
    expect(lines.map((l) => l.check ?? 'all')).toEqual([
      'parquet',
      'zstd',
      'usearch',
      'hnswlib',
      'tensorflow',
      'temporal',
      'cli',
      'all',
    ]);
  }, 240_000);
});
