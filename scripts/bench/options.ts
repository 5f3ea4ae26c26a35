/**
 * The bench's command line (`--quick`, `--json`, `--backend`), its prerequisites, and every size and interval it
 * measures with, in one place.
 * @module
 */
import { parseArgs } from 'node:util';
import { BACKEND_TOOLS, missingPrerequisites } from '../../harness/prerequisites.js';

export type BackendName = 'nftables' | 'iptables';

/** The parts `--only` can name (default: all of them, and every part in bench.ts EXTRA_PARTS). */
export const PARTS = ['verify', 'backends', 'floor', 'cold-start'] as const;

export interface Options {
  readonly quick: boolean;
  readonly json: boolean;
  readonly backends: readonly BackendName[];
  /** Parts to run; undefined: all. */
  readonly only: readonly string[] | undefined;
  /** `--compare PATH`: the server/main.ts of another checkout, as an extra row of the floor part (A/B, interleaved). */
  readonly compare: string | undefined;
  /** `--compare-fast`: that row with the kernel fast path on (an A/B of the default); else `fast_path = false`. */
  readonly compareFast: boolean;
  /** `--flood`: the flood benchmark (scripts/bench/flood.ts) instead of the rest. */
  readonly flood: boolean;
  /** `--trace` (with `--flood`): where the slowest knocks of each flood spent their time (scripts/bench/flood-trace.ts). */
  readonly trace: boolean;
  /** `--runs N` (with `--flood`): every flood row N times, pooled (flood-report.ts); 1 by default. */
  readonly runs: number;
  /** `--servers a,b` (with `--flood`): these rows only; undefined: all of FLOOD_SERVERS. */
  readonly servers: readonly FloodServerName[] | undefined;
}

/** The flood bench's rows (flood.ts): spa-knockd as shipped, the same with the probe RT, without prefilter; fwknopd. */
export const FLOOD_SERVERS = ['nftables', 'rt', 'no-prefilter', 'fwknopd'] as const;
export type FloodServerName = (typeof FLOOD_SERVERS)[number];
const MAX_RUNS = 20;

/** Does this run include `part`? */
export const runs = (o: Options, part: string): boolean => o.only === undefined || o.only.includes(part);

const USAGE =
  'npm run bench [-- --quick] [--json] [--backend nftables|iptables|all] [--only PART,…] [--compare OTHER/server/main.ts [--compare-fast]]\n' +
  '       npm run bench -- --flood [--quick] [--json] [--trace] [--runs N] [--servers nftables,rt,no-prefilter,fwknopd]   the floods of issue 9 alone (docs/flood.md)\n' +
  '       npm run bench -- --scale [--quick] [--json] [--backend …]   10,000 grants alone (docs/scale.md)';

/** ms between any two knocks of the burst, and between packets to the cold verifier. */
export const GAP_MS = 25;
/** The client-side knock-to-connect sample (knocker-child.ts `e2e`). */
export interface E2eParams {
  /** A connect attempt on a fresh socket this often… */
  readonly intervalMs: number;
  /** …each dropped after this long. */
  readonly attemptTimeoutMs: number;
  /** Give up after this long or this many attempts. */
  readonly maxMs: number;
  readonly maxAttempts: number;
  /** Before the knock, a connect attempt this long must time out (the port is closed: its SYN is dropped). */
  readonly closedCheckMs: number;
}
export const E2E: E2eParams = { intervalMs: 1, attemptTimeoutMs: 3, maxMs: 2000, maxAttempts: 3000, closedCheckMs: 60 };

/** How much each part measures: the full run, or `--quick`. */
export function sizes(opts: Options) {
  const q = opts.quick;
  return {
    /** Valid packets per verification round (each round needs fresh ones). */
    valid: q ? 1500 : 5000,
    /** Packets per round for the cases rejected before the replay guard. */
    cheap: q ? 5000 : 20_000,
    rounds: q ? 5 : 9,
    warmup: 2,
    /** Packets to the verifier in a fresh process. */
    cold: q ? 60 : 200,
    /** Open knocks (each closed again) whose daemon-side latency is read from the log. */
    knocks: q ? 30 : 200,
    /** Client-side knock → connect samples. */
    samples: q ? 10 : 50,
    /** grant() calls per series in the backend probe. */
    fwRuns: q ? 15 : 40,
    /** execFile('true') runs. */
    processStarts: 20,
    /** Samples per row of the side-by-side knock-to-open table (floor.ts). */
    floor: q ? 15 : 100,
    /** Runs per row of the client cold start. */
    coldStart: q ? 10 : 30,
  };
}

export function usage(msg: string): never {
  process.stderr.write(`bench: ${msg} (usage: ${USAGE})\n`);
  process.exit(2);
}

export function die(msg: string): never {
  process.stderr.write(`bench: ${msg}\n`);
  process.exit(1);
}

export function parseOptions(argv: readonly string[] = process.argv.slice(2)): Options {
  let values: {
    quick?: boolean;
    json?: boolean;
    backend?: string;
    only?: string;
    compare?: string;
    'compare-fast'?: boolean;
    help?: boolean;
    flood?: boolean;
    trace?: boolean;
    runs?: string;
    servers?: string;
  };
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        quick: { type: 'boolean' },
        json: { type: 'boolean' },
        backend: { type: 'string' },
        only: { type: 'string' },
        compare: { type: 'string' },
        'compare-fast': { type: 'boolean' },
        flood: { type: 'boolean' },
        trace: { type: 'boolean' },
        runs: { type: 'string' },
        servers: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    usage((e as Error).message);
  }
  if (values.help) {
    process.stdout.write(`usage: ${USAGE}\n`);
    process.exit(0);
  }
  const b = values.backend ?? 'all';
  if (b !== 'all' && b !== 'nftables' && b !== 'iptables')
    usage(`--backend must be nftables, iptables or all (got "${b}")`);
  const only = values.only?.split(',').map((x) => x.trim());
  if (only?.some((x) => x === '')) usage('--only needs part names, comma-separated');
  if (values['compare-fast'] && values.compare === undefined) usage('--compare-fast needs --compare');
  if (values.trace && !values.flood) usage('--trace needs --flood');
  for (const k of ['runs', 'servers'] as const)
    if (values[k] !== undefined && !values.flood) usage(`--${k} needs --flood`);
  const runs = values.runs === undefined ? 1 : Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1 || runs > MAX_RUNS)
    usage(`--runs must be a whole number from 1 to ${MAX_RUNS} (got "${values.runs}")`);
  const servers = values.servers?.split(',').map((x) => x.trim());
  const bad = servers?.find((x) => !(FLOOD_SERVERS as readonly string[]).includes(x));
  if (bad !== undefined) usage(`--servers: no row "${bad}" (rows: ${FLOOD_SERVERS.join(', ')})`);
  return {
    quick: values.quick ?? false,
    json: values.json ?? false,
    backends: b === 'all' ? ['nftables', 'iptables'] : [b],
    only,
    compare: values.compare,
    compareFast: values['compare-fast'] ?? false,
    flood: values.flood ?? false,
    trace: values.trace ?? false,
    runs,
    servers: servers as FloodServerName[] | undefined,
  };
}

/** Root, `ip` and the chosen backends' tools, or exit 1 with one line saying what is missing and how to get it. */
export function checkPrerequisites(opts: Options): void {
  const missing = missingPrerequisites(opts.backends.flatMap((b) => BACKEND_TOOLS[b]));
  if (missing)
    die(
      `cannot run (it creates network namespaces and firewall rules inside them): ${missing.what} (fix: ${missing.fix})`,
    );
}

/**
 * `[limit]` for the latency and scale parts: one bench client knocks far faster than a person (40 knocks/s), which the
 * default per-client and per-source limits (docs/config.md `[limit]`) would refuse as `client-rate` / `rate`. These
 * parts measure the path a knock takes, not the limits; the flood part (flood.ts) keeps the defaults.
 */
export const BENCH_LIMITS =
  '[limit]\nsource_rate = 1000000\nsource_burst = 1000000\nclient_rate = 1000000\nclient_burst = 1000000';
