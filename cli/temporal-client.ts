import {
  Client,
  Connection,
  WorkflowExecutionAlreadyStartedError,
  type WorkflowHandle,
  type WorkflowStartOptions,
} from '@temporalio/client';
import type { Workflow } from '@temporalio/common';
import type { Config } from '../core/config';

export async function connectClient(config: Config): Promise<Client> {
  let connection: Connection;
  try {
    connection = await Connection.connect({ address: config.temporal.address, connectTimeout: '5 seconds' });
  } catch {
    throw new Error(
      `cannot reach the Temporal server at ${config.temporal.address}: start it with 'tttnn infra up' or set temporal.address`,
    );
  }
  return new Client({ connection, namespace: config.temporal.namespace });
}

/**
 * Starts a workflow under its deterministic id, or attaches to the running one with that id: the same request typed
 * twice is one run, not two.
 */
export async function startOrAttach<W extends Workflow>(
  client: Client,
  workflow: W,
  options: WorkflowStartOptions<W>,
): Promise<WorkflowHandle<W>> {
  try {
    return await client.workflow.start(workflow, options);
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) return client.workflow.getHandle<W>(options.workflowId);
    throw err;
  }
}
