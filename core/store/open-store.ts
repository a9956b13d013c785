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
