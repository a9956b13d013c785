import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  halfToFloat,
  parseSafetensors,
  readSafetensorsFolder,
  serializeSafetensors,
} from '../../../../core/checkpoints/safetensors';
import { loadHfCheckpoint } from '../../../../core/checkpoints/hf-folder';
import { loadCausalLM } from '../../../../core/models/registry';
import { FIXTURES } from '../../../helpers/parity';

/** A safetensors file with raw bytes per tensor, laid out as the format specifies. */
function rawFile(tensors: Record<string, { dtype: string; shape: number[]; bytes: Buffer }>, misalign = false): Buffer {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.bytes.length] };
    offset += t.bytes.length;
  }
  let text = JSON.stringify(header);
  // Pad so that the data starts at an offset = 1 (mod 4), which no float32 view can address.
  while (misalign && (8 + Buffer.byteLength(text)) % 4 !== 1) text += ' ';
  const json = Buffer.from(text);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, json, ...Object.values(tensors).map((t) => t.bytes)]);
}

describe('safetensors', () => {
  it('round-trips float32 tensors, including when the data is not 4-byte aligned', () => {
    const a = new Float32Array([1.5, -2.25, 3e-8, 1e30]);
    const b = new Float32Array([0, 1, 2, 3, 4, 5]);
    const buf = serializeSafetensors(
      new Map([
        ['a', { shape: [2, 2], data: a }],
        ['b.weight', { shape: [3, 2], data: b }],
      ]),
    );
    const parsed = parseSafetensors(buf);
    expect(parsed.get('a')).toEqual({ shape: [2, 2], dtype: 'F32', data: a });
    expect(parsed.get('b.weight')?.data).toEqual(b);

    const unaligned = rawFile({ x: { dtype: 'F32', shape: [4], bytes: Buffer.from(a.buffer) } }, true);
    expect(parseSafetensors(unaligned).get('x')?.data).toEqual(a);
  });

  it('converts F16 and BF16 to float32 exactly', () => {
    // F16: 1.0 = 0x3c00, -2.0 = 0xc000, 65504 = 0x7bff, smallest subnormal 2^-24 = 0x0001
    const f16 = Buffer.alloc(8);
    [0x3c00, 0xc000, 0x7bff, 0x0001].forEach((h, i) => f16.writeUInt16LE(h, 2 * i));
    // BF16 keeps the top 16 bits of a float32: 1.0 = 0x3f80, -0.5 = 0xbf00, 3.140625 = 0x4049
    const bf16 = Buffer.alloc(6);
    [0x3f80, 0xbf00, 0x4049].forEach((h, i) => bf16.writeUInt16LE(h, 2 * i));
    const parsed = parseSafetensors(
      rawFile({ h: { dtype: 'F16', shape: [4], bytes: f16 }, b: { dtype: 'BF16', shape: [3], bytes: bf16 } }),
    );
    expect(Array.from(parsed.get('h')?.data ?? [])).toEqual([1, -2, 65504, 2 ** -24]);
    expect(Array.from(parsed.get('b')?.data ?? [])).toEqual([1, -0.5, 3.140625]);
    expect(halfToFloat(0x7c00)).toBe(Infinity);
    expect(halfToFloat(0x7e00)).toBeNaN();
  });

  it('rejects offsets that do not match the shape, naming the file and tensor', () => {
    const bad = rawFile({ w: { dtype: 'F32', shape: [3], bytes: Buffer.alloc(8) } });
    expect(() => parseSafetensors(bad, 'model.safetensors')).toThrow(/model\.safetensors: tensor w .*bad offsets/);
  });

  it('reads a sharded checkpoint through model.safetensors.index.json', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tttnn-shards-'));
    const one = new Map([['a', { shape: [2], data: new Float32Array([1, 2]) }]]);
    const two = new Map([['b', { shape: [1], data: new Float32Array([3]) }]]);
    await fs.writeFile(path.join(dir, 'model-00001-of-00002.safetensors'), serializeSafetensors(one));
    await fs.writeFile(path.join(dir, 'model-00002-of-00002.safetensors'), serializeSafetensors(two));
    const index = { weight_map: { a: 'model-00001-of-00002.safetensors', b: 'model-00002-of-00002.safetensors' } };
    await fs.writeFile(path.join(dir, 'model.safetensors.index.json'), JSON.stringify(index));
    const tensors = await readSafetensorsFolder(dir);
    expect([...tensors.keys()].sort()).toEqual(['a', 'b']);
    expect(Array.from(tensors.get('b')?.data ?? [])).toEqual([3]);

    index.weight_map = { ...index.weight_map, c: 'model-00002-of-00002.safetensors' } as typeof index.weight_map;
    await fs.writeFile(path.join(dir, 'model.safetensors.index.json'), JSON.stringify(index));
    await expect(readSafetensorsFolder(dir)).rejects.toThrow(/tensor c is listed in model-00002-of-00002/);
    await fs.rm(dir, { recursive: true });
  });
});

describe('checkpoint loading errors', () => {
  async function copyFixture(name: string): Promise<string> {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tttnn-ckpt-'));
    await fs.cp(path.join(FIXTURES, name), dir, { recursive: true });
    return dir;
  }

  it('names the weights file and tensor when a weight is missing', async () => {
    const dir = await copyFixture('tiny-gpt2');
    const ckpt = await loadHfCheckpoint(dir);
    ckpt.weights.delete('transformer.h.1.mlp.c_fc.bias');
    await fs.writeFile(path.join(dir, 'model.safetensors'), serializeSafetensors(ckpt.weights));
    await expect(loadCausalLM(dir)).rejects.toThrow(
      `${path.join(dir, 'model.safetensors')}: tensor 'h.1.mlp.c_fc.bias' or 'transformer.h.1.mlp.c_fc.bias' is missing (model_type gpt2)`,
    );
    await fs.rm(dir, { recursive: true });
  });

  it('names config.json and the supported types for an unknown model_type', async () => {
    const dir = await copyFixture('tiny-gpt2');
    const config = JSON.parse(await fs.readFile(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    await fs.writeFile(path.join(dir, 'config.json'), JSON.stringify({ ...config, model_type: 'mamba' }));
    await expect(loadCausalLM(dir)).rejects.toThrow(
      `${path.join(dir, 'config.json')}: unsupported causal LM model_type 'mamba' (supported: gpt2, gpt_neo, gpt_neox, llama)`,
    );
    await fs.rm(dir, { recursive: true });
  });

  it('refuses a Hub id that is not cached when localFilesOnly is set, without touching the network', async () => {
    const cacheDir = await fs.mkdtemp(path.join(os.tmpdir(), 'tttnn-hub-'));
    await expect(loadHfCheckpoint('openai-community/gpt2', { cacheDir, localFilesOnly: true })).rejects.toThrow(
      /openai-community\/gpt2@main is not in the cache .* and localFilesOnly is set/,
    );
    await fs.rm(cacheDir, { recursive: true });
  });
});
