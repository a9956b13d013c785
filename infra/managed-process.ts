import { spawn } from 'node:child_process';
import { existsSync, openSync, closeSync, promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';

/** A local server the project starts in the background, finds again by its pid file, and health-checks. */
export interface ServerSpec {
  name: string;
  host: string;
  port: number;
  /** Folder holding `<name>.pid` and `<name>.log`. */
  runDir: string;
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  healthy(): Promise<boolean>;
  /** What to tell the user to do when the port is taken by something else. */
  portHint: string;
}

export interface ServerStatus {
  name: string;
  endpoint: string;
  running: boolean;
  pid?: number;
  reused?: boolean;
  log: string;
}

const pidFile = (spec: ServerSpec) => path.join(spec.runDir, `${spec.name}.pid`);
const logFile = (spec: ServerSpec) => path.join(spec.runDir, `${spec.name}.log`);

export async function serverStatus(spec: ServerSpec): Promise<ServerStatus> {
  const pid = await readPid(spec);
  return {
    name: spec.name,
    endpoint: `${spec.host}:${spec.port}`,
    running: await spec.healthy(),
    pid: pid && isAlive(pid) ? pid : undefined,
    log: logFile(spec),
  };
}

/** Starts the server unless a healthy one already answers on its port; waits until it is healthy. */
export async function ensureServer(spec: ServerSpec, timeoutMs = 60_000): Promise<ServerStatus> {
  if (await spec.healthy()) return { ...(await serverStatus(spec)), reused: true };
  if (await portInUse(spec.host, spec.port)) {
    throw new Error(
      `port ${spec.port} on ${spec.host} is in use by another program that is not a healthy ${spec.name}: ${spec.portHint}`,
    );
  }
  await fs.mkdir(spec.runDir, { recursive: true });
  const log = openSync(logFile(spec), 'a');
  const child = spawn(spec.command, spec.args, {
    detached: true,
    stdio: ['ignore', log, log],
    env: spec.env ?? process.env,
  });
  closeSync(log);
  const exit: { code?: number } = {};
  child.on('exit', (code) => (exit.code = code ?? -1));
  child.unref();
  await fs.writeFile(pidFile(spec), `${child.pid}\n`);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (exit.code !== undefined) {
      const tail = (await fs.readFile(logFile(spec), 'utf8')).trim().split('\n').slice(-3).join(' | ');
      throw new Error(`${spec.name} exited with code ${exit.code} at start: ${tail} (log: ${logFile(spec)})`);
    }
    if (await spec.healthy()) return { ...(await serverStatus(spec)), reused: false };
    await sleep(100);
  }
  throw new Error(
    `${spec.name} did not become healthy on ${spec.host}:${spec.port} within ${timeoutMs / 1000}s (log: ${logFile(spec)})`,
  );
}

/** Stops the server this project started (by pid file): SIGTERM, then SIGKILL after a grace period. */
export async function stopServer(
  spec: ServerSpec,
  graceMs = 10_000,
  signal: NodeJS.Signals = 'SIGTERM',
): Promise<boolean> {
  const pid = await readPid(spec);
  if (!pid || !isAlive(pid)) {
    await fs.rm(pidFile(spec), { force: true });
    return false;
  }
  process.kill(pid, signal);
  const deadline = Date.now() + graceMs;
  while (isAlive(pid) && Date.now() < deadline) await sleep(50);
  if (isAlive(pid)) process.kill(pid, 'SIGKILL');
  while (isAlive(pid)) await sleep(20);
  await fs.rm(pidFile(spec), { force: true });
  return true;
}

async function readPid(spec: ServerSpec): Promise<number | undefined> {
  if (!existsSync(pidFile(spec))) return undefined;
  const pid = Number((await fs.readFile(pidFile(spec), 'utf8')).trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export function portInUse(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    socket.setTimeout(1000);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(false));
  });
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
