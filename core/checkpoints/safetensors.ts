import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';

/**
 * safetensors reader (format: huggingface/safetensors README).
 *
 *   [u64 little-endian N][N bytes of JSON header][raw little-endian tensor bytes]
 *   header: { "<name>": { "dtype": "F32", "shape": [..], "data_offsets": [begin, end] }, "__metadata__": {..} }
 *
 * Offsets are relative to the first byte after the header. Every tensor is returned as float32, since the
 * engine computes in float32 whatever the checkpoint stores.
 */
export interface StoredTensor {
  shape: number[];
  /** dtype as stored in the file (F32, F16, BF16, ...); `data` is always float32. */
  dtype: string;
  data: Float32Array;
}

export type TensorMap = Map<string, StoredTensor>;

interface HeaderEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

const BYTES_PER_ELEMENT: Record<string, number> = {
  F32: 4,
  F16: 2,
  BF16: 2,
  F64: 8,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

export function parseSafetensors(buf: Buffer, file = '<buffer>'): TensorMap {
  if (buf.length < 8) throw new Error(`${file}: too short to be a safetensors file (${buf.length} bytes)`);
  const headerLen = buf.readBigUInt64LE(0);
  if (headerLen > BigInt(buf.length - 8)) {
    throw new Error(`${file}: header length ${headerLen} exceeds the file size ${buf.length}`);
  }
  const dataStart = 8 + Number(headerLen);
  const header = JSON.parse(buf.subarray(8, dataStart).toString('utf8')) as Record<string, HeaderEntry | object>;
  const tensors: TensorMap = new Map();
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const entry = raw as HeaderEntry;
    const [begin, end] = entry.data_offsets;
    const count = entry.shape.reduce((a, b) => a * b, 1);
    const width = BYTES_PER_ELEMENT[entry.dtype];
    if (width === undefined) throw new Error(`${file}: tensor ${name} has unsupported dtype ${entry.dtype}`);
    if (end - begin !== count * width || dataStart + end > buf.length) {
      throw new Error(
        `${file}: tensor ${name} (${entry.dtype} ${JSON.stringify(entry.shape)}) has bad offsets [${begin}, ${end}]`,
      );
    }
    const bytes = buf.subarray(dataStart + begin, dataStart + end);
    tensors.set(name, { shape: entry.shape, dtype: entry.dtype, data: toFloat32(bytes, entry.dtype, count) });
  }
  return tensors;
}

function toFloat32(bytes: Buffer, dtype: string, count: number): Float32Array {
  const out = new Float32Array(count);
  // Copy through a DataView: the tensor's offset in the file need not be aligned for a typed-array view.
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (dtype) {
    case 'F32':
      if (bytes.byteOffset % 4 === 0) {
        // Aligned (the usual case: writers pad the header to 8 bytes): one bulk copy; x86/ARM are little-endian.
        out.set(new Float32Array(bytes.buffer, bytes.byteOffset, count));
        break;
      }
      for (let i = 0; i < count; i++) out[i] = view.getFloat32(4 * i, true);
      break;
    case 'F64':
      for (let i = 0; i < count; i++) out[i] = view.getFloat64(8 * i, true);
      break;
    case 'F16':
      for (let i = 0; i < count; i++) out[i] = halfToFloat(view.getUint16(2 * i, true));
      break;
    case 'BF16': {
      // bfloat16 is the top half of a float32.
      const u32 = new Uint32Array(out.buffer);
      for (let i = 0; i < count; i++) u32[i] = view.getUint16(2 * i, true) << 16;
      break;
    }
    case 'I64':
      for (let i = 0; i < count; i++) out[i] = Number(view.getBigInt64(8 * i, true));
      break;
    case 'I32':
      for (let i = 0; i < count; i++) out[i] = view.getInt32(4 * i, true);
      break;
    case 'I16':
      for (let i = 0; i < count; i++) out[i] = view.getInt16(2 * i, true);
      break;
    case 'I8':
      for (let i = 0; i < count; i++) out[i] = view.getInt8(i);
      break;
    case 'U8':
    case 'BOOL':
      for (let i = 0; i < count; i++) out[i] = view.getUint8(i);
      break;
    default:
      throw new Error(`unsupported dtype ${dtype}`);
  }
  return out;
}

/** IEEE 754 binary16 to a JS number (exact: every half is representable as a float32). */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24; // subnormal
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

export async function readSafetensorsFile(file: string): Promise<TensorMap> {
  return parseSafetensors(await fs.readFile(file), file);
}

/**
 * Loads the weights of a checkpoint folder: `model.safetensors`, or the shards listed in
 * `model.safetensors.index.json` (`{ "weight_map": { "<tensor>": "<shard file>" } }`).
 */
export async function readSafetensorsFolder(dir: string): Promise<TensorMap> {
  const single = path.join(dir, 'model.safetensors');
  if (existsSync(single)) return readSafetensorsFile(single);
  const indexFile = path.join(dir, 'model.safetensors.index.json');
  if (!existsSync(indexFile))
    throw new Error(`${dir}: neither model.safetensors nor model.safetensors.index.json exists`);
  const index = JSON.parse(await fs.readFile(indexFile, 'utf8')) as { weight_map?: Record<string, string> };
  if (!index.weight_map) throw new Error(`${indexFile}: no weight_map`);
  const tensors: TensorMap = new Map();
  for (const shard of [...new Set(Object.values(index.weight_map))].sort()) {
    for (const [name, t] of await readSafetensorsFile(path.join(dir, shard))) tensors.set(name, t);
  }
  for (const [name, shard] of Object.entries(index.weight_map)) {
    if (!tensors.has(name)) throw new Error(`${indexFile}: tensor ${name} is listed in ${shard} but not stored there`);
  }
  return tensors;
}

/** Writes float32 tensors as a safetensors file (for tests and for saving fine-tuned weights). */
export function serializeSafetensors(tensors: Map<string, { shape: number[]; data: Float32Array }>): Buffer {
  const header: Record<string, HeaderEntry> = {};
  let offset = 0;
  for (const [name, t] of tensors) {
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + 4 * t.data.length] };
    offset += 4 * t.data.length;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  // Pad the header with spaces to 8 bytes so that the data is aligned, as the reference writer does.
  json = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, 0x20)]);
  const out = Buffer.alloc(8 + json.length + offset);
  out.writeBigUInt64LE(BigInt(json.length), 0);
  json.copy(out, 8);
  let pos = 8 + json.length;
  for (const t of tensors.values()) {
    Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).copy(out, pos);
    pos += t.data.byteLength;
  }
  return out;
}
