import { writeFile } from 'node:fs/promises';
import { bundleWorkflowCode } from '@temporalio/worker';
import { WORKFLOW_BUNDLE } from '../workers/worker';

/** Bundles the workflows once at build time so that workers start in a second instead of ~8 s. */
async function main(): Promise<void> {
  const { code } = await bundleWorkflowCode({ workflowsPath: require.resolve('../workflows'), logger: undefined });
  await writeFile(WORKFLOW_BUNDLE, code);
  console.log(`workflow bundle: ${WORKFLOW_BUNDLE} (${(code.length / 1024).toFixed(0)} KiB)`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
