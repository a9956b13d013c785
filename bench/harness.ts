import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

/** What every bench needs: timing, the PyTorch side's Python, a line about the machine. */

/** Mean seconds per call over `reps` calls, after one warm-up call (the first builds kernels and allocates). */
export function time(reps: number, fn: () => void): number {
  fn();
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) fn();
  return (performance.now() - t0) / reps / 1000;
}

export function machineLine(): string {
  return `machine: ${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}, load average ${os.loadavg()[0]?.toFixed(2)}`;
}

/** The Python that runs the PyTorch side: BENCH_PYTHON, default python3. */
export function benchPython(): string {
  return process.env.BENCH_PYTHON ?? 'python3';
}

/**
 * Runs `bench/<script>` with BENCH_PYTHON and parses the JSON on the last line of its stdout. Returns why not
 * (as a string) when the Python or its packages are missing or the script fails, so that a bench can still print
 * its own figures. `side` names that side and the packages it needs, for the message, and may name its Python.
 */
export async function runPythonJson<T>(
  script: string,
  args: string[],
  side: { name: string; needs: string; python?: string } = {
    name: 'PyTorch',
    needs: 'torch, transformers and sentence-transformers',
  },
): Promise<T | string> {
  const python = side.python ?? benchPython();
  // From dist/bench/*.js the scripts are two folders up, in the source tree.
  const file = [path.join(__dirname, script), path.join(__dirname, '..', '..', 'bench', script)].find(existsSync);
  if (file === undefined) return `bench/${script} not found`;
  try {
    const { stdout } = await promisify(execFile)(python, [file, ...args], { maxBuffer: 16 << 20 });
    return JSON.parse(stdout.trim().split('\n').at(-1) ?? '') as T;
  } catch (err) {
    // The last stderr line names the cause (ModuleNotFoundError: No module named 'torch', ENOENT, ...).
    const stderr = (err as { stderr?: string }).stderr?.trim().split('\n').at(-1);
    const why = stderr || (err as Error).message.split('\n')[0];
    return `${side.name} side skipped (${python} ${script} failed; a Python with ${side.needs} is needed, set BENCH_PYTHON): ${why}`;
  }
}
