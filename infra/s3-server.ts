import http from 'node:http';
import path from 'node:path';
import type { Config } from '../core/config';
import type { ServerSpec } from './managed-process';

/** versitygw serving a folder over the S3 API on loopback; objects are plain files, metadata in xattrs. */
export function s3ServerSpec(binary: string, config: Pick<Config, 'home' | 's3'>): ServerSpec {
  const url = new URL(config.s3.endpoint);
  const host = url.hostname;
  const port = Number(url.port || 80);
  const dataDir = path.join(config.home, 's3');
  return {
    name: 's3',
    host,
    port,
    runDir: dataDir,
    command: binary,
    args: ['--quiet', '--port', `${host}:${port}`, 'posix', path.join(dataDir, 'buckets')],
    env: {
      ...process.env,
      ROOT_ACCESS_KEY: config.s3.accessKeyId,
      ROOT_SECRET_KEY: config.s3.secretAccessKey.reveal(),
    },
    // Any S3 answer (even 403 to an unsigned request) from versitygw means it is serving.
    healthy: () =>
      new Promise((resolve) => {
        const request = http.get({ host, port, path: '/', timeout: 2000 }, (response) => {
          response.resume();
          resolve(response.headers.server === 'VERSITYGW');
        });
        request.on('error', () => resolve(false));
        request.on('timeout', () => {
          request.destroy();
          resolve(false);
        });
      }),
    portHint: 'stop it, or choose another port with s3.endpoint (TTTNN_S3_ENDPOINT)',
  };
}
