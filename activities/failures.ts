import { ApplicationFailure } from '@temporalio/activity';
import { StoreError } from '../core/store/artifact-store';

/**
 * Retrying cannot fix wrong credentials, a missing bucket or a corrupt object: such errors fail the activity
 * at once (non-retryable, with the store's one-line message) instead of being retried for an hour.
 */
export function failFastOnPermanentErrors<T extends Record<string, (...args: never[]) => Promise<unknown>>>(
  activities: T,
): T {
  const wrapped: Record<string, unknown> = {};
  for (const [name, activity] of Object.entries(activities)) {
    wrapped[name] = async (...args: never[]) => {
      try {
        return await activity(...args);
      } catch (err) {
        if (err instanceof StoreError && !err.transient)
          throw ApplicationFailure.nonRetryable(err.message, 'StoreError');
        throw err;
      }
    };
  }
  return wrapped as T;
}
