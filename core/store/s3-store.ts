import { createHash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import { Readable } from 'node:stream';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { Config } from '../config';
import { type ArtifactStore, type ObjectInfo, StoreError, checkKey } from './artifact-store';
import { sha256OfFile } from './sha256';

// The SDK warns at every start that its releases after January 2027 need Node 22; ours is pinned.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const MULTIPART_THRESHOLD = 16 * 1024 * 1024;

/** Clients are heavy (sockets, credential chains): one per endpoint and key per process. */
const clients = new Map<string, S3Client>();

export function s3Client(s3: Config['s3']): S3Client {
  const secretDigest = createHash('sha256').update(s3.secretAccessKey.reveal()).digest('hex');
  const cacheKey = JSON.stringify([
    s3.endpoint,
    s3.region,
    s3.forcePathStyle,
    s3.maxAttempts,
    s3.credentials,
    s3.accessKeyId,
    secretDigest,
  ]);
  let client = clients.get(cacheKey);
  if (!client) {
    client = new S3Client({
      endpoint: s3.endpoint,
      region: s3.region,
      forcePathStyle: s3.forcePathStyle,
      // `aws`: the SDK's default chain (instance profile, environment, SSO), refreshed by the SDK as it expires.
      ...(s3.credentials === 'static'
        ? { credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey.reveal() } }
        : {}),
      // The SDK's standard retry mode: exponential backoff with jitter on throttling, 5xx and network errors.
      maxAttempts: s3.maxAttempts,
      retryMode: 'standard',
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
    clients.set(cacheKey, client);
  }
  return client;
}

/** A store in an S3 bucket under a prefix. Every object carries its SHA-256 as `x-amz-meta-sha256`. */
export class S3Store implements ArtifactStore {
  readonly url: string;
  readonly bucket: string;
  private readonly prefix: string;
  private readonly client: S3Client;

  constructor(
    url: string,
    private readonly s3: Config['s3'],
  ) {
    const match = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(url);
    if (!match) throw new StoreError(`invalid S3 URL ${url}: expected s3://bucket/prefix`);
    this.bucket = match[1]!;
    const prefix = (match[2] ?? '').replace(/\/+$/, '');
    if (prefix) checkKey(prefix);
    this.prefix = prefix ? `${prefix}/` : '';
    this.url = `s3://${this.bucket}/${this.prefix}`;
    this.client = s3Client(s3);
  }

  private fullKey(key: string): string {
    return this.prefix + checkKey(key);
  }

  async putBytes(key: string, data: Uint8Array | string): Promise<ObjectInfo> {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    await this.call(key, () =>
      this.client.send(
        new PutObjectCommand({ Bucket: this.bucket, Key: this.fullKey(key), Body: bytes, Metadata: { sha256 } }),
      ),
    );
    return { key, size: bytes.byteLength, sha256 };
  }

  async putFile(key: string, localPath: string): Promise<ObjectInfo> {
    const { size } = await fs.stat(localPath);
    const sha256 = await sha256OfFile(localPath);
    const params = { Bucket: this.bucket, Key: this.fullKey(key), Metadata: { sha256 } };
    if (size < MULTIPART_THRESHOLD) {
      const body = await fs.readFile(localPath);
      await this.call(key, () => this.client.send(new PutObjectCommand({ ...params, Body: body })));
    } else {
      // S3 shows a multipart object only once CompleteMultipartUpload succeeds, so readers never see a part.
      const upload = new Upload({
        client: this.client,
        params: { ...params, Body: createReadStream(localPath) },
        partSize: MULTIPART_THRESHOLD,
        queueSize: 2,
        leavePartsOnError: false,
      });
      await this.call(key, () => upload.done());
    }
    return { key, size, sha256 };
  }

  async putBytesIfUnchanged(key: string, data: Uint8Array | string, expected: string | undefined): Promise<boolean> {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    let condition: { IfNoneMatch: string } | { IfMatch: string } = { IfNoneMatch: '*' };
    if (expected !== undefined) {
      // The ETag names the version we compared: the write succeeds only if no other write came in between.
      const head = await this.call(key, () =>
        this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.fullKey(key) })),
      ).catch(() => undefined);
      if (head?.Metadata?.sha256 !== expected || head.ETag === undefined) return false;
      condition = { IfMatch: head.ETag };
    }
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: this.fullKey(key),
          Body: bytes,
          Metadata: { sha256 },
          ...condition,
        }),
      );
      return true;
    } catch (err) {
      if (err instanceof S3ServiceException && err.$metadata.httpStatusCode === 412) return false;
      throw this.explain(err, key);
    }
  }

  async getBytes(key: string): Promise<Buffer> {
    const stream = await this.openRead(key);
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }

  async openRead(key: string, range?: { start: number; end?: number }): Promise<Readable> {
    const response = await this.call(key, () =>
      this.client.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: this.fullKey(key),
          Range: range ? `bytes=${range.start}-${range.end ?? ''}` : undefined,
        }),
      ),
    );
    return response.Body as Readable;
  }

  async stat(key: string): Promise<{ size: number } | undefined> {
    try {
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.fullKey(key) }));
      return { size: head.ContentLength ?? 0 };
    } catch (err) {
      if (err instanceof S3ServiceException && err.$metadata.httpStatusCode === 404) {
        if (err.name === 'NoSuchBucket') throw this.explain(err, key);
        return undefined;
      }
      throw this.explain(err, key);
    }
  }

  async *list(prefix: string): AsyncIterable<{ key: string; size: number }> {
    let token: string | undefined;
    do {
      const page = await this.call(prefix, () =>
        this.client.send(
          new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix + prefix, ContinuationToken: token }),
        ),
      );
      for (const object of page.Contents ?? []) {
        yield { key: object.Key!.slice(this.prefix.length), size: object.Size ?? 0 };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async delete(key: string): Promise<void> {
    await this.call(key, () =>
      this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.fullKey(key) })),
    );
  }

  private async call<T>(key: string, operation: () => Promise<T>): Promise<T> {
    try {
      return await operation();
    } catch (err) {
      throw this.explain(err, key);
    }
  }

  /** One line saying what is wrong and what to do; never the secret key. */
  private explain(err: unknown, key: string): Error {
    const where = `${this.url}${key}`;
    const code = (err as { code?: string; name?: string }).code ?? (err as Error).name;
    const status = err instanceof S3ServiceException ? err.$metadata.httpStatusCode : undefined;
    if (code === 'ECONNREFUSED' || (err as Error).message?.includes('ECONNREFUSED')) {
      return new StoreError(
        `cannot reach the S3 server at ${this.s3.endpoint} (${where}): start it with 'tttnn infra up' or set s3.endpoint`,
        true,
      );
    }
    if (code === 'NoSuchBucket') {
      return new StoreError(
        `bucket ${this.bucket} does not exist at ${this.s3.endpoint}: create it ('tttnn infra up' creates local ones)`,
      );
    }
    if (code === 'NoSuchKey' || (status === 404 && code === 'NotFound')) {
      return new StoreError(`no object ${where}`);
    }
    if (
      ['SignatureDoesNotMatch', 'InvalidAccessKeyId', 'XAdminUserNotFound', 'AccessDenied'].includes(code ?? '') ||
      status === 403
    ) {
      return new StoreError(
        `the S3 server at ${this.s3.endpoint} rejected the credentials of access key id ${this.s3.accessKeyId} ` +
          `(${code}) for ${where}: check s3.accessKeyId and s3.secretAccessKey`,
      );
    }
    const message = (err as Error).message ?? String(err);
    // Anything else (throttling, 5xx, resets) already outlasted the SDK's own retries; the activity may retry it.
    return new StoreError(
      `S3 ${code ?? 'error'} on ${where}: ${message.split(this.s3.secretAccessKey.reveal()).join('***')}`,
      status === undefined || status >= 500 || status === 429,
    );
  }
}
