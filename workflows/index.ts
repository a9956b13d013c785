// Every workflow the workers register; the bundler starts here.
export { ingestWorkflow } from './ingest';
