import { evaluationInput } from '../../../cli/eval-command';
import { testConfig } from '../../test-config';

test("the SIFT settings enter a run's settings (and its default run id) only when the run has the SIFT baseline", () => {
  const config = testConfig();
  const plain = evaluationInput(config, { test: 's3://tttnn/test' });
  expect('sift' in plain.settings).toBe(false);
  // Settings other than the baseline's own do not change a run without it (its run id stays what it was).
  const tuned = { ...config, eval: { ...config.eval, siftPool: 50, siftAlpha: 0.3 } };
  expect(evaluationInput(tuned, { test: 's3://tttnn/test' }).settings).toEqual(plain.settings);

  const withSift = { ...tuned, eval: { ...tuned.eval, baselines: ['random', 'sift'] as typeof config.eval.baselines } };
  const sift = evaluationInput(withSift, { test: 's3://tttnn/test' }).settings;
  expect(sift.sift).toEqual({ pool: 50, lambda: 0.01, alpha: 0.3 });
  expect(sift.runId).not.toBe(plain.settings.runId);
});
