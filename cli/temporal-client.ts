import { Client, Connection } from '@temporalio/client';
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
