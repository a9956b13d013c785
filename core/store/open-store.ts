import { fileURLToPath } from 'node:url';
import type { Config } from '../config';
import { type ArtifactStore, StoreError } from './artifact-store';
import { FileStore } from './file-store';
import { S3Store } from './s3-store';

/** `s3://bucket/prefix` → S3; `file:///path` or a plain path → local folder. */
export function openStore(url: string, config: Pick<Config, 's3'>): ArtifactStore {
  if (url.startsWith('s3://')) return new S3Store(url, config.s3);
  if (url.startsWith('file://') || !/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) return new FileStore(url);
  throw new StoreError(`unsupported artifact store URL ${url}: use s3://bucket/prefix or file:///path`);
}

/**
 * A store URL as a store and a key: s3://bucket/key as the bucket's store, file:///a/b/c as the store at the
 * filesystem root with key a/b/c (any split of a path names the same files; this one needs no guess).
 */
export function splitStoreUrl(url: string): { root: string; key: string } {
  if (url.startsWith('file://')) return { root: 'file:///', key: fileURLToPath(url).slice(1) };
  if (!url.startsWith('s3://')) {
    const slash = url.lastIndexOf('/');
    return slash === -1 ? { root: '.', key: url } : { root: url.slice(0, slash) || '/', key: url.slice(slash + 1) };
  }
  const slash = url.indexOf('/', 's3://'.length);
  return slash === -1 ? { root: url, key: '' } : { root: url.slice(0, slash), key: url.slice(slash + 1) };
}
