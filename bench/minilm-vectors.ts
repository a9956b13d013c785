import { engineSettings } from '../core/backend';
import { createHash } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { loadConfig } from '../core/config';
import { embedTexts } from '../core/embed';
import { readVectorsFile, writeVectorsFile } from '../core/index/vectors-file';
import { loadEncoder } from '../core/models/registry';
import { ensureMiniLM } from '../infra/models';

/**
 * all-MiniLM-L6-v2 embeddings (max length 256, mean pooling, L2 norm, as the demo's index) of `texts`, row-major,
 * cached as a vectors file in the tools folder under `name`, the texts' digest and the matmul precision (bfloat16 or
 * TF32 matmuls give slightly other vectors): the first run embeds (minutes on 2 cores for a few thousand texts), later
 * ones read.
 */
export async function cachedMiniLmVectors(
  name: string,
  texts: readonly string[],
): Promise<{ vectors: Float32Array; dimensions: number; cached: boolean }> {
  const config = loadConfig();
  const digest = createHash('sha256');
  for (const text of texts) digest.update(createHash('sha256').update(text).digest());
  const precision = config.matmulPrecision === 'highest' ? '' : `-${config.matmulPrecision}`;
  const cache = path.join(
    config.toolsDir,
    'bench-vectors',
    `minilm-${name}${precision}-${digest.digest('hex').slice(0, 12)}.parquet`,
  );
  if (existsSync(cache)) {
    const file = await readVectorsFile(cache);
    return { vectors: file.vectors, dimensions: file.dimensions, cached: true };
  }
  const log = (line: string) => console.error(line);
  const { model, tokenizer } = await loadEncoder(await ensureMiniLM(config.toolsDir, log), {
    ...engineSettings(config),
    log,
  });
  const t0 = performance.now();
  const embedded = embedTexts(model, tokenizer, [...texts], { maxLength: 256, normalize: true, batchSize: 32 });
  model.dispose();
  log(`  embedded ${texts.length} texts (${name}) in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  const dimensions = embedded[0]?.length ?? 0;
  const vectors = new Float32Array(texts.length * dimensions);
  embedded.forEach((v, i) => vectors.set(v, i * dimensions));
  await fs.mkdir(path.dirname(cache), { recursive: true });
  const partial = `${cache}.partial`;
  await writeVectorsFile(
    partial,
    texts.map((_, i) => ({ docId: `${name}-${i}`, shardRow: i })),
    vectors,
    dimensions,
  );
  await fs.rename(partial, cache);
  return { vectors, dimensions, cached: false };
}
