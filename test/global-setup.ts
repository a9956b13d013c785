import { infraUp } from '../infra/local-infra';
import { testConfig } from './test-config';

/** Starts (or reuses) the real Temporal dev server and versitygw on loopback for every test file. */
export default async function globalSetup(): Promise<void> {
  const statuses = await infraUp(testConfig(), (line) => process.stderr.write(`[infra] ${line}\n`));
  process.env.TEST_STARTED_TTTNN_SERVERS = statuses
    .filter((s) => !s.reused)
    .map((s) => s.name)
    .join(',');
}
