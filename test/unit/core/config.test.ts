import { inspect } from 'node:util';
import { ConfigError, loadConfig, redact } from '../../../core/config';

describe('loadConfig', () => {
  it('applies defaults, then environment, then --set flags', () => {
    const config = loadConfig({
      env: { TTTNN_S3_ENDPOINT: 'http://127.0.0.1:9000', TTTNN_INGEST_ROWS_PER_SHARD: '10', TTTNN_HOME: '/tmp/h' },
      overrides: ['ingest.rowsPerShard=20', 'worker.queues=cpu,index'],
    });
    expect(config.s3.endpoint).toBe('http://127.0.0.1:9000');
    expect(config.ingest.rowsPerShard).toBe(20);
    expect(config.worker.queues).toEqual(['cpu', 'index']);
    expect(config.home).toBe('/tmp/h');
    expect(config.temporal.address).toBe('127.0.0.1:7233');
  });

  it('names the bad field and the source in its error', () => {
    expect(() => loadConfig({ env: {}, overrides: ['ingest.rowsPerShard=-3'] })).toThrow(/ingest\.rowsPerShard/);
    expect(() => loadConfig({ env: { TTTNN_TEMPORAL_UI_PORT: '99999' } })).toThrow(/temporal\.uiPort/);
    expect(() => loadConfig({ env: {}, overrides: ['worker.queues=cpu,tpu'] })).toThrow(/worker\.queues/);
    expect(() => loadConfig({ env: { TTTNN_S3_ENDPINT: 'x' } })).toThrow(/endpint/);
    expect(() => loadConfig({ env: {}, overrides: ['novalue'] })).toThrow(ConfigError);
    expect(() => loadConfig({ env: {}, file: '/nonexistent/tttnn.json' })).toThrow(/\/nonexistent\/tttnn.json/);
  });

  it('never prints the secret key', () => {
    const config = loadConfig({ env: { TTTNN_S3_SECRET_ACCESS_KEY: 'hunter2-very-secret' } });
    expect(config.s3.secretAccessKey.reveal()).toBe('hunter2-very-secret');
    for (const text of [JSON.stringify(config), inspect(config, { depth: 5 }), String(config.s3.secretAccessKey)]) {
      expect(text).not.toContain('hunter2');
    }
    expect(redact('denied for hunter2-very-secret!', config)).toBe('denied for ***!');
  });
});
