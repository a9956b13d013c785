import type { Client } from '@temporalio/client';
import { demoEvalSettings, evalConfig, evaluate, withDemoPipeline } from '../cli/demo';
import { evaluationWorkflowId, readRunResults } from '../cli/eval-command';
import { loadConfig } from '../core/config';
import { BASELINES, type Baseline } from '../core/eval/run-layout';
import { pageWorkflowId, pagedStageId } from '../workflows/paged';

/**
 * `npm run bench:eval`: an evaluation of the bundled sample corpus as the demo runs it (SmolLM2-135M, MiniLM, the
 * demo's settings; `--per-domain N`, `--k K`, `--baselines random,dynamic,in-context,sift`; SIFT reads eval.siftAlpha etc. from the config), then where each document's
 * time went: retrieval (reading the persisted neighbors' texts, plus its share of the batched search stage),
 * training and evaluation (timed inside the activity), and orchestration overhead: everything else between the
 * evaluation stage's start and end (Temporal scheduling, store reads and the commit, serialisation), from the
 * workflow histories. Goal: orchestration under 2% of a document's time.
 */
async function main(): Promise<void> {
  const arg = (name: string, fallback: string) => {
    const i = process.argv.indexOf(`--${name}`);
    return i >= 0 ? process.argv[i + 1]! : fallback;
  };
  const perDomain = Number(arg('per-domain', '1'));
  const k = Number(arg('k', '2'));
  const baselines = arg('baselines', 'random').split(',').filter(Boolean) as Baseline[];
  const unknown = baselines.filter((b) => !(BASELINES as readonly string[]).includes(b));
  if (unknown.length > 0)
    throw new Error(`--baselines: unknown ${unknown.join(', ')} (known: ${BASELINES.join(', ')})`);
  const log = (line: string) => console.log(line);
  await withDemoPipeline(
    loadConfig(),
    () => undefined,
    async ({ config, client, buildId, testManifestUrl }) => {
      const settings = { ...(await demoEvalSettings(config)), k, baselines, perDomain };
      const runId = `bench-${Date.now()}`;
      const t0 = Date.now();
      const summary = await evaluate(config, client, settings, testManifestUrl, buildId, log, runId);
      const wall = (Date.now() - t0) / 1000;
      const { rows } = await readRunResults(evalConfig(config, settings), summary.runId);
      const stages = await stageSeconds(client, evaluationWorkflowId(runId));
      const evaluated = rows.filter((r) => r.skip_reason === '');
      const n = evaluated.length;
      const sum = (pick: (r: (typeof rows)[number]) => number) => evaluated.reduce((s, r) => s + pick(r), 0);
      const training = sum((r) => r.seconds_training);
      const evaluation = sum((r) => r.seconds_evaluation);
      const texts = sum((r) => r.seconds_retrieval);
      const selection = sum((r) => r.seconds_selection);
      const inside = sum((r) => r.seconds_total);
      const search = stages.retrieve ?? 0;
      // The evaluation stage runs one document at a time (eval.concurrency 1): its wall time minus the work timed
      // inside the activities is what orchestration and I/O around them cost.
      const orchestration = (stages.evaluate ?? 0) - inside;
      const perDoc = (seconds: number) => (seconds / n).toFixed(2).padStart(8);
      const total =
        training + evaluation + texts + search + selection + orchestration + (inside - training - evaluation - texts);
      const pct = (seconds: number) => `${((100 * seconds) / total).toFixed(2).padStart(6)}%`;
      console.log(`\nbench:eval — ${n} documents, k=${k}, baselines ${baselines.join(',') || 'none'}, run ${runId}`);
      console.log('seconds per document      s/doc   share');
      console.log(`retrieval (search)     ${perDoc(search)} ${pct(search)}   batched stage, shared by all documents`);
      console.log(`retrieval (texts)      ${perDoc(texts)} ${pct(texts)}   reading neighbors' texts from the corpus`);
      if (baselines.includes('sift')) {
        console.log(
          `SIFT selection         ${perDoc(selection)} ${pct(selection)}   ${((1000 * selection) / n).toFixed(1)} ms per document, before training`,
        );
      }
      console.log(`training               ${perDoc(training)} ${pct(training)}`);
      console.log(`evaluation             ${perDoc(evaluation)} ${pct(evaluation)}   bits/byte after every neighbor`);
      const other = inside - training - evaluation - texts;
      console.log(`other in activity      ${perDoc(other)} ${pct(other)}   tokenizing, contamination hashes`);
      console.log(
        `orchestration          ${perDoc(orchestration)} ${pct(orchestration)}   Temporal, store I/O, commit`,
      );
      console.log(
        `stages (s): ${Object.entries(stages)
          .map(([name, seconds]) => `${name} ${seconds.toFixed(1)}`)
          .join(', ')}; run wall ${wall.toFixed(1)} s`,
      );
    },
  );
}

/** Wall seconds of the run's stages, from its history: child workflows and the activities it ran itself. */
async function stageSeconds(client: Client, workflowId: string): Promise<Record<string, number>> {
  const seconds: Record<string, number> = {};
  const span = async (id: string) => {
    const events = (await client.workflow.getHandle(id).fetchHistory()).events ?? [];
    const time = (i: number) =>
      Number(events.at(i)?.eventTime?.seconds ?? 0) + (events.at(i)?.eventTime?.nanos ?? 0) / 1e9;
    return time(-1) - time(0);
  };
  seconds.total = await span(workflowId);
  seconds.retrieve = await span(`${workflowId}/retrieve`).catch(() => 0);
  seconds.evaluate = await span(pagedStageId(workflowId, 'evaluate'));
  seconds.compact = await span(pagedStageId(workflowId, 'compact'));
  seconds.firstPage = await span(pageWorkflowId(pagedStageId(workflowId, 'evaluate'), 0));
  return seconds;
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
