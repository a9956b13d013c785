import type { Readable } from 'node:stream';

/** An object as written: its key relative to the store root, its size and the SHA-256 of its bytes. */
export interface ObjectInfo {
  key: string;
  size: number;
  sha256: string;
}

/**
 * Where artifacts live: `s3://bucket/prefix` on clusters, `file:///path` on laptops.
 * Every write of one key is atomic for readers (a reader sees the old bytes or the new, never a mix),
 * but a set of objects is only complete once a manifest lists it (see manifest.ts).
 */
export interface ArtifactStore {
  /** The store's root as a URL, safe to print (never carries credentials). */
  readonly url: string;
  putBytes(key: string, data: Uint8Array | string): Promise<ObjectInfo>;
  /**
   * Compare-and-swap: writes `data` only if the object still holds the bytes whose SHA-256 is `expected` (or, with
   * `undefined`, only if it does not exist). False when another writer changed it first; nothing is written then.
   */
  putBytesIfUnchanged(key: string, data: Uint8Array | string, expected: string | undefined): Promise<boolean>;
  /** Uploads a local file (multipart when large). */
  putFile(key: string, localPath: string): Promise<ObjectInfo>;
  getBytes(key: string): Promise<Buffer>;
  /** A stream of the object's bytes, optionally of the byte range [start, end] inclusive. */
  openRead(key: string, range?: { start: number; end?: number }): Promise<Readable>;
  /** Size of the object, or undefined when it does not exist. */
  stat(key: string): Promise<{ size: number } | undefined>;
  /** Objects under a key prefix, in lexicographic order of key. */
  list(prefix: string): AsyncIterable<{ key: string; size: number }>;
  delete(key: string): Promise<void>;
}

/** A store failure with a message for people. Only `transient` ones (server unreachable, 5xx) are worth retrying. */
export class StoreError extends Error {
  override name = 'StoreError';
  constructor(
    message: string,
    readonly transient = false,
  ) {
    super(message);
  }
}

/** Keys come from user input (paths, ids): refuse anything that could escape the store's root. */
export function checkKey(key: string): string {
  if (
    key.length === 0 ||
    key.startsWith('/') ||
    key.includes('\\') ||
    key.includes('\0') ||
    key.split('/').some((part) => part === '' || part === '.' || part === '..')
  ) {
    throw new StoreError(`invalid artifact key ${JSON.stringify(key)}: use relative a/b/c keys without '..' or '//'`);
  }
  return key;
}

export function joinKey(...parts: string[]): string {
  return checkKey(
    parts
      .filter((p) => p !== '')
      .join('/')
      .replace(/\/+/g, '/'),
  );
}
