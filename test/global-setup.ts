import { promises as fs } from 'node:fs';
import { infraUp, localServerSpecs } from '../infra/local-infra';
import { ensureNativeTensorflow } from '../infra/tensorflow';
import { TEST_HOME, testConfig } from './test-config';

/** Starts (or reuses) the real Temporal dev server and versitygw on loopback for every test file. */
export default async function globalSetup(): Promise<void> {
  const config = testConfig();
  const log = (line: string) => process.stderr.write(`[infra] ${line}\n`);
  // A suite that starts its own servers starts them on empty data, so that no run sees another's leftovers.
  const running = await Promise.all((await localServerSpecs(config, log)).map((spec) => spec.healthy()));
  if (!running.some(Boolean)) await fs.rm(TEST_HOME, { recursive: true, force: true });
  const statuses = await infraUp(config, log);
  // Model tests run on native TensorFlow; `npm ci` wipes tfjs-node's deps/, so this rebuilds it (wheel cached).
  await ensureNativeTensorflow({ cacheDir: config.toolsDir, log });
  process.env.TEST_STARTED_TTTNN_SERVERS = statuses
    .filter((s) => !s.reused)
    .map((s) => s.name)
    .join(',');
}
