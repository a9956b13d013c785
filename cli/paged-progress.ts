import type { WorkflowClient } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { type Counters, type PagedProgress, pageWorkflowId, pagedProgressQuery } from '../workflows/paged';

export interface PagedWorkStatus extends PagedProgress {
  /** The decoded first heartbeat detail of each activity in flight on the running pages (when asked for). */
  heartbeats: unknown[];
}

/**
 * Live progress of a paged stage (workflows/paged.ts) by its workflow id: the finished pages' sum from the parent,
 * plus each running page's own items and counters, and optionally the heartbeats of its activities in flight.
 * Costs one query to the parent and one query (and one describe) per running page, whatever the item count.
 * Rejects while the stage has not started.
 */
export async function pagedWorkStatus(
  client: WorkflowClient,
  workflowId: string,
  withHeartbeats = false,
): Promise<PagedWorkStatus> {
  const parent = await client.getHandle(workflowId).query(pagedProgressQuery);
  const counters: Counters = { ...parent.counters };
  const status: PagedWorkStatus = { ...parent, counters, heartbeats: [] };
  await Promise.all(
    (parent.runningPages ?? []).map(async (page) => {
      const handle = client.getHandle(pageWorkflowId(workflowId, page));
      try {
        // A page that finished after the parent answered is still counted once: the parent had not added it yet.
        const own = await handle.query(pagedProgressQuery);
        status.itemsDone += own.itemsDone;
        for (const [name, n] of Object.entries(own.counters)) counters[name] = (counters[name] ?? 0) + n;
      } catch {
        return; // not started yet: nothing done in it
      }
      if (!withHeartbeats) return;
      const described = await handle.describe().catch(() => undefined);
      for (const activity of described?.raw.pendingActivities ?? []) {
        const payload = activity.heartbeatDetails?.payloads?.[0];
        if (payload) status.heartbeats.push(defaultPayloadConverter.fromPayload(payload));
      }
    }),
  );
  return status;
}
