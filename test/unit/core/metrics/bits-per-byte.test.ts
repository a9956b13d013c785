import {
  getRollingTokenWindows,
  makeDisjointWindow,
  rollingWindows,
  utf8Bytes,
} from '../../../../core/metrics/bits-per-byte';

describe('lm-evaluation-harness rolling windows', () => {
  // Gold from lm-evaluation-harness tests/test_utils.py (test_get_rolling_token_windows_v1).
  it('matches the harness for 34 tokens, max_seq_len 10, context_len 1', () => {
    const x = Array.from({ length: 34 }, (_, i) => i);
    expect(getRollingTokenWindows(x, -100, 10, 1)).toEqual([
      [
        [-100, 0, 1, 2, 3, 4, 5, 6, 7, 8],
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
      ],
      [
        [9, 10, 11, 12, 13, 14, 15, 16, 17, 18],
        [10, 11, 12, 13, 14, 15, 16, 17, 18, 19],
      ],
      [
        [19, 20, 21, 22, 23, 24, 25, 26, 27, 28],
        [20, 21, 22, 23, 24, 25, 26, 27, 28, 29],
      ],
      [
        [23, 24, 25, 26, 27, 28, 29, 30, 31, 32],
        [30, 31, 32, 33],
      ],
    ]);
  });

  it('makes windows disjoint and scores every token exactly once, in order', () => {
    expect(
      makeDisjointWindow([
        [23, 24, 25, 26, 27, 28, 29, 30, 31, 32],
        [30, 31, 32, 33],
      ]),
    ).toEqual([
      [23, 24, 25, 26, 27, 28, 29],
      [30, 31, 32, 33],
    ]);
    for (const n of [1, 9, 10, 11, 20, 21, 57]) {
      const tokens = Array.from({ length: n }, (_, i) => 100 + i);
      const windows = rollingWindows(tokens, 7, 10);
      expect(windows.flatMap((w) => w.targets)).toEqual(tokens);
      for (const w of windows) {
        expect(w.input.length).toBeLessThanOrEqual(10);
        // Each scored token is predicted from the input position just before it.
        const first = w.input.length - w.targets.length;
        w.targets.forEach((t, j) => {
          const prev = j + first === 0 ? undefined : w.input[j + first];
          expect(prev === undefined || prev === t - 1 || (prev === 7 && t === 100)).toBe(true);
        });
      }
      // The first window starts with the EOT token; later ones are full maxLength windows.
      expect(windows[0]?.input[0]).toBe(7);
      expect(windows.slice(1).every((w) => w.input.length === 10)).toBe(true);
    }
    expect(rollingWindows([], 7, 10)).toEqual([]);
  });

  it('counts UTF-8 bytes, not UTF-16 code units', () => {
    expect(utf8Bytes('abc')).toBe(3);
    expect(utf8Bytes('é')).toBe(2);
    expect(utf8Bytes('日本')).toBe(6);
    expect(utf8Bytes('😀')).toBe(4);
  });
});
