import {
  ApplicationFailure,
  continueAsNew,
  defineQuery,
  executeChild,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import { type ActivityProfileName, activityOptions } from './profiles';

/**
 * One activity per item over `total` items, with history bounded whatever `total` is: items are grouped in pages of
 * `pageSize`, each page a child workflow (`pageWorkflow`) that runs its items with `concurrency` in flight; the
 * parent (`pagedWorkWorkflow`) runs `pageConcurrency` pages at a time and continues as new every `pagesPerRun`
 * pages, carrying only the summed counters. Inputs are references (URLs, keys, counts), results small counters,
 * so no payload and no execution's event count grows with the item count.
 */
export interface PagedWorkInput {
  /** The activity run once per item, called as activity({ ...args, index }) with index in [0, total). */
  activity: string;
  /** The same small argument for every item: references only (URLs, keys, counts). */
  args: Record<string, unknown>;
  total: number;
  taskQueue: string;
  /** Named timeout profile for the item activity (see workflows/profiles.ts). */
  profile: ActivityProfileName;
  heartbeatTimeoutSeconds?: number;
  /** Activities in flight per page (child workflow). */
  concurrency: number;
  /** Items per child workflow (default 1,000) and pages per parent execution before continue-as-new (default 20); */
  pageSize?: number;
  pagesPerRun?: number;
  /** Optional: at most this many pages run at once (default 1, so that `concurrency` bounds the whole stage). */
  pageConcurrency?: number;
  /** Item i runs on task queue `${taskQueue}${i}` instead of `taskQueue` (e.g. one queue per shard group). */
  queuePerItem?: boolean;
}

/** What item activities return: small numeric counters (e.g. documents, bytes, skipped_<reason>), summed up the tree. */
export type Counters = Record<string, number>;

export interface PagedProgress {
  /** Items finished: in the parent, those of finished pages; in a page, its own finished items. */
  itemsDone: number;
  /** Items in all: the whole stage's in the parent, the page's in a page. */
  total: number;
  counters: Counters;
  /** Parent only: the pages whose child workflows are running now (their ids: `pageWorkflowId(parentId, page)`). */
  runningPages?: number[];
}

export const pagedProgressQuery = defineQuery<PagedProgress>('pagedProgress');

export const DEFAULT_PAGE_SIZE = 1000;
export const DEFAULT_PAGES_PER_RUN = 20;
export const DEFAULT_PAGE_CONCURRENCY = 1;
/** Counters are a small fixed set of names; more than this is a bug in the item activity, not data. */
export const MAX_COUNTERS = 64;

/** The id of a paged stage started by a parent workflow: `<parent id>/<stage>`. */
export function pagedStageId(parentWorkflowId: string, stage: string): string {
  return `${parentWorkflowId}/${stage}`;
}

/** The id of one page's child workflow: `<paged workflow id>/page-00007`, the same in every run of the parent. */
export function pageWorkflowId(pagedWorkflowId: string, page: number): string {
  return `${pagedWorkflowId}/page-${String(page).padStart(5, '0')}`;
}

/** Adds `more` into `into` (and returns it). */
export function addCounters(into: Counters, more: Counters | undefined | null): Counters {
  for (const [name, value] of Object.entries(more ?? {})) {
    if (typeof value !== 'number' || !Number.isFinite(value)) {
      throw ApplicationFailure.nonRetryable(
        `counter ${name} is not a finite number: ${String(value)}`,
        'InvalidCounters',
      );
    }
    into[name] = (into[name] ?? 0) + value;
  }
  if (Object.keys(into).length > MAX_COUNTERS) {
    throw ApplicationFailure.nonRetryable(
      `more than ${MAX_COUNTERS} counters: item activities must return a small fixed set of counters`,
      'InvalidCounters',
    );
  }
  return into;
}

type Settled = PagedWorkInput & Required<Pick<PagedWorkInput, 'pageSize' | 'pagesPerRun' | 'pageConcurrency'>>;

/** Defaults filled in once, by the first run, so that continued runs and pages use the same numbers. */
function settle(input: PagedWorkInput): Settled {
  const settled = {
    ...input,
    pageSize: input.pageSize ?? DEFAULT_PAGE_SIZE,
    pagesPerRun: input.pagesPerRun ?? DEFAULT_PAGES_PER_RUN,
    pageConcurrency: input.pageConcurrency ?? DEFAULT_PAGE_CONCURRENCY,
  };
  for (const field of ['total', 'concurrency', 'pageSize', 'pagesPerRun', 'pageConcurrency'] as const) {
    const value = settled[field];
    if (!Number.isInteger(value) || value < (field === 'total' ? 0 : 1)) {
      throw ApplicationFailure.nonRetryable(
        `paged work: ${field} must be a positive integer, not ${value}`,
        'InvalidInput',
      );
    }
  }
  return settled;
}

/**
 * The parent: runs pages [startPage, startPage + pagesPerRun) as child workflows, then continues as new with the
 * counters summed so far, until every page is done; returns the counters summed over all items.
 */
export async function pagedWorkWorkflow(
  input: PagedWorkInput & { startPage?: number; carried?: Counters },
): Promise<Counters> {
  const { startPage = 0, carried = {}, ...rest } = input;
  const work = settle(rest);
  const pages = Math.ceil(work.total / work.pageSize);
  const stop = Math.min(pages, startPage + work.pagesPerRun);
  const itemsOf = (page: number) => Math.min(work.total, (page + 1) * work.pageSize) - page * work.pageSize;

  const counters: Counters = { ...carried };
  let itemsDone = Math.min(work.total, startPage * work.pageSize);
  const running = new Set<number>();
  setHandler(pagedProgressQuery, () => ({ itemsDone, total: work.total, counters, runningPages: [...running] }));

  const self = workflowInfo().workflowId;
  let next = startPage;
  const lane = async () => {
    // The server may suggest an early continue-as-new (history size): pages already started finish first.
    while (next < stop && !workflowInfo().continueAsNewSuggested) {
      const page = next++;
      running.add(page);
      const result = await executeChild(pageWorkflow, {
        workflowId: pageWorkflowId(self, page),
        args: [{ ...work, page }],
      });
      running.delete(page);
      addCounters(counters, result);
      itemsDone += itemsOf(page);
    }
  };
  await Promise.all(Array.from({ length: Math.min(work.pageConcurrency, stop - startPage) }, lane));
  if (next < pages) return continueAsNew<typeof pagedWorkWorkflow>({ ...work, startPage: next, carried: counters });
  return counters;
}

/** A child: the items of one page, `concurrency` activities in flight; returns their summed counters. */
export async function pageWorkflow(input: PagedWorkInput & { page: number }): Promise<Counters> {
  const work = settle(input);
  const first = input.page * work.pageSize;
  const end = Math.min(work.total, first + work.pageSize);
  if (!Number.isInteger(input.page) || input.page < 0 || first >= end) {
    throw ApplicationFailure.nonRetryable(`page ${input.page} is outside the ${work.total} items`, 'InvalidInput');
  }
  type Activities = Record<string, (arg: Record<string, unknown>) => Promise<Counters | undefined>>;
  const on = (taskQueue: string) =>
    proxyActivities<Activities>(activityOptions(work.profile, taskQueue, work.heartbeatTimeoutSeconds))[work.activity]!;
  const shared = on(work.taskQueue);
  const item = (index: number) => (work.queuePerItem === true ? on(`${work.taskQueue}${index}`) : shared);

  const counters: Counters = {};
  let itemsDone = 0;
  setHandler(pagedProgressQuery, () => ({ itemsDone, total: end - first, counters }));
  let next = first;
  const lane = async () => {
    while (next < end) {
      const index = next++;
      addCounters(counters, await item(index)({ ...work.args, index }));
      itemsDone += 1;
    }
  };
  await Promise.all(Array.from({ length: Math.min(work.concurrency, end - first) }, lane));
  return counters;
}
