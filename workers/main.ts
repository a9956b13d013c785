import { loadConfig, redact } from '../core/config';
import { runWorkers } from './worker';

/** `node dist/workers/main.js [--queues cpu,gpu,index] [--set k=v ...]`: the same as `tttnn worker`. */
const args = process.argv.slice(2);
const overrides: string[] = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--queues') overrides.push(`worker.queues=${args[++i] ?? ''}`);
  else if (args[i] === '--set') overrides.push(args[++i] ?? '');
}
const config = loadConfig({ overrides });
// An engine process (workers/engine-processes.ts) drains and exits when its parent dies, which closes its stdin.
if (process.env.TTTNN_EXIT_WITH_PARENT === '1')
  process.stdin.on('end', () => process.kill(process.pid, 'SIGTERM')).resume();
runWorkers(config).catch((err: unknown) => {
  console.error(`tttnn worker: ${redact(err instanceof Error ? err.message : String(err), config)}`);
  process.exit(1);
});
