// Every workflow the workers register; the bundler starts here.
export { ingestWorkflow } from './ingest';
export { pagedWorkWorkflow, pageWorkflow } from './paged';
