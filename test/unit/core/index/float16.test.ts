import { fromFloat16Bits, toFloat16Bits } from '../../../../core/index/float16';

describe('float16', () => {
  test('known values, rounding to nearest with ties to even, overflow and underflow', () => {
    const cases: [number, number][] = [
      [0, 0x0000],
      [-0, 0x8000],
      [1, 0x3c00],
      [-2, 0xc000],
      [0.1, 0x2e66],
      [65504, 0x7bff], // the largest half
      [65519, 0x7bff], // below the midpoint to the next (65536): stays
      [65520, 0x7c00], // the midpoint, odd mantissa: rounds up to Infinity
      [1e6, 0x7c00],
      [-Infinity, 0xfc00],
      [2 ** -14, 0x0400], // the smallest normal
      [2 ** -24, 0x0001], // the smallest subnormal
      [2 ** -25, 0x0000], // halfway to it: ties to even, 0
      [3 * 2 ** -25, 0x0002], // halfway between 1 and 2 ulps: to even, 2
      [1 + 2 ** -11, 0x3c00], // a tie: to even
      [1 + 3 * 2 ** -11, 0x3c02], // a tie: to even, up
      [1 + 2 ** -11 + 2 ** -20, 0x3c01], // above the tie
    ];
    for (const [x, bits] of cases) expect([x, toFloat16Bits(x)]).toEqual([x, bits]);
    expect(toFloat16Bits(NaN) & 0x7c00).toBe(0x7c00);
    expect(toFloat16Bits(NaN) & 0x3ff).not.toBe(0);
    expect(Object.is(fromFloat16Bits(0x8000), -0)).toBe(true);
    expect(fromFloat16Bits(0x7bff)).toBe(65504);
    expect(fromFloat16Bits(0x0001)).toBe(2 ** -24);
    expect(fromFloat16Bits(0x7e00)).toBeNaN();
  });

  test('every half survives half → float → half', () => {
    for (let h = 0; h < 0x10000; h++) {
      const isNaN = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
      if (!isNaN && toFloat16Bits(fromFloat16Bits(h)) !== h) throw new Error(`half 0x${h.toString(16)} changed`);
    }
  });

  test('a float rounds to one of the two halves around it, the nearer', () => {
    let state = 7;
    for (let i = 0; i < 100_000; i++) {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
      const x = Math.fround((state / 2 ** 32 - 0.5) * 2 ** ((i % 40) - 25));
      const got = fromFloat16Bits(toFloat16Bits(x));
      // The neighbours of the result: nothing representable is nearer to x.
      const bits = toFloat16Bits(x);
      const below = fromFloat16Bits(bits - 1);
      const above = fromFloat16Bits(bits + 1);
      if ((bits & 0x7fff) !== 0 && Math.abs(below - x) < Math.abs(got - x)) throw new Error(`${x}: ${got}`);
      if ((bits & 0x7fff) < 0x7bff && Math.abs(above - x) < Math.abs(got - x)) throw new Error(`${x}: ${got}`);
    }
  });
});
