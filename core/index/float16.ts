/**
 * IEEE 754 binary16 ("half") conversions, for vectors stored at half precision. Node 20 has no Float16Array, so the
 * bits are computed here: float32 → float16 rounds to nearest, ties to even (as numpy's astype(float16) and
 * pyarrow's cast do), with overflow to ±Infinity and gradual underflow through the subnormals.
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The binary16 bits of `x` rounded to half precision. */
export function toFloat16Bits(x: number): number {
  f32[0] = x;
  const bits = u32[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  let mantissa = bits & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa !== 0 ? 0x200 : 0); // Infinity, or a quiet NaN
  const e = exponent - 127 + 15; // rebiased
  if (e >= 0x1f) return sign | 0x7c00; // too large: Infinity
  let half: number;
  let shift: number;
  if (e <= 0) {
    // A half subnormal (or zero): the implicit leading 1 becomes explicit and the mantissa shifts further right.
    if (e < -10) return sign;
    mantissa |= 0x800000;
    shift = 14 - e;
    half = mantissa >>> shift;
  } else {
    shift = 13;
    half = (e << 10) | (mantissa >>> shift);
  }
  const rest = mantissa & ((1 << shift) - 1);
  const midpoint = 1 << (shift - 1);
  // A carry out of the mantissa moves into the exponent, which is the right result (up to Infinity).
  if (rest > midpoint || (rest === midpoint && (half & 1) === 1)) half += 1;
  return sign | half;
}

/** Every binary16 value as float32, by its bits: decoding a vector is one lookup per component. */
const HALF_TO_FLOAT = (() => {
  const table = new Float32Array(0x10000);
  for (let h = 0; h < 0x10000; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exponent = (h >>> 10) & 0x1f;
    const mantissa = h & 0x3ff;
    if (exponent === 0) table[h] = sign * mantissa * 2 ** -24;
    else if (exponent === 0x1f) table[h] = mantissa === 0 ? sign * Infinity : NaN;
    else table[h] = sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
  }
  return table;
})();

/** The float32 value of binary16 bits (exact: every half is a float32). */
export function fromFloat16Bits(bits: number): number {
  return HALF_TO_FLOAT[bits & 0xffff]!;
}
