import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { z } from 'zod';
import { Secret, configSchema, envVariableName } from '../core/config';

/**
 * Renders docs/configuration.md from the configuration schema (`core/config.ts`): per section a table of each
 * field's type or allowed values, default, environment variable and description. Types and defaults are read from
 * the schema itself; descriptions from its `.describe()`/`.meta()`; a default that depends on the machine (a home
 * folder, the repository's path) is shown as the field's `docDefault` instead.
 *
 *   npm run docs:config    # writes docs/configuration.md; test/unit/docs/config-reference.test.ts checks it
 *
 * The output is already in Prettier's form (aligned tables), so `prettier --check` accepts it as written.
 */

export const CONFIG_REFERENCE_FILE = path.join('docs', 'configuration.md');

/** The parts of zod 4's schema definitions this renderer reads (`schema._zod.def`). */
interface Def {
  type: string;
  innerType?: z.ZodType;
  defaultValue?: unknown;
  in?: z.ZodType;
  out?: z.ZodType;
  options?: z.ZodType[];
  element?: z.ZodType;
  entries?: Record<string, string | number>;
  format?: string;
  shape?: Record<string, z.ZodType>;
  checks?: { _zod: { def: CheckDef } }[];
}

interface CheckDef {
  check: string;
  format?: string;
  pattern?: RegExp;
  value?: number;
  inclusive?: boolean;
  minimum?: number;
}

const defOf = (schema: z.ZodType): Def => (schema as unknown as { _zod: { def: Def } })._zod.def;
const checksOf = (def: Def): CheckDef[] => (def.checks ?? []).map((c) => c._zod.def);
const code = (value: string | number) => `\`${value}\``;

interface Field {
  path: string[];
  type: string;
  default: string;
  description: string;
}

/** The schema under default/prefault wrappers, and the default they give. */
function unwrap(schema: z.ZodType): { inner: z.ZodType; defaultValue?: unknown } {
  const def = defOf(schema);
  if ((def.type === 'default' || def.type === 'prefault') && def.innerType) {
    return { inner: unwrap(def.innerType).inner, defaultValue: def.defaultValue };
  }
  return { inner: schema };
}

/** What a field accepts, in words: its type, allowed values and bounds. */
export function describeType(schema: z.ZodType): string {
  const def = defOf(unwrap(schema).inner);
  switch (def.type) {
    case 'string': {
      if (def.format === 'url') return 'URL';
      const checks = checksOf(def);
      const pattern = checks.find((c) => c.check === 'string_format' && c.format === 'regex')?.pattern;
      if (pattern) return `string matching ${code(pattern.source)}`;
      return checks.some((c) => c.check === 'min_length' && (c.minimum ?? 0) > 0) ? 'non-empty string' : 'string';
    }
    case 'number': {
      const checks = checksOf(def);
      const kind = checks.some((c) => c.check === 'number_format' && c.format === 'safeint') ? 'integer' : 'number';
      const low = checks.find((c) => c.check === 'greater_than');
      const high = checks.find((c) => c.check === 'less_than');
      if (low && high && low.inclusive && high.inclusive) return `${kind} ${low.value}–${high.value}`;
      const bounds = [
        low && `${low.inclusive ? '≥' : '>'} ${low.value}`,
        high && `${high.inclusive ? '≤' : '<'} ${high.value}`,
      ].filter(Boolean);
      return [kind, ...bounds].join(' ');
    }
    case 'boolean':
      return 'boolean';
    case 'enum':
      return `one of ${Object.values(def.entries ?? {})
        .map((v) => code(v))
        .join(', ')}`;
    case 'array': {
      const element = describeType(def.element!);
      const atLeastOne = checksOf(def).some((c) => c.check === 'min_length' && (c.minimum ?? 0) > 0);
      return `comma-separated list${atLeastOne ? ' (at least one)' : ''} of ${element.replace(/^one of /, '')}`;
    }
    case 'pipe':
      // A transform on the way out (booleans from strings, secrets): what comes in is what one writes.
      return defOf(def.out!).type === 'transform' ? describeType(def.in!) : describeType(def.out!);
    case 'union': {
      const options = def.options ?? [];
      if (options.some((o) => defOf(o).type === 'boolean')) return 'boolean (`true`, `false`, `1`, `0`)';
      // Other options (a Secret instance, an array) are what code passes, not what a file or a variable says.
      return describeType(options.find((o) => defOf(o).type !== 'custom')!);
    }
    default:
      throw new Error(`config reference: no rendering for a zod '${def.type}' schema`);
  }
}

function renderDefault(schema: z.ZodType): string {
  const shown = (schema.meta() as { docDefault?: unknown } | undefined)?.docDefault;
  if (typeof shown === 'string') return code(shown);
  const { defaultValue } = unwrap(schema);
  if (defaultValue === undefined) return '–';
  if (defaultValue instanceof Secret) return `${code(String(defaultValue))} (local server's)`;
  if (Array.isArray(defaultValue)) return code(defaultValue.join(','));
  return code(typeof defaultValue === 'object' ? JSON.stringify(defaultValue) : `${defaultValue as string | number}`);
}

function fieldOf(fieldPath: string[], schema: z.ZodType): Field {
  const description = schema.description;
  if (!description) throw new Error(`config field ${fieldPath.join('.')} has no description: add .describe()`);
  return { path: fieldPath, type: describeType(schema), default: renderDefault(schema), description };
}

/** Top-level fields first (the section without a name), then one entry per section, in schema order. */
export function configSections(): { name?: string; description?: string; fields: Field[] }[] {
  const top: Field[] = [];
  const sections: { name?: string; description?: string; fields: Field[] }[] = [{ fields: top }];
  for (const [name, schema] of Object.entries(configSchema.shape as Record<string, z.ZodType>)) {
    const { inner } = unwrap(schema);
    const shape = defOf(inner).type === 'object' ? defOf(inner).shape : undefined;
    if (!shape) {
      top.push(fieldOf([name], schema));
      continue;
    }
    const description = schema.description;
    if (!description) throw new Error(`config section ${name} has no description: add .describe()`);
    sections.push({
      name,
      description,
      fields: Object.entries(shape).map(([field, fieldSchema]) => fieldOf([name, field], fieldSchema)),
    });
  }
  return sections;
}

/** Width of a cell as Prettier measures it (these tables hold no wide characters). */
const width = (text: string) => [...text].length;

/** A Markdown table as Prettier prints it: every column padded to its widest cell. */
export function markdownTable(header: string[], rows: string[][]): string {
  const cells = [header, ...rows].map((row) => row.map((cell) => cell.replace(/\|/g, '\\|')));
  const widths = header.map((_, c) => Math.max(3, ...cells.map((row) => width(row[c]!))));
  const line = (row: string[]) =>
    `| ${row.map((cell, c) => cell + ' '.repeat(widths[c]! - width(cell))).join(' | ')} |`;
  return [line(cells[0]!), `| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`, ...cells.slice(1).map(line)].join(
    '\n',
  );
}

const HEADER = `# Configuration reference

<!-- Generated from configSchema in core/config.ts by \`npm run docs:config\`: edit the schema, not this file. -->

Every command and worker reads one typed configuration object (\`core/config.ts\`, validated with zod). Sources, later
ones winning:

1. the defaults below;
2. a JSON file: \`--config <file>\`, else \`$TTTNN_CONFIG\`, else \`./tttnn.config.json\` when it exists;
3. environment variables \`TTTNN_<SECTION>_<FIELD>\`, the field's name in SCREAMING_SNAKE_CASE
   (\`s3.accessKeyId\` → \`TTTNN_S3_ACCESS_KEY_ID\`; top-level fields have no section: \`TTTNN_TOOLS_DIR\`);
4. \`--set section.field=value\` on the command line (repeat it for more fields; before the subcommand:
   \`tttnn --set eval.k=50 eval start …\`).

Unknown fields and invalid values are errors that name the field. Environment variables and \`--set\`
give strings; numbers and booleans are parsed from them (\`true\`, \`false\`, \`1\`, \`0\`), lists are comma-separated
(\`TTTNN_EVAL_BASELINES=random,in-context\`); in the JSON file lists may also be arrays. \`TTTNN_CONFIG\`,
\`TTTNN_DEBUG\` (print a failing command's whole error) and \`TTTNN_LOG_LEVEL=debug\` or \`error\` (the workers' Temporal log) steer
the process and are not fields.

A JSON file holds sections as objects, e.g.

\`\`\`json
{
  "temporal": { "address": "temporal.internal:7233", "taskQueuePrefix": "pile" },
  "s3": { "endpoint": "https://s3.us-east-1.amazonaws.com", "forcePathStyle": false, "local": false },
  "eval": { "k": 50, "maxLength": 1024, "baselines": ["random", "in-context"] }
}
\`\`\`

## Secrets

\`s3.secretAccessKey\` is held wrapped: it prints as \`***\` in logs, JSON and inspected objects, and is scrubbed from
error messages. Workflow inputs and history carry store URLs and counts, never credentials, so every process that
touches the store (the CLI and each worker) needs the key in its own configuration: give it as
\`TTTNN_S3_SECRET_ACCESS_KEY\` or in a JSON file that only its user can read, not with \`--set\`, which other users see
in the process list. The default key is the local server's fixed one; any other store needs its own.
\`HF_TOKEN\` (for Hub downloads) is read from the environment and never printed.
`;

/** The whole reference, as docs/configuration.md holds it. */
export function renderConfigReference(): string {
  const parts = [HEADER];
  for (const section of configSections()) {
    parts.push(
      section.name === undefined ? '## Top-level fields\n' : `## \`${section.name}\`\n\n${section.description}\n`,
    );
    parts.push(
      `${markdownTable(
        ['field', 'type', 'default', 'environment variable', 'description'],
        section.fields.map((f) => [
          code(f.path.join('.')),
          f.type,
          f.default,
          code(envVariableName(f.path)),
          f.description,
        ]),
      )}\n`,
    );
  }
  return parts.join('\n');
}

/** The repository: two levels above this file once compiled into dist/scripts/, one above it as source. */
export const REPO_ROOT = path.resolve(__dirname, __dirname.includes(`${path.sep}dist${path.sep}`) ? '../..' : '..');

if (require.main === module) {
  const file = path.join(REPO_ROOT, CONFIG_REFERENCE_FILE);
  writeFileSync(file, renderConfigReference());
  console.log(`wrote ${file}`);
}
