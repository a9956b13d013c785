import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readGgufFile } from '../../../../core/checkpoints/gguf';
import { loadCausalLM } from '../../../../core/models/registry';

/** A GGUF v3 file: metadata (u32, f32, string, string array) and tensors, laid out as the format specifies. */
function ggufFile(
  tensors: { name: string; dims: number[]; type: number; data: Buffer }[],
  architecture = 'llama',
): Buffer {
  const parts: Buffer[] = [];
  const u32 = (v: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    parts.push(b);
  };
  const u64 = (v: number) => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    parts.push(b);
  };
  const str = (s: string) => {
    u64(Buffer.byteLength(s));
    parts.push(Buffer.from(s));
  };
  parts.push(Buffer.from('GGUF'));
  u32(3);
  u64(tensors.length);
  u64(4);
  str('general.architecture');
  u32(8);
  str(architecture);
  str('llama.block_count');
  u32(4);
  u32(30);
  str('llama.rope.freq_base');
  u32(6);
  const f = Buffer.alloc(4);
  f.writeFloatLE(100000);
  parts.push(f);
  str('tokenizer.ggml.tokens');
  u32(9);
  u32(8);
  u64(2);
  str('<|endoftext|>');
  str('Ġthe');
  let offset = 0;
  for (const t of tensors) {
    str(t.name);
    u32(t.dims.length);
    t.dims.forEach(u64);
    u32(t.type);
    u64(offset);
    offset += Math.ceil(t.data.length / 32) * 32;
  }
  let header = Buffer.concat(parts);
  header = Buffer.concat([header, Buffer.alloc((32 - (header.length % 32)) % 32)]);
  const data = tensors.map((t) => Buffer.concat([t.data, Buffer.alloc((32 - (t.data.length % 32)) % 32)]));
  return Buffer.concat([header, ...data]);
}

const half = (v: number) => {
  // Exact f16 encodings of the few values used below.
  const table: Record<number, number> = { 0.5: 0x3800, 0.25: 0x3400, [-1]: 0xbc00, 2: 0x4000 };
  return table[v] as number;
};

let dir: string;
beforeAll(async () => void (dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tttnn-gguf-'))));
afterAll(() => fs.rm(dir, { recursive: true, force: true }));

async function write(name: string, bytes: Buffer): Promise<string> {
  const file = path.join(dir, name);
  await fs.writeFile(file, bytes);
  return file;
}

const oneTensor = () => ggufFile([{ name: 'a', dims: [2], type: 0, data: Buffer.alloc(8) }]);

describe('GGUF', () => {
  it('reads metadata and dequantizes F32, Q8_0 and Q4_1 blocks, reversing ggml dims to PyTorch order', async () => {
    const f32 = Buffer.alloc(24);
    [1, 2, 3, 4, 5, 6].forEach((v, i) => f32.writeFloatLE(v, 4 * i));
    // Q8_0: d = 0.5, q = -16..15  ->  x = q * d
    const q8 = Buffer.alloc(34);
    q8.writeUInt16LE(half(0.5), 0);
    for (let j = 0; j < 32; j++) q8.writeInt8(j - 16, 2 + j);
    // Q4_1: d = 0.25, m = -1; byte j holds element j (low nibble) and j + 16 (high nibble)  ->  x = q * d + m
    const q41 = Buffer.alloc(20);
    q41.writeUInt16LE(half(0.25), 0);
    q41.writeUInt16LE(half(-1), 2);
    for (let j = 0; j < 16; j++) q41.writeUInt8((j & 0x0f) | ((15 - j) << 4), 4 + j);

    const file = await readGgufFile(
      await write(
        'blocks.gguf',
        ggufFile([
          { name: 'a', dims: [3, 2], type: 0, data: f32 },
          { name: 'b', dims: [32], type: 8, data: q8 },
          { name: 'c', dims: [16, 2], type: 3, data: q41 },
        ]),
      ),
    );
    expect(file.version).toBe(3);
    expect(file.metadata.get('general.architecture')).toBe('llama');
    expect(file.metadata.get('llama.block_count')).toBe(30);
    expect(file.metadata.get('llama.rope.freq_base')).toBe(100000);
    expect(file.metadata.get('tokenizer.ggml.tokens')).toEqual(['<|endoftext|>', 'Ġthe']);

    expect(file.tensors.get('a')?.shape).toEqual([2, 3]);
    expect(Array.from(file.tensors.get('a')?.data ?? [])).toEqual([1, 2, 3, 4, 5, 6]);
    expect(Array.from(file.tensors.get('b')?.data ?? [])).toEqual(Array.from({ length: 32 }, (_, j) => (j - 16) * 0.5));
    const c = file.tensors.get('c');
    expect(c?.shape).toEqual([2, 16]);
    const want = [
      ...Array.from({ length: 16 }, (_, j) => j * 0.25 - 1),
      ...Array.from({ length: 16 }, (_, j) => (15 - j) * 0.25 - 1),
    ];
    expect(Array.from(c?.data ?? [])).toEqual(want);
  });

  // Each bad file fails the model load with one line that names the file.
  it.each([
    [
      'wrong magic',
      () => Buffer.concat([Buffer.from('GGML'), oneTensor().subarray(4)]),
      /: not a GGUF file \(bad magic\)$/,
    ],
    ['truncated data', () => oneTensor().subarray(0, oneTensor().length - 28), /: truncated \(tensor a extends past/],
    ['truncated header', () => oneTensor().subarray(0, 60), /: (truncated|corrupt GGUF header)/],
    [
      'corrupt header',
      () => Buffer.concat([oneTensor().subarray(0, 8), Buffer.alloc(64, 0xff)]),
      /: corrupt GGUF header \(/,
    ],
    ['unsupported version', () => Buffer.from(oneTensor()).fill(7, 4, 5), /: corrupt GGUF header \(.*version/],
    ['unknown architecture', () => ggufFile([], 'mamba'), /: GGUF architecture mamba is not supported \(llama only\)$/],
    [
      'unsupported tensor type',
      () => ggufFile([{ name: 'q', dims: [32], type: 12, data: Buffer.alloc(144) }]),
      /: tensor q has unsupported ggml type 12$/,
    ],
  ])('%s: one clear error naming the file', async (kind, bytes, message) => {
    const file = await write(`${kind.replace(/ /g, '-')}.gguf`, bytes());
    const error = await loadCausalLM(file, { backend: 'cpu', log: () => undefined }).then(
      () => undefined,
      (err: Error) => err,
    );
    expect(error?.message).toMatch(message);
    expect(error?.message.startsWith(`${file}: `)).toBe(true);
    expect(error?.message).not.toContain('\n');
  });
});
