import { localServerSpecs } from '../infra/local-infra';
import { stopServer } from '../infra/managed-process';
import { testConfig } from './test-config';

/** Stops the servers that global-setup started; ones that were already running stay up. */
export default async function globalTeardown(): Promise<void> {
  const started = new Set((process.env.TEST_STARTED_TTTNN_SERVERS ?? '').split(',').filter(Boolean));
  for (const spec of await localServerSpecs(testConfig(), () => undefined)) {
    if (started.has(spec.name)) await stopServer(spec);
  }
}
