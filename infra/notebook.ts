import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Config } from '../core/config';
import { ensurePythonVenv, type Log } from './tools';

const run = promisify(execFile);

const NOTEBOOKS_DIR = path.resolve(
  __dirname,
  __dirname.includes(`${path.sep}dist${path.sep}`) ? '../..' : '..',
  'notebooks',
);
export const RESULTS_NOTEBOOK = path.join(NOTEBOOKS_DIR, 'results.ipynb');
const REQUIREMENTS = path.join(NOTEBOOKS_DIR, 'requirements.txt');
const EXECUTE = path.join(NOTEBOOKS_DIR, 'execute.py');

/**
 * The notebooks' Python: a venv of `notebooks/requirements.txt` (every package pinned, dependencies included),
 * named for that file's digest, so that changing a pin makes a new venv and an unchanged one is reused.
 */
export async function ensureNotebookPython(toolsDir: string, log: Log): Promise<string> {
  const digest = createHash('sha256').update(readFileSync(REQUIREMENTS)).digest('hex').slice(0, 12);
  const venv = await ensurePythonVenv(toolsDir, `notebook-${digest}`, ['--no-deps', '-r', REQUIREMENTS], log);
  return path.join(venv, 'bin', 'python');
}

export interface NotebookOutputs {
  /** The executed notebook, outputs included. */
  notebook: string;
  /** Per-domain bits/byte table the notebook computed (DuckDB over the run's Parquet). */
  perDomainCsv: string;
  plots: string[];
}

/**
 * Runs `notebooks/results.ipynb` headless (nbclient) over a run's results and writes the executed copy, its
 * tables and plots into `outDir`. A cell that raises fails the call with that cell's error.
 */
export async function executeResultsNotebook(options: {
  config: Pick<Config, 's3' | 'toolsDir'>;
  runUrl: string;
  outDir: string;
  log: Log;
}): Promise<NotebookOutputs> {
  const { config, runUrl, log } = options;
  const outDir = path.resolve(options.outDir);
  const python = await ensureNotebookPython(config.toolsDir, log);
  await fs.mkdir(outDir, { recursive: true });
  const notebook = path.join(outDir, 'results.ipynb');
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    TTTNN_RUN_URL: runUrl,
    TTTNN_NOTEBOOK_OUT: outDir,
    // pyarrow's S3 client takes the standard AWS variables; the endpoint is ours (unset on AWS it is the default).
    TTTNN_S3_ENDPOINT: config.s3.endpoint,
    AWS_REGION: config.s3.region,
    // With `s3.credentials=aws` pyarrow finds the instance profile (or the AWS_* variables) itself.
    ...(config.s3.credentials === 'static'
      ? { AWS_ACCESS_KEY_ID: config.s3.accessKeyId, AWS_SECRET_ACCESS_KEY: config.s3.secretAccessKey.reveal() }
      : {}),
  };
  try {
    await run(python, [EXECUTE, RESULTS_NOTEBOOK, notebook], { env, cwd: outDir, maxBuffer: 64 * 1024 * 1024 });
  } catch (err) {
    const stderr = ((err as { stderr?: string }).stderr ?? String(err)).trim();
    // execute.py names the failing cell's error; the kernel may print a shutdown warning after it.
    const lines = stderr.split('\n');
    const reason = lines.find((line) => line.includes('a cell failed')) ?? lines.at(-1);
    throw new Error(
      `${reason}${existsSync(notebook) ? ` (the executed notebook, with the traceback: ${notebook})` : ''}`,
    );
  }
  const plots = (await fs.readdir(outDir)).filter((f) => f.endsWith('.png')).map((f) => path.join(outDir, f));
  return { notebook, perDomainCsv: path.join(outDir, 'per_domain.csv'), plots: plots.sort() };
}
