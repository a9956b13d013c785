import {
  Client,
  Connection,
  WorkflowExecutionAlreadyStartedError,
  type WorkflowHandle,
  type WorkflowStartOptions,
} from '@temporalio/client';
import type { Workflow } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import type { Config } from '../core/config';
import { SEARCH_ATTRIBUTES } from '../workflows/search-attributes';
import { temporalTls } from '../core/temporal-tls';

export { SEARCH_ATTRIBUTES };

export async function connectClient(config: Config): Promise<Client> {
  let connection: Connection;
  const tls = temporalTls(config.temporal);
  try {
    connection = await Connection.connect({ address: config.temporal.address, connectTimeout: '5 seconds', tls });
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

/**
 * Registers the search attributes on the namespace when missing (the local dev server; a cluster where this client
 * may). Where it may not (Temporal Cloud without the permission), workflows start without them: false, and a hint.
 */
export async function ensureSearchAttributes(client: Client, log: (line: string) => void): Promise<boolean> {
  const { operatorService } = client.connection;
  const namespace = client.options.namespace;
  try {
    const { customAttributes } = await operatorService.listSearchAttributes({ namespace });
    const missing = Object.values(SEARCH_ATTRIBUTES).filter((key) => !(key.name in (customAttributes ?? {})));
    if (missing.length === 0) return true;
    await operatorService.addSearchAttributes({
      namespace,
      searchAttributes: Object.fromEntries(
        missing.map((key) => [key.name, temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD]),
      ),
    });
    return true;
  } catch (err) {
    log(
      `note: workflows start without search attributes (${(err as Error).message.split('\n')[0]}); register ` +
        `${Object.values(SEARCH_ATTRIBUTES)
          .map((key) => key.name)
          .join(', ')} as Keyword ('temporal operator search-attribute create') to filter runs and builds in the UI`,
    );
    return false;
  }
}
