import { testConfig } from '../../test-config';
import { ensureNativeTensorflow } from '../../../infra/tensorflow';

describe('ensureNativeTensorflow', () => {
  it('leaves tfjs-node with a loadable native binding, and a second call only checks it', async () => {
    const cacheDir = testConfig().toolsDir;
    const lines: string[] = [];
    await ensureNativeTensorflow({ cacheDir, log: (l) => lines.push(l) });
    const second: string[] = [];
    const t0 = Date.now();
    await ensureNativeTensorflow({ cacheDir, log: (l) => second.push(l) });
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(second).toEqual([expect.stringMatching(/^native TensorFlow 2\.21\.0 already built for tfjs-node/)]);
  });
});
