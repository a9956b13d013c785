import { defineQuery } from '@temporalio/workflow';
import type { EvalPlan, EvalSettings } from '../core/eval/run-layout';

export type { EvalPlan, EvalSettings };

export interface EvaluationInput {
  settings: EvalSettings;
  /** `<eval root>/runs/<run id>`: everything the run writes, and what a resumed run reads back. */
  runUrl: string;
  /** Documents evaluated at once (one per gpu-queue worker slot). */
  concurrency: number;
  shardsPerGroup: number;
  heartbeatTimeoutSeconds: number;
  taskQueuePrefix: string;
}

export interface EvaluationSummary {
  runId: string;
  runUrl: string;
  manifestUrl: string;
  buildId: string;
  documents: number;
  evaluated: number;
  /** Skipped documents by reason (each keeps a row in the results). */
  skipped: Record<string, number>;
  steps: number;
  parts: number;
  /** Test documents over `maxDocumentBytes`, left out of a per-domain draw (never selected, so not skipped). */
  notDrawnOverSizeLimit: number;
}

export interface EvaluationProgress {
  phase: 'planning' | 'embedding' | 'retrieving' | 'selecting' | 'evaluating' | 'compacting' | 'done';
  runId: string;
  buildId?: string;
  documents: number;
}

export const evaluationProgressQuery = defineQuery<EvaluationProgress>('evaluationProgress');

/** What evaluateDocument heartbeats: where in the document it is. */
export interface DocumentHeartbeat {
  index: number;
  stage: string;
  neighbor: number;
  of: number;
}
