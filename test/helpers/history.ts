/** Largest payload (data + metadata bytes) anywhere in a history event. */
export function largestPayload(value: unknown): number {
  if (typeof value !== 'object' || value === null || value instanceof Uint8Array) return 0;
  const record = value as Record<string, unknown>;
  if (record.data instanceof Uint8Array && typeof record.metadata === 'object') {
    return (
      record.data.length +
      Object.entries((record.metadata ?? {}) as Record<string, Uint8Array>).reduce(
        (n, [k, v]) => n + k.length + v.length,
        0,
      )
    );
  }
  return Math.max(0, ...Object.values(record).map(largestPayload));
}
