import type { ActivityOptions } from '@temporalio/workflow';

/**
 * Named timeout profiles, named for what they guard:
 * - `control`: planning and manifest steps (list, fingerprint, read records, write one object). Bounded work
 *   that may still read many small objects, so it gets 30 minutes and heartbeats when a timeout is given.
 * - `item`: one long per-item activity (a file, a shard) that heartbeats its progress. A killed worker stops
 *   heartbeating: after `heartbeatTimeoutSeconds` the item is retried elsewhere from its last checkpoint.
 */
export const ACTIVITY_PROFILES = ['control', 'item'] as const;
export type ActivityProfileName = (typeof ACTIVITY_PROFILES)[number];

/** The heartbeat timeout of `item` activities when the caller gives none. */
export const DEFAULT_ITEM_HEARTBEAT_SECONDS = 60;

const BACKOFF = { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '1 minute' } as const;

export function activityOptions(
  profile: ActivityProfileName,
  taskQueue: string,
  heartbeatTimeoutSeconds?: number,
): ActivityOptions {
  switch (profile) {
    case 'control':
      return {
        taskQueue,
        startToCloseTimeout: '30 minutes',
        ...(heartbeatTimeoutSeconds ? { heartbeatTimeout: `${heartbeatTimeoutSeconds} seconds` } : {}),
        retry: { ...BACKOFF, maximumAttempts: 10 },
      };
    case 'item':
      return {
        taskQueue,
        startToCloseTimeout: '24 hours',
        heartbeatTimeout: `${heartbeatTimeoutSeconds ?? DEFAULT_ITEM_HEARTBEAT_SECONDS} seconds`,
        retry: { ...BACKOFF, maximumAttempts: 20 },
      };
  }
}
