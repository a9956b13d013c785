import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { envKeyToPath, envVariableName, parseConfig } from '../../../core/config';
import {
  CONFIG_REFERENCE_FILE,
  REPO_ROOT,
  configSections,
  renderConfigReference,
} from '../../../scripts/config-reference';

describe('docs/configuration.md', () => {
  it('is what the configuration schema renders', () => {
    const rendered = renderConfigReference();
    const onDisk = readFileSync(path.join(REPO_ROOT, CONFIG_REFERENCE_FILE), 'utf8');
    if (onDisk !== rendered) {
      const lines = onDisk.split('\n');
      const first = rendered.split('\n').findIndex((line, i) => line !== lines[i]);
      throw new Error(
        `${CONFIG_REFERENCE_FILE} differs from the configuration schema (first at line ${first + 1}): ` +
          'run `npm run docs:config`',
      );
    }
  });

  it('describes every field, with the environment variable that sets it', () => {
    const fields = configSections().flatMap((s) => s.fields);
    const defaults = parseConfig({}) as unknown as Record<string, Record<string, unknown>>;
    // Every field of the parsed configuration is in the reference, and nothing else.
    const parsed = Object.entries(defaults).flatMap(([name, value]) =>
      typeof value === 'object' && value !== null && !Array.isArray(value) && !('reveal' in value)
        ? Object.keys(value).map((field) => `${name}.${field}`)
        : [name],
    );
    expect(fields.map((f) => f.path.join('.')).sort()).toEqual(parsed.sort());
    for (const field of fields) {
      expect(field.description.length).toBeGreaterThan(10);
      // The variable named in the reference is the one loadConfig maps back to this field.
      expect(envKeyToPath(envVariableName(field.path).slice('TTTNN_'.length))).toEqual(field.path);
    }
  });

  it('does not depend on the machine it is rendered on', () => {
    const rendered = renderConfigReference();
    expect(rendered).not.toContain(os.homedir());
    expect(rendered).not.toContain(REPO_ROOT);
    expect(rendered).toContain('`<repo>/.tttnn`');
    expect(rendered).toContain('`~/.cache/tttnn`');
  });
});
