import type { Config } from '../core/config';
import { CPU_TENSORFLOW, GPU_TENSORFLOW, ensureNativeTensorflow } from './tensorflow';

/**
 * Makes sure the native TensorFlow binding is built before a command loads a model. `npm ci` wipes it, so a fresh
 * clone's first model command would otherwise fall back to WASM, which is too slow and too small for real models.
 * Quiet and quick (~0.5 s) when it is in place; ~30 s from the cached wheel; a download the first time.
 */
export async function ensureEngine(config: Config, log: (line: string) => void): Promise<void> {
  if (config.backend === 'wasm' || config.backend === 'cpu') return;
  const flavor = config.backend === 'tensorflow-gpu' ? GPU_TENSORFLOW : CPU_TENSORFLOW;
  try {
    await ensureNativeTensorflow({ cacheDir: config.toolsDir, log, flavor, quiet: true });
  } catch (err) {
    if (config.backend !== 'auto') throw err;
    // 'auto' falls back to WASM; the backend says so and which command builds the native one.
    log(`warning: could not build native TensorFlow: ${(err as Error).message.split('\n')[0]}`);
  }
}
