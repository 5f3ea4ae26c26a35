/**
 * Validation of the plan's knock sequences (backend.ts `KnockSequence`): every value that ends up in nft or iptables
 * text passes through here first. The config loader (server/sequence-config.ts) gives the operator the same rules
 * with file and line; this is the backends' own check.
 * @module
 */
import { type Access, sameAccess } from '../../shared/access.js';
import type { KnockSequence } from './backend.js';
import { checkAccess, firewallError } from './validate.js';

/** Sequence names: they become parts of nft chain/set names and xt_recent list names. */
export const SEQUENCE_NAME_RE = /^[a-z][a-z0-9_]{0,23}$/;
/** Most steps in one sequence (each step is one stage set / recent list per family). */
export const MAX_STEPS = 16;
/** Most sequences in one plan. */
export const MAX_SEQUENCES = 32;
/** Longest gap between two steps, seconds. */
export const MAX_GAP_S = 3600;
/** Longest grant of a completed sequence, seconds. */
export const MAX_SEQUENCE_DURATION_S = 65535;

/** Why this step list cannot be a sequence (undefined: it can). Shared with the config loader. */
export function stepsProblem(steps: readonly Access[], ignore: readonly Access[]): string | undefined {
  if (steps.length < 2) return 'needs at least 2 steps (a single port falls to any port sweep)';
  if (steps.length > MAX_STEPS) return `at most ${MAX_STEPS} steps`;
  for (let i = 1; i < steps.length; i++) {
    const a = steps[i - 1] as Access;
    const b = steps[i] as Access;
    if (sameAccess(a, b)) return `step ${i + 1} repeats step ${i} (a repeated step is taken as a duplicate packet)`;
  }
  for (const s of steps) {
    if (ignore.some((x) => sameAccess(x, s))) return `step ${s.proto}/${s.port} is also in ignore`;
  }
  return undefined;
}

function whole(v: unknown, max: number, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max) {
    throw firewallError(`invalid plan: sequence ${what} must be a whole number 1-${max}`);
  }
  return v;
}

function accesses(v: unknown, what: string): Access[] {
  if (!Array.isArray(v)) throw firewallError(`invalid plan: sequence ${what} is not an array`);
  return (v as unknown[]).map(checkAccess);
}

/** Validate the plan's sequences (undefined: none). Clean copies; names unique. */
export function checkSequences(v: unknown): KnockSequence[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw firewallError('invalid plan: sequences is not an array');
  if (v.length > MAX_SEQUENCES) throw firewallError(`invalid plan: at most ${MAX_SEQUENCES} sequences`);
  const names = new Set<string>();
  return (v as unknown[]).map((raw) => {
    if (typeof raw !== 'object' || raw === null) throw firewallError('invalid plan: a sequence is not an object');
    const s = raw as Record<string, unknown>;
    const name = s['name'];
    if (typeof name !== 'string' || !SEQUENCE_NAME_RE.test(name)) {
      throw firewallError(`invalid plan: sequence name ${JSON.stringify(String(name)).slice(0, 40)}`);
    }
    if (names.has(name)) throw firewallError(`invalid plan: two sequences named "${name}"`);
    names.add(name);
    const steps = accesses(s['steps'], 'steps');
    const ignore = accesses(s['ignore'], 'ignore');
    const open = accesses(s['open'], 'open');
    if (open.length === 0) throw firewallError(`invalid plan: sequence "${name}" opens nothing`);
    const problem = stepsProblem(steps, ignore);
    if (problem !== undefined) throw firewallError(`invalid plan: sequence "${name}" ${problem}`);
    return {
      name,
      steps,
      gapS: whole(s['gapS'], MAX_GAP_S, 'gap'),
      open,
      durationS: whole(s['durationS'], MAX_SEQUENCE_DURATION_S, 'duration'),
      ignore,
    };
  });
}
