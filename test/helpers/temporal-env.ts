import { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { ensureTemporalCli } from '../../infra/tools';
import { testConfig } from '../test-config';

/**
 * An ephemeral Temporal server of the pinned CLI on loopback, for workflow tests with stub activities. The SDK's
 * warnings (failures that tests cause on purpose) stay out of the test output.
 */
export async function localWorkflowEnvironment(extraArgs: string[] = []): Promise<TestWorkflowEnvironment> {
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  const path = await ensureTemporalCli(testConfig().toolsDir, () => undefined);
  return TestWorkflowEnvironment.createLocal({
    server: { executable: { type: 'existing-path', path }, ip: '127.0.0.1', extraArgs },
  });
}
