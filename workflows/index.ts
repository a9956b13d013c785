// Every workflow the workers register; the bundler starts here.
export { evaluateWorkflow } from './evaluate';
export { buildIndexWorkflow } from './index-build';
export { ingestWorkflow } from './ingest';
export { pagedWorkWorkflow, pageWorkflow } from './paged';
export { retrieveWorkflow } from './retrieve';
