import { DefaultLogger, type WorkflowBundle, bundleWorkflowCode } from '@temporalio/worker';

let bundle: Promise<WorkflowBundle> | undefined;

/**
 * The workflows bundled from source once per test file (bundling takes seconds on 2 cores): pass it to every
 * `Worker.create` as `workflowBundle`, instead of a `workflowsPath` that bundles again for each worker.
 */
export function sourceWorkflowBundle(): Promise<WorkflowBundle> {
  bundle ??= bundleWorkflowCode({
    workflowsPath: require.resolve('../../workflows'),
    logger: new DefaultLogger('WARN'),
  });
  return bundle;
}
