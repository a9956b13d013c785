import { promises as fs } from 'node:fs';
import { gguf, type MetadataValue } from '@huggingface/gguf';
import { halfToFloat, type TensorMap } from './safetensors';

/**
 * GGUF checkpoints (llama.cpp's format), dequantized to float32: the engine computes in float32, as transformers
 * does when it loads a GGUF file. @huggingface/gguf parses the header, metadata and tensor table; we read the
 * tensor data and dequantize it. Dims are ggml's (fastest-varying first), so the PyTorch shape is their reverse.
 */
export type GgufValue = MetadataValue;

export interface GgufFile {
  version: number;
  metadata: Map<string, GgufValue>;
  /** Dequantized tensors under their GGUF names, shapes in PyTorch (row-major) order. */
  tensors: TensorMap;
}

/** ggml_type ids and their block layout: elements per block and bytes per block. */
const GGML_TYPES: Record<number, { name: string; blockSize: number; blockBytes: number }> = {
  0: { name: 'F32', blockSize: 1, blockBytes: 4 },
  1: { name: 'F16', blockSize: 1, blockBytes: 2 },
  2: { name: 'Q4_0', blockSize: 32, blockBytes: 18 },
  3: { name: 'Q4_1', blockSize: 32, blockBytes: 20 },
  8: { name: 'Q8_0', blockSize: 32, blockBytes: 34 },
  30: { name: 'BF16', blockSize: 1, blockBytes: 2 },
};

/** The header fields @huggingface/gguf puts beside the key/value metadata. */
const HEADER_FIELDS = new Set(['version', 'tensor_count', 'kv_count']);

export async function readGgufFile(file: string): Promise<GgufFile> {
  const buf = await fs.readFile(file);
  if (buf.toString('latin1', 0, 4) !== 'GGUF') throw new Error(`${file}: not a GGUF file (bad magic)`);
  let header: Awaited<ReturnType<typeof gguf>>;
  try {
    header = await gguf(file, { allowLocalFile: true });
  } catch (err) {
    throw new Error(`${file}: corrupt GGUF header (${(err as Error).message})`);
  }
  const version = Number(header.metadata.version);
  if (version !== 2 && version !== 3) throw new Error(`${file}: GGUF version ${version} is not supported (2 or 3)`);
  const metadata = new Map<string, GgufValue>();
  for (const [key, value] of Object.entries(header.metadata) as [string, GgufValue][])
    if (!HEADER_FIELDS.has(key)) metadata.set(key, value);

  // The parser reads past the end of a truncated file without complaint, so every extent is checked here.
  const dataStart = Number(header.tensorDataOffset);
  if (dataStart > buf.length) throw new Error(`${file}: truncated (the header ends past byte ${buf.length})`);
  const tensors: TensorMap = new Map();
  for (const info of header.tensorInfos) {
    const t = GGML_TYPES[info.dtype];
    if (!t) throw new Error(`${file}: tensor ${info.name} has unsupported ggml type ${info.dtype}`);
    const dims = info.shape.map(Number);
    const count = dims.reduce((a, b) => a * b, 1);
    if (!Number.isSafeInteger(count) || count % t.blockSize !== 0)
      throw new Error(`${file}: tensor ${info.name} is not a whole number of ${t.name} blocks`);
    const begin = dataStart + Number(info.offset);
    const end = begin + (count / t.blockSize) * t.blockBytes;
    if (end > buf.length) throw new Error(`${file}: truncated (tensor ${info.name} extends past the end of the file)`);
    const data = dequantize(buf.subarray(begin, end), info.dtype, count);
    tensors.set(info.name, { shape: dims.reverse(), dtype: t.name, data });
  }
  return { version, metadata, tensors };
}

/** ggml's dequantize_row_* for the types above (blocks of 32 share an f16 scale d, and for Q4_1 a minimum m). */
function dequantize(bytes: Buffer, type: number, count: number): Float32Array {
  const out = new Float32Array(count);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (type) {
    case 0:
      for (let i = 0; i < count; i++) out[i] = view.getFloat32(4 * i, true);
      break;
    case 1:
      for (let i = 0; i < count; i++) out[i] = halfToFloat(view.getUint16(2 * i, true));
      break;
    case 30: {
      const u32 = new Uint32Array(out.buffer);
      for (let i = 0; i < count; i++) u32[i] = view.getUint16(2 * i, true) << 16;
      break;
    }
    case 2: // Q4_0: d, 16 bytes of nibbles; x = (q - 8) * d; low nibbles are elements 0..15, high 16..31
      for (let b = 0, o = 0; o < count; b += 18, o += 32) {
        const d = halfToFloat(view.getUint16(b, true));
        for (let j = 0; j < 16; j++) {
          const q = bytes[b + 2 + j] as number;
          out[o + j] = ((q & 0x0f) - 8) * d;
          out[o + j + 16] = ((q >> 4) - 8) * d;
        }
      }
      break;
    case 3: // Q4_1: d, m, 16 bytes of nibbles; x = q * d + m
      for (let b = 0, o = 0; o < count; b += 20, o += 32) {
        const d = halfToFloat(view.getUint16(b, true));
        const m = halfToFloat(view.getUint16(b + 2, true));
        for (let j = 0; j < 16; j++) {
          const q = bytes[b + 4 + j] as number;
          out[o + j] = (q & 0x0f) * d + m;
          out[o + j + 16] = (q >> 4) * d + m;
        }
      }
      break;
    case 8: // Q8_0: d, 32 int8; x = q * d
      for (let b = 0, o = 0; o < count; b += 34, o += 32) {
        const d = halfToFloat(view.getUint16(b, true));
        for (let j = 0; j < 32; j++) out[o + j] = view.getInt8(b + 2 + j) * d;
      }
      break;
    default:
      throw new Error(`unsupported ggml type ${type}`);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// GGUF Llama -> the HF checkpoint layout (config.json, tensor names, tokenizer.json), as transformers converts it

const LLAMA_NAMES: [RegExp, string][] = [
  [/^token_embd\.weight$/, 'model.embed_tokens.weight'],
  [/^output_norm\.weight$/, 'model.norm.weight'],
  [/^output\.weight$/, 'lm_head.weight'],
  [/^blk\.(\d+)\.attn_norm\.weight$/, 'model.layers.$1.input_layernorm.weight'],
  [/^blk\.(\d+)\.attn_q\.weight$/, 'model.layers.$1.self_attn.q_proj.weight'],
  [/^blk\.(\d+)\.attn_k\.weight$/, 'model.layers.$1.self_attn.k_proj.weight'],
  [/^blk\.(\d+)\.attn_v\.weight$/, 'model.layers.$1.self_attn.v_proj.weight'],
  [/^blk\.(\d+)\.attn_output\.weight$/, 'model.layers.$1.self_attn.o_proj.weight'],
  [/^blk\.(\d+)\.ffn_norm\.weight$/, 'model.layers.$1.post_attention_layernorm.weight'],
  [/^blk\.(\d+)\.ffn_gate\.weight$/, 'model.layers.$1.mlp.gate_proj.weight'],
  [/^blk\.(\d+)\.ffn_up\.weight$/, 'model.layers.$1.mlp.up_proj.weight'],
  [/^blk\.(\d+)\.ffn_down\.weight$/, 'model.layers.$1.mlp.down_proj.weight'],
];

export interface GgufCheckpoint {
  config: { model_type: string; [key: string]: unknown };
  weights: TensorMap;
  tokenizer: unknown;
  tokenizerConfig: Record<string, unknown>;
}

/**
 * A Llama GGUF file as an HF checkpoint. llama.cpp stores q_proj/k_proj rows permuted for its interleaved RoPE
 * (convert_hf_to_gguf.py `permute`); we undo that so that the model code uses HF's rotate_half convention, as
 * transformers' LlamaTensorProcessor does.
 */
export function ggufToHfCheckpoint(gguf: GgufFile, file: string): GgufCheckpoint {
  const md = gguf.metadata;
  const arch = md.get('general.architecture');
  if (arch !== 'llama') throw new Error(`${file}: GGUF architecture ${String(arch)} is not supported (llama only)`);
  const num = (key: string): number => {
    const v = md.get(key);
    if (typeof v !== 'number' && typeof v !== 'bigint') throw new Error(`${file}: metadata ${key} is missing`);
    return Number(v);
  };
  const nh = num('llama.attention.head_count');
  const nkv = md.has('llama.attention.head_count_kv') ? num('llama.attention.head_count_kv') : nh;
  const tokens = md.get('tokenizer.ggml.tokens') as string[] | undefined;
  if (!tokens) throw new Error(`${file}: metadata tokenizer.ggml.tokens is missing`);
  const hasOutput = gguf.tensors.has('output.weight');
  const config = {
    model_type: 'llama',
    vocab_size: md.has('llama.vocab_size') ? num('llama.vocab_size') : tokens.length,
    max_position_embeddings: num('llama.context_length'),
    hidden_size: num('llama.embedding_length'),
    intermediate_size: num('llama.feed_forward_length'),
    num_hidden_layers: num('llama.block_count'),
    num_attention_heads: nh,
    num_key_value_heads: nkv,
    rms_norm_eps: num('llama.attention.layer_norm_rms_epsilon'),
    rope_theta: md.has('llama.rope.freq_base') ? num('llama.rope.freq_base') : 10000,
    tie_word_embeddings: !hasOutput,
    hidden_act: 'silu',
  };

  const weights: TensorMap = new Map();
  for (const [name, t] of gguf.tensors) {
    const rule = LLAMA_NAMES.find(([re]) => re.test(name));
    if (!rule) throw new Error(`${file}: tensor ${name} has no Llama counterpart`);
    const hfName = name.replace(rule[0], rule[1]);
    if (name.includes('.attn_q.')) weights.set(hfName, unpermuteRows(t, nh));
    else if (name.includes('.attn_k.')) weights.set(hfName, unpermuteRows(t, nkv));
    else weights.set(hfName, t);
  }

  const { tokenizer, tokenizerConfig } = ggufTokenizer(md, tokens, file);
  return { config, weights, tokenizer, tokenizerConfig };
}

/** Inverse of llama.cpp's permute: row h*hs + j*(hs/2) + d (j in {0, 1}) comes from row h*hs + 2d + j. */
function unpermuteRows(t: { shape: number[]; dtype: string; data: Float32Array }, nHead: number) {
  const [rows, cols] = t.shape as [number, number];
  const hs = rows / nHead;
  const half = hs / 2;
  const out = new Float32Array(t.data.length);
  for (let h = 0; h < nHead; h++) {
    for (let j = 0; j < 2; j++) {
      for (let d = 0; d < half; d++) {
        const to = (h * hs + j * half + d) * cols;
        const from = (h * hs + 2 * d + j) * cols;
        out.set(t.data.subarray(from, from + cols), to);
      }
    }
  }
  return { shape: t.shape, dtype: t.dtype, data: out };
}

/**
 * tokenizer.json for a GGUF "gpt2" (byte-level BPE) tokenizer, as transformers' GGUF converter writes it: BPE over
 * the token list and merges, ByteLevel pre-tokenizer/decoder, CONTROL tokens (type 3) as special added tokens.
 */
function ggufTokenizer(md: Map<string, GgufValue>, tokens: string[], file: string) {
  const model = md.get('tokenizer.ggml.model');
  if (model !== 'gpt2') throw new Error(`${file}: GGUF tokenizer model ${String(model)} is not supported (gpt2 only)`);
  const types = (md.get('tokenizer.ggml.token_type') as number[] | undefined) ?? [];
  const merges = (md.get('tokenizer.ggml.merges') as string[] | undefined) ?? [];
  const vocab: Record<string, number> = {};
  tokens.forEach((t, i) => (vocab[t] = i));
  const added = tokens.flatMap((content, id) =>
    types[id] === 3
      ? [{ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }]
      : [],
  );
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: null,
    decoder: { ...byteLevel, add_prefix_space: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: merges.map((m) => m.split(' ')),
    },
  };
  const special = (key: string): string | undefined => {
    const id = md.get(`tokenizer.ggml.${key}_token_id`);
    return id === undefined ? undefined : tokens[Number(id)];
  };
  const tokenizerConfig: Record<string, unknown> = {};
  for (const [key, name] of [
    ['bos', 'bos_token'],
    ['eos', 'eos_token'],
    ['unknown', 'unk_token'],
    ['padding', 'pad_token'],
  ] as const) {
    const token = special(key);
    if (token !== undefined) tokenizerConfig[name] = token;
  }
  return { tokenizer, tokenizerConfig };
}
