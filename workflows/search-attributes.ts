import { SearchAttributeType, defineSearchAttributeKey } from '@temporalio/common';

/**
 * Custom search attributes of tttnn's workflows: filter them in the Temporal UI (`TttnnRunId = "run-…"`,
 * `TttnnIndexBuild = "…"`). Here rather than in the CLI because a workflow sets some of them itself, once it knows
 * them (an index build learns its id when it is planned).
 */
export const SEARCH_ATTRIBUTES = {
  runId: defineSearchAttributeKey('TttnnRunId', SearchAttributeType.KEYWORD),
  model: defineSearchAttributeKey('TttnnModel', SearchAttributeType.KEYWORD),
  indexBuild: defineSearchAttributeKey('TttnnIndexBuild', SearchAttributeType.KEYWORD),
  /** An index build's corpus version, as `tttnn ingest` printed it. */
  corpus: defineSearchAttributeKey('TttnnCorpus', SearchAttributeType.KEYWORD),
  /** An index build's encoder, as the config names it (`index.encoder`). */
  encoder: defineSearchAttributeKey('TttnnEncoder', SearchAttributeType.KEYWORD),
};
