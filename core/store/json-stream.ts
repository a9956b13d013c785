/** An array written element by element as it is produced (see `writeJson`): never all in memory at once. */
export class StreamedArray<T = unknown> {
  constructor(readonly items: () => AsyncIterable<T>) {}
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return (proto === Object.prototype || proto === null) && !('toJSON' in value);
}

/** `JSON.stringify(value, null, 2)` of a value that sits at `indent`: its later lines shifted by as much. */
function stringifyAt(value: unknown, indent: string): string {
  // JSON escapes newlines inside strings, so every literal newline here is a line break of the layout.
  return (JSON.stringify(value, null, 2) ?? 'null').replace(/\n/g, `\n${indent}`);
}

/**
 * Writes `value` exactly as `JSON.stringify(value, null, 2)` would (byte for byte), with every `StreamedArray` in
 * it (at any depth of plain objects) expanded element by element, so that a large document is written in pieces.
 */
export async function writeJson(value: unknown, write: (text: string) => Promise<void>, indent = ''): Promise<void> {
  const inner = `${indent}  `;
  if (value instanceof StreamedArray) {
    let first = true;
    for await (const item of value.items()) {
      await write(`${first ? '[\n' : ',\n'}${inner}${stringifyAt(item, inner)}`);
      first = false;
    }
    await write(first ? '[]' : `\n${indent}]`);
    return;
  }
  if (isPlainObject(value)) {
    const entries = Object.entries(value).filter(([, v]) => v !== undefined && typeof v !== 'function');
    if (entries.length === 0) return write('{}');
    for (const [i, [key, v]] of entries.entries()) {
      await write(`${i === 0 ? '{\n' : ',\n'}${inner}${JSON.stringify(key)}: `);
      await writeJson(v, write, inner);
    }
    return write(`\n${indent}}`);
  }
  return write(stringifyAt(value, indent));
}
