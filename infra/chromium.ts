import { execFile } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Log } from './tools';

const run = promisify(execFile);

/**
 * A headless Chromium for the browser tests (playwright-core drives it through `executablePath`), from Debian's
 * own packages: the machine's `/usr/bin/chromium` when it has one, else Debian's `chromium` unpacked into the
 * per-machine cache, nothing installed.
 *
 * `apt-get install chromium` would work too (we run as root), but it changes the machine for every other program
 * on it and leaves maintainer scripts half-run when killed. Instead apt says which packages this machine lacks
 * (`apt-get -s install --no-install-recommends chromium`: a simulation, so exactly the missing part of the
 * dependency closure, ~25 packages here, more on a bare machine), `apt-get download` fetches those .debs,
 * `dpkg-deb -x` unpacks them under `<cacheDir>/chromium-<version>/root`, and a wrapper script beside it puts the
 * unpacked library folders on LD_LIBRARY_PATH (and a fontconfig file on FONTCONFIG_FILE) before it execs the
 * browser. `ldd` must find every library and `--version` must answer before the folder is marked complete; later
 * calls reuse it without asking apt. When the package lists are missing (a fresh machine) or stale (the archive
 * has moved on), it runs `apt-get update` once and tries again.
 *
 * Debian's security archive keeps only its newest chromium, so the version cannot be pinned: it is what Debian 12
 * ships when the cache is filled, kept until the cache folder is removed.
 */
export const CHROMIUM_SYSTEM_PATH = '/usr/bin/chromium';
const COMPLETE = '.complete';
/** The browser inside the package; /usr/bin/chromium is Debian's own wrapper script around it. */
const BINARY = 'root/usr/lib/chromium/chromium';

export async function ensureChromium(cacheDir: string, log: Log): Promise<string> {
  if (existsSync(CHROMIUM_SYSTEM_PATH)) return CHROMIUM_SYSTEM_PATH;
  const cached = await findCachedChromium(cacheDir);
  if (cached !== undefined) return cached;

  const started = Date.now();
  let fetched: Fetched;
  try {
    fetched = await fetchPackages(cacheDir, log);
  } catch (err) {
    log(`${(err as Error).message.split('\n')[0]}: apt-get update, then again`);
    await runStep('apt-get', ['update', '-q'], 'apt-get update (needs root and the Debian archive)');
    fetched = await fetchPackages(cacheDir, log);
  }
  const { dir, temp, packages } = fetched;
  if (!existsSync(path.join(temp, BINARY))) throw new Error(`the chromium package has no ${BINARY}`);
  const libraryDirs = await findLibraryDirs(temp);
  await fs.writeFile(path.join(temp, 'fonts.conf'), fontsConf(path.join(dir, 'root')));
  await fs.writeFile(path.join(temp, 'chromium'), wrapperScript(libraryDirs), { mode: 0o755 });

  // The wrapper finds everything relative to itself, so the partial folder runs as the complete one will.
  const env = { ...process.env, LD_LIBRARY_PATH: libraryDirs.map((d) => path.join(temp, d)).join(':') };
  const linked = await runStep('ldd', [path.join(temp, BINARY)], 'ldd chromium', { env });
  const notFound = linked.split('\n').filter((line) => line.includes('not found'));
  if (notFound.length > 0) throw new Error(`chromium lacks libraries: ${notFound.map((l) => l.trim()).join('; ')}`);
  const version = (await runStep(path.join(temp, 'chromium'), ['--version'], 'run chromium --version')).trim();
  await fs.rm(dir, { recursive: true, force: true });
  await fs.rename(temp, dir);
  // Written last: a killed install leaves a `.partial` folder, which the next call redoes.
  await fs.writeFile(
    path.join(dir, COMPLETE),
    `${version}\n${packages.map((p) => `${p.name} ${p.version}\n`).join('')}`,
  );
  log(`${version} ready in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  return path.join(dir, 'chromium');
}

export interface AptPackage {
  name: string;
  version: string;
}

interface Fetched {
  dir: string;
  temp: string;
  packages: AptPackage[];
}

/** Downloads the .debs apt would install for chromium and unpacks them under `<dir>.partial/root`. */
async function fetchPackages(cacheDir: string, log: Log): Promise<Fetched> {
  const simulated = await runStep(
    'apt-get',
    ['-s', '-q', 'install', '--no-install-recommends', 'chromium'],
    'find chromium in the package lists',
    { env: { ...process.env, LC_ALL: 'C' } },
  );
  const packages = parseSimulatedInstall(simulated);
  const chromium = packages.find((p) => p.name === 'chromium');
  if (chromium === undefined) throw new Error(`apt would not install chromium, yet ${CHROMIUM_SYSTEM_PATH} is missing`);
  const dir = path.join(cacheDir, `chromium-${chromium.version.replace(/[^A-Za-z0-9.+~-]/g, '_')}`);
  const temp = `${dir}.partial`;
  log(`unpacking Debian chromium ${chromium.version} and ${packages.length - 1} packages it needs into ${dir}`);
  await fs.rm(temp, { recursive: true, force: true });
  const debs = path.join(temp, 'debs');
  await fs.mkdir(debs, { recursive: true });
  const specs = packages.map((p) => `${p.name}=${p.version}`);
  await runStep('apt-get', ['download', '-q', ...specs], 'apt-get download chromium and its libraries', { cwd: debs });
  for (const deb of (await fs.readdir(debs)).filter((f) => f.endsWith('.deb'))) {
    await runStep('dpkg-deb', ['-x', path.join(debs, deb), path.join(temp, 'root')], `unpack ${deb}`);
  }
  await fs.rm(debs, { recursive: true });
  return { dir, temp, packages };
}

/** The newest complete `chromium-*` folder in the cache, as its wrapper script. */
async function findCachedChromium(cacheDir: string): Promise<string | undefined> {
  if (!existsSync(cacheDir)) return undefined;
  const complete: { wrapper: string; time: number }[] = [];
  for (const name of await fs.readdir(cacheDir)) {
    const marker = path.join(cacheDir, name, COMPLETE);
    if (!name.startsWith('chromium-') || !existsSync(marker)) continue;
    complete.push({ wrapper: path.join(cacheDir, name, 'chromium'), time: (await fs.stat(marker)).mtimeMs });
  }
  return complete.sort((a, b) => b.time - a.time)[0]?.wrapper;
}

/** The `Inst name [old version] (version release [arch])` lines of `apt-get -s install`, in order. */
export function parseSimulatedInstall(output: string): AptPackage[] {
  const packages: AptPackage[] = [];
  for (const line of output.split('\n')) {
    const match = /^Inst (\S+) (?:\[[^\]]*\] )?\((\S+) /.exec(line);
    if (match !== null) packages.push({ name: match[1]!.replace(/:[a-z0-9]+$/, ''), version: match[2]! });
  }
  return packages;
}

/** Folders (relative to the install folder) that hold the unpacked shared libraries, for LD_LIBRARY_PATH. */
async function findLibraryDirs(installDir: string): Promise<string[]> {
  const dirs = new Set<string>();
  for (const top of ['root/lib', 'root/usr/lib']) {
    const start = path.join(installDir, top);
    if (!existsSync(start)) continue;
    for (const entry of await fs.readdir(start, { recursive: true, withFileTypes: true })) {
      if (entry.isDirectory() || !/\.so(\.\d+)*$/.test(entry.name)) continue;
      const dir = path.relative(installDir, entry.parentPath);
      // Chromium's own folder it finds itself ($ORIGIN).
      if (!dir.startsWith(path.join('root', 'usr', 'lib', 'chromium'))) dirs.add(dir);
    }
  }
  return [...dirs].sort();
}

function wrapperScript(libraryDirs: string[]): string {
  const libs = libraryDirs.map((d) => `$here/${d}`).join(':');
  return [
    '#!/bin/sh',
    '# Debian chromium unpacked by infra/chromium.ts, with the libraries this machine lacked beside it.',
    'here=$(cd "$(dirname "$0")" && pwd)',
    `export LD_LIBRARY_PATH="${libs}\${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"`,
    'export FONTCONFIG_FILE="$here/fonts.conf"',
    `exec "$here/${BINARY}" "$@"`,
    '',
  ].join('\n');
}

/** The machine's fontconfig setup (or the unpacked one, on a machine without), plus any unpacked fonts. */
function fontsConf(root: string): string {
  const base = existsSync('/etc/fonts/fonts.conf') ? '/etc/fonts/fonts.conf' : `${root}/etc/fonts/fonts.conf`;
  return [
    '<?xml version="1.0"?>',
    '<!DOCTYPE fontconfig SYSTEM "urn:fontconfig:fonts.dtd">',
    '<fontconfig>',
    `  <include ignore_missing="yes">${base}</include>`,
    '  <dir>/usr/share/fonts</dir>',
    `  <dir>${root}/usr/share/fonts</dir>`,
    '</fontconfig>',
    '',
  ].join('\n');
}

async function runStep(
  command: string,
  args: string[],
  what: string,
  options: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<string> {
  try {
    return (await run(command, args, { ...options, maxBuffer: 64 * 1024 * 1024 })).stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    const detail = (e.stderr || e.message).trim().split('\n').slice(-3).join(' | ');
    throw new Error(`could not ${what}: ${detail}`);
  }
}
