/**
 * `npm run fuzz -- --cases 10000 [--seed N] [--target config|cli|api] [--case I]`: bad input
 * for the config loader, the CLI and every API endpoint. Each target runs in a worker
 * thread watched from here, so a case that hangs (even in synchronous code) is reported
 * with its number instead of hanging the run. Exits 1 on any failure, 2 on bad options.
 */
import { join } from 'node:path';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { describeFailures, describeFindings, type FuzzSummary, type FuzzTarget } from './fuzz/common';
import { freshSeed } from './prng';

interface WorkerJob {
  target: FuzzTarget;
  seed: number;
  cases: number;
  first: number;
  binaryCases: number;
}

type WorkerMessage = { progress: number } | { summary: FuzzSummary } | { error: string };

/** How the total splits between targets: configs and API requests are cheap, CLI runs less so. */
const SHARES: Record<FuzzTarget, number> = { config: 0.4, cli: 0.2, api: 0.4 };
/** Cases through the real binary (one process each), out of the CLI's share. */
const BINARY_SHARE = 0.02;
const STALL_MS = 60_000;

async function runJob(job: WorkerJob): Promise<FuzzSummary> {
  const send = (message: WorkerMessage) => parentPort!.postMessage(message);
  const progress = (index: number) => send({ progress: index });
  const options = { seed: job.seed, cases: job.cases, first: job.first, progress };
  if (job.target === 'config') return await (await import('./fuzz/config-fuzz')).fuzzConfig(options);
  if (job.target === 'api') return await (await import('./fuzz/api-fuzz')).fuzzApi(options);
  const cliPath = join(__dirname, '..', '..', 'src', 'main.js');
  return await (await import('./fuzz/cli-fuzz')).fuzzCli({ ...options, binaryCases: job.binaryCases, cliPath });
}

function inWorker(job: WorkerJob): Promise<FuzzSummary> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(__filename, { workerData: job });
    let last = job.first - 1;
    let lastAt = Date.now();
    const watchdog = setInterval(() => {
      if (Date.now() - lastAt < STALL_MS) return;
      clearInterval(watchdog);
      void worker.terminate();
      resolve({
        target: job.target,
        seed: job.seed,
        cases: last - job.first + 2,
        accepted: 0,
        rejected: 0,
        failures: [{ target: job.target, seed: job.seed, index: last + 1, input: '(see replay)', problem: `no progress for ${STALL_MS / 1000} s: the case hangs` }],
        findings: [],
        notes: [],
        ms: 0,
      });
    }, 1000);
    worker.on('message', (message: WorkerMessage) => {
      if ('progress' in message) {
        last = message.progress;
        lastAt = Date.now();
      } else if ('summary' in message) {
        clearInterval(watchdog);
        resolve(message.summary);
        void worker.terminate();
      } else {
        clearInterval(watchdog);
        reject(new Error(`${job.target} fuzzing failed at case ${last + 1}: ${message.error}`));
      }
    });
    worker.on('error', (error) => {
      clearInterval(watchdog);
      reject(new Error(`the ${job.target} worker crashed after case ${last}: ${error.stack ?? error.message}`));
    });
  });
}

function parseArgs(argv: string[]): { seed: number; cases: number; targets: FuzzTarget[]; only: number | null } {
  let seed = freshSeed();
  let cases = 10_000;
  let targets: FuzzTarget[] = ['config', 'cli', 'api'];
  let only: number | null = null;
  for (let i = 0; i < argv.length; i += 1) {
    const flag = argv[i];
    const value = argv[++i];
    const number = Number(value);
    if (flag === '--seed' && Number.isInteger(number) && number >= 0 && number <= 0xffffffff) seed = number;
    else if (flag === '--cases' && Number.isInteger(number) && number >= 1) cases = number;
    else if (flag === '--case' && Number.isInteger(number) && number >= 0) only = number;
    else if (flag === '--target' && (value === 'config' || value === 'cli' || value === 'api')) targets = [value];
    else throw new Error(`bad option ${flag} ${value ?? ''}: use --cases N, --seed N, --target config|cli|api, --case I`);
  }
  return { seed, cases, targets, only };
}

async function main(): Promise<void> {
  let args: ReturnType<typeof parseArgs>;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`fuzz: ${(error as Error).message}\n`);
    process.exit(2);
  }
  const started = Date.now();
  process.stdout.write(`vipd fuzz: seed ${args.seed}${args.only !== null ? `, case ${args.only}` : `, ${args.cases} cases`}, targets ${args.targets.join(', ')}\n`);
  const summaries: FuzzSummary[] = [];
  for (const target of args.targets) {
    const share = args.targets.length === 1 ? 1 : SHARES[target];
    const total = args.only !== null ? 1 : Math.max(1, Math.round(args.cases * share));
    const binaryCases = target === 'cli' && args.only === null ? Math.max(1, Math.round(total * BINARY_SHARE)) : 0;
    const job: WorkerJob = { target, seed: args.seed, cases: total - binaryCases, first: args.only ?? 0, binaryCases };
    let summary: FuzzSummary;
    try {
      summary = await inWorker(job);
    } catch (error) {
      // A target that dies is a failure of that target; the others still run.
      summary = { target, seed: args.seed, cases: 0, accepted: 0, rejected: 0, failures: [{ target, seed: args.seed, index: -1, input: '', problem: (error as Error).message }], findings: [], notes: [], ms: 0 };
    }
    summaries.push(summary);
    process.stdout.write(
      `  ${target.padEnd(6)} ${String(summary.cases).padStart(6)} cases  ${String(summary.accepted).padStart(5)} accepted  ${String(summary.rejected).padStart(6)} rejected  ` +
        `${String(summary.failures.length).padStart(3)} failures  ${String(summary.findings.length).padStart(4)} findings  ${(summary.ms / 1000).toFixed(1)} s\n`,
    );
    if (summary.failures.length > 0) process.stdout.write(`FAILURES (${target}):\n${describeFailures(summary)}\n`);
  }
  const failures = summaries.reduce((sum, summary) => sum + summary.failures.length, 0);
  const total = summaries.reduce((sum, summary) => sum + summary.cases, 0);
  const findings = summaries.flatMap((summary) => summary.findings);
  if (findings.length > 0) process.stdout.write(`\nfindings (not crashes, yet each fails npm test unless pinned; see docs/reliability.md):\n${describeFindings(findings)}\n`);
  const notes = summaries.flatMap((summary) => summary.notes);
  if (notes.length > 0) process.stdout.write(`\nnotes (timings and undeliverable inputs, not findings):\n${describeFindings(notes)}\n`);
  process.stdout.write(`\n${total} cases in ${((Date.now() - started) / 1000).toFixed(1)} s, ${failures} failure(s); seed ${args.seed}\n`);
  if (failures > 0) process.stdout.write(`reproduce: npm run fuzz -- --cases ${args.cases} --seed ${args.seed}\n`);
  process.exitCode = failures > 0 ? 1 : 0;
}

if (isMainThread) {
  main().catch((error: Error) => {
    process.stderr.write(`fuzz: ${error.stack ?? error.message}\n`);
    process.exit(1);
  });
} else {
  runJob(workerData as WorkerJob).then(
    (summary) => parentPort!.postMessage({ summary } satisfies WorkerMessage),
    (error: Error) => parentPort!.postMessage({ error: error.stack ?? error.message } satisfies WorkerMessage),
  );
}
