import { promises as fs } from 'node:fs';
import path from 'node:path';
import { compress } from 'zstd-napi';
import { seededRandom } from '../core/seeded-random';
import { mathDocument } from './math-documents';

/**
 * Rebuilds samples/pile/sample.jsonl.zst, the small bundled corpus in Pile format, from text that ships in
 * the project's pinned npm packages (redistributable under their licences) plus generated arithmetic.
 * Domains are named after the Pile set each stands in for; samples/pile/PROVENANCE.md says where each came from.
 * Deterministic: same lockfile, same bytes.
 */
const root = path.resolve(__dirname, '..', '..');
const modules = path.join(root, 'node_modules');
const PER_DOMAIN = 60;

async function filesUnder(dir: string, match: (name: string) => boolean): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for (const entry of (await fs.readdir(d, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = path.join(d, entry.name);
      if (entry.isDirectory() && entry.name !== 'node_modules' && entry.name !== 'test') await walk(p);
      else if (entry.isFile() && match(entry.name)) out.push(p);
    }
  };
  await walk(dir);
  return out;
}

async function pick(paths: string[], min: number, max: number): Promise<{ file: string; text: string }[]> {
  const picked = [];
  for (const file of paths) {
    const text = await fs.readFile(file, 'utf8');
    if (text.length >= min && text.length <= max) picked.push({ file: path.relative(modules, file), text });
    if (picked.length === PER_DOMAIN) break;
  }
  return picked;
}

async function main(): Promise<void> {
  const code = await pick(
    [
      ...(await filesUnder(path.join(modules, 'commander', 'lib'), (n) => n.endsWith('.js'))),
      ...(await filesUnder(path.join(modules, '@temporalio', 'workflow', 'src'), (n) => n.endsWith('.ts'))),
      ...(await filesUnder(path.join(modules, '@temporalio', 'common', 'src'), (n) => n.endsWith('.ts'))),
    ],
    800,
    30_000,
  );
  const readmeFiles = [];
  for (const name of (await fs.readdir(modules)).sort()) {
    const file = path.join(modules, name, 'README.md');
    try {
      await fs.access(file);
      readmeFiles.push(file);
    } catch {
      // packages without a README
    }
  }
  const prose = await pick(readmeFiles, 1500, 30_000);
  const random = seededRandom(1216);
  const records = [
    ...code.map((d) => ({ text: d.text, meta: { pile_set_name: 'Github' } })),
    ...prose.map((d) => ({ text: d.text, meta: { pile_set_name: 'Pile-CC' } })),
    ...Array.from({ length: PER_DOMAIN }, () => ({
      text: mathDocument(random, 12),
      meta: { pile_set_name: 'DM Mathematics' },
    })),
  ];
  // Interleave domains as the Pile does, in a fixed order.
  const shuffled = records
    .map((r, i) => ({ r, k: seededRandom(i + 1)() }))
    .sort((a, b) => a.k - b.k)
    .map((x) => x.r);
  const jsonl = shuffled.map((r) => JSON.stringify(r)).join('\n') + '\n';
  const out = path.join(root, 'samples', 'pile', 'sample.jsonl.zst');
  await fs.writeFile(out, compress(Buffer.from(jsonl, 'utf8'), { compressionLevel: 19 }));
  console.log(
    `${out}: ${records.length} documents (${code.length} Github, ${prose.length} Pile-CC, ${PER_DOMAIN} DM Mathematics), ` +
      `${(jsonl.length / 1e6).toFixed(2)} MB of JSON lines`,
  );
  console.log(
    ['sources:', ...code.map((d) => `  Github ${d.file}`), ...prose.map((d) => `  Pile-CC ${d.file}`)].join('\n'),
  );
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
