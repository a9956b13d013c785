import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Config } from '../core/config';
import type { ServerSpec } from './managed-process';

const run = promisify(execFile);

export function splitAddress(address: string): { host: string; port: number } {
  const match = /^([^:]+):(\d+)$/.exec(address);
  if (!match) throw new Error(`invalid temporal.address ${address}: expected host:port`);
  return { host: match[1]!, port: Number(match[2]) };
}

/**
 * The Temporal dev server (`temporal server start-dev`) on loopback with a SQLite file, so that a restarted
 * server keeps its workflows. Every port is set: the CLI picks random http/metrics ports otherwise.
 */
export function temporalServerSpec(binary: string, config: Pick<Config, 'home' | 'temporal'>): ServerSpec {
  const { host, port } = splitAddress(config.temporal.address);
  const dataDir = path.join(config.home, 'temporal');
  return {
    name: 'temporal',
    host,
    port,
    runDir: dataDir,
    command: binary,
    args: [
      'server',
      'start-dev',
      '--db-filename',
      path.join(dataDir, 'temporal.sqlite'),
      '--ip',
      host,
      '--port',
      String(port),
      '--ui-port',
      String(config.temporal.uiPort),
      '--http-port',
      String(config.temporal.httpPort),
      '--metrics-port',
      String(config.temporal.metricsPort),
      '--namespace',
      config.temporal.namespace,
      '--log-level',
      'warn',
      ...(config.temporal.ui ? [] : ['--headless']),
    ],
    healthy: async () => {
      try {
        const { stdout } = await run(binary, ['operator', 'cluster', 'health', '--address', config.temporal.address], {
          timeout: 5000,
        });
        return stdout.includes('SERVING');
      } catch {
        return false;
      }
    },
    portHint: 'stop it, or choose another port with temporal.address (TTTNN_TEMPORAL_ADDRESS)',
  };
}
