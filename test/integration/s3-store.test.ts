import { S3Store } from '../../core/store/s3-store';
import { parseConfig } from '../../core/config';
import { storeContract } from '../store-contract';
import { testConfig } from '../test-config';
import { uniqueName } from './harness';

const config = testConfig();

describe('S3Store on the real versitygw server', () => {
  storeContract(() => Promise.resolve(new S3Store(`s3://tttnn/${uniqueName('store')}`, config.s3)));

  it('puts a one-line error on wrong credentials, without the secret', async () => {
    const wrong = parseConfig({ s3: { ...config.s3, secretAccessKey: 'not-the-secret-xyz', maxAttempts: 1 } }).s3;
    const store = new S3Store('s3://tttnn/creds', { ...wrong, accessKeyId: config.s3.accessKeyId });
    const error = await store.putBytes('x', 'y').then(
      () => new Error('no error'),
      (e: Error) => e,
    );
    expect(error.message).toMatch(/rejected the credentials of access key id tttnn-test .*check s3\.accessKeyId/);
    expect(error.message).not.toContain('not-the-secret-xyz');
    const unknownKey = new S3Store('s3://tttnn/creds', { ...wrong, accessKeyId: 'nobody' });
    await expect(unknownKey.getBytes('x')).rejects.toThrow(/rejected the credentials of access key id nobody/);
  });

  it('says when the bucket is missing or the server is unreachable', async () => {
    await expect(new S3Store('s3://no-such-bucket-here/x', config.s3).putBytes('k', 'v')).rejects.toThrow(
      /bucket no-such-bucket-here does not exist/,
    );
    const down = { ...config.s3, endpoint: 'http://127.0.0.1:9', maxAttempts: 1 };
    await expect(new S3Store('s3://tttnn/x', down).putBytes('k', 'v')).rejects.toThrow(
      /cannot reach the S3 server at http:\/\/127\.0\.0\.1:9 .*tttnn infra up/,
    );
  });
});
