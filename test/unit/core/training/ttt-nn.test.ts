import path from 'node:path';
import { bitsPerByte, harnessPrefixToken } from '../../../../core/metrics/bits-per-byte';
import { loadCausalLM, loadEncoder } from '../../../../core/models/registry';
import { formatTttNnTable, tttNnOnCorpus } from '../../../../core/training/ttt-nn';
import { FIXTURES } from '../../../helpers/parity';

describe('tttNnOnCorpus', () => {
  it('trains on each test document’s nearest other documents and reports bits/byte per domain', async () => {
    const encoder = await loadEncoder(path.join(FIXTURES, 'tiny-bert'), { log: () => undefined });
    const lm = await loadCausalLM(path.join(FIXTURES, 'tiny-gpt2'), { log: () => undefined });
    const prefixToken = harnessPrefixToken(lm.tokenizer);
    const docs = [
      { domain: 'code', text: 'def forward(self, x): return self.proj(x)' },
      { domain: 'prose', text: 'The quick brown fox jumps over the lazy dog near the river bank.' },
      { domain: 'code', text: 'def backward(self, g): return self.proj.T(g)' },
      { domain: 'prose', text: 'A lazy dog sleeps by the river while the brown fox runs away.' },
      { domain: 'code', text: 'x'.repeat(400) }, // larger than maxTestBytes: never a test document
    ];
    const lines: string[] = [];
    const settings = { testsPerDomain: 5, k: 2, maxLength: 8, lr: 1e-2, maxTestBytes: 100, maxNeighborTokens: 16 };
    const result = tttNnOnCorpus(docs, encoder, { ...lm, prefixToken }, settings, (line) => lines.push(line));

    expect(result.domains.map((d) => [d.domain, d.docs])).toEqual([
      ['code', 2],
      ['prose', 2],
    ]);
    // Every test document trains on k neighbors cut to 16 tokens: 2 chunks of 8 each (fewer when a neighbor is short).
    expect(result.steps).toBeGreaterThanOrEqual(4 * 2);
    expect(result.steps).toBeLessThanOrEqual(4 * 2 * 2);
    expect(lines).toHaveLength(4);
    // "Before" is the untouched model's figure: the sum over the domain's test documents, recomputed here.
    const before = (texts: string[]) => {
      let nll = 0;
      let bytes = 0;
      for (const text of texts) {
        const r = bitsPerByte(lm.model, text, lm.tokenizer.encode(text, { addSpecialTokens: false }), {
          prefixToken,
          maxLength: 8,
        });
        nll += r.nllNats;
        bytes += r.bytes;
      }
      return nll / bytes / Math.LN2;
    };
    expect(result.domains[0]?.bitsPerByteBefore).toBeCloseTo(before([docs[0]!.text, docs[2]!.text]), 10);
    for (const d of result.domains) expect(d.bitsPerByteAfter).not.toBe(d.bitsPerByteBefore);
    expect(formatTttNnTable(result)).toMatch(/^code\s+2\s+\d\.\d{4}\s+\d\.\d{4}\s+-?\d+\.\d%$/m);
    encoder.model.dispose();
    lm.model.dispose();
  });
});
