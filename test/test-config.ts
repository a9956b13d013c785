import path from 'node:path';
import { type Config, parseConfig } from '../core/config';

/** The servers the test suite starts (see global-setup.ts): their own ports and data, apart from a developer's. */
export const TEST_HOME = path.resolve(__dirname, '..', '.tttnn', 'test');

export function testConfig(overrides: { temporal?: Record<string, unknown>; home?: string } = {}): Config {
  return parseConfig({
    home: overrides.home ?? TEST_HOME,
    temporal: {
      address: '127.0.0.1:17233',
      uiPort: 17280,
      httpPort: 17243,
      metricsPort: 17244,
      ui: false,
      ...overrides.temporal,
    },
    s3: { endpoint: 'http://127.0.0.1:17070', accessKeyId: 'tttnn-test', secretAccessKey: 'tttnn-test-secret-0451' },
    worker: { shutdownGraceSeconds: 5 },
  });
}
