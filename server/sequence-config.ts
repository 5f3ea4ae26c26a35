/**
 * The `[[sequence]]` entries of the daemon's config (classic knock sequences, docs/classic.md): the zod schema that
 * server/config.ts embeds, and the cross-checks that need the rest of the config (open ⊆ firewall.protect, duration ≤
 * grant.max_duration, the backend). Errors go through the config loader's `fail`, so they name file, line and key.
 * @module
 */
import { z } from 'zod';
import { type Access, formatAccess, sameAccess } from '../shared/access.js';
import { parseStep } from '../shared/knock-steps.js';
import { ROTATING_HIGH, ROTATING_LOW, rotatingCounter, rotatingSteps } from '../shared/rotating.js';
import { accessSchema } from './config-fields.js';
import type { KnockSequence } from './firewall/backend.js';
import { MAX_GAP_S, MAX_SEQUENCES, SEQUENCE_NAME_RE, stepsProblem } from './firewall/sequence-check.js';

/** Default `gap`: most seconds between two steps. */
export const DEFAULT_SEQUENCE_GAP_S = 5;

const stepSchema = z.string().transform((s, ctx) => {
  const a = parseStep(s);
  if (!a) {
    ctx.addIssue({ code: 'custom', message: `"${s}" is not a step like "8881" (tcp) or "9991:udp"` });
    return z.NEVER;
  }
  return a;
});

export const sequenceSchema = z.strictObject({
  name: z.string().regex(SEQUENCE_NAME_RE, 'must be a lower-case letter, then up to 23 of a-z 0-9 _'),
  steps: z.array(stepSchema).optional(),
  rotating: z.boolean().default(false),
  key_file: z.string().min(1).optional(),
  gap: z.number().int('must be a whole number of seconds').min(1).max(MAX_GAP_S).default(DEFAULT_SEQUENCE_GAP_S),
  open: z.array(accessSchema).min(1, 'must list at least one access, e.g. ["tcp/22"]'),
  duration: z.number().int('must be a whole number of seconds').min(1).max(65535).optional(),
  ignore: z.array(accessSchema).default([]),
});

export const sequencesSchema = z.array(sequenceSchema).max(MAX_SEQUENCES).default([]);

type RawSequence = z.output<typeof sequenceSchema>;

/** A `rotating = true` sequence: its steps change every time step (shared/rotating.ts). */
export interface RotatingSequence extends Omit<KnockSequence, 'steps'> {
  readonly key: Uint8Array;
}

/** Rotating sequence names get `_0` / `_1` (time step parity) in the plan: two characters fewer. */
const ROTATING_NAME_MAX = 22;

/** The plan's sequences at `nowMs`: the fixed ones, then per rotating one the current step's and the previous one. */
export function sequencesAt(
  fixed: readonly KnockSequence[],
  rotating: readonly RotatingSequence[],
  nowMs: number,
): KnockSequence[] {
  const c = rotatingCounter(nowMs);
  const out = [...fixed];
  for (const r of rotating) {
    const { key, ...rest } = r;
    for (const k of [c, c - 1]) out.push({ ...rest, name: `${r.name}_${k % 2}`, steps: rotatingSteps(key, k) });
  }
  return out;
}

/** Resolve the entries against the rest of the config; `fail` throws the loader's one-line error. */
export function resolveSequences(
  raw: readonly RawSequence[],
  ctx: {
    readonly protect: readonly Access[];
    readonly duration: number;
    readonly maxDuration: number;
    /** Read a key file (relative to the config), throwing the loader's error for `segs`. */
    readonly readKey: (file: string, segs: readonly (string | number)[]) => Uint8Array;
  },
  fail: (segs: readonly (string | number)[], msg: string) => never,
): { fixed: KnockSequence[]; rotating: RotatingSequence[] } {
  const names = new Set<string>();
  const fixed: KnockSequence[] = [];
  const rotating: RotatingSequence[] = [];
  raw.forEach((s, i) => {
    if (names.has(s.name)) fail(['sequence', i, 'name'], `duplicate sequence name "${s.name}"`);
    names.add(s.name);
    if (s.rotating) {
      if (s.steps !== undefined) fail(['sequence', i, 'steps'], 'a rotating sequence takes its steps from key_file');
      if (s.key_file === undefined) fail(['sequence', i], 'rotating = true needs key_file');
      if (s.name.length > ROTATING_NAME_MAX)
        fail(['sequence', i, 'name'], `at most ${ROTATING_NAME_MAX} characters for a rotating sequence`);
      s.ignore.forEach((a, j) => {
        if (a.proto === 'tcp' && a.port >= ROTATING_LOW && a.port <= ROTATING_HIGH)
          fail(
            ['sequence', i, 'ignore', j],
            `tcp/${a.port} is in the rotating port range ${ROTATING_LOW}-${ROTATING_HIGH}`,
          );
      });
    } else {
      if (s.key_file !== undefined) fail(['sequence', i, 'key_file'], 'only a rotating sequence has a key_file');
      if (s.steps === undefined) fail(['sequence', i, 'steps'], 'is required (or rotating = true with key_file)');
      const problem = stepsProblem(s.steps ?? [], s.ignore);
      if (problem !== undefined) fail(['sequence', i, 'steps'], problem);
    }
    s.open.forEach((a, j) => {
      if (!ctx.protect.some((p) => sameAccess(p, a)))
        fail(['sequence', i, 'open', j], `${formatAccess(a)} is not in firewall.protect (it would already be open)`);
    });
    const durationS = s.duration ?? ctx.duration;
    if (durationS > ctx.maxDuration)
      fail(['sequence', i, 'duration'], `must not exceed grant.max_duration (${ctx.maxDuration})`);
    const common = { name: s.name, gapS: s.gap, open: s.open, durationS, ignore: s.ignore };
    if (s.rotating) rotating.push({ ...common, key: ctx.readKey(s.key_file as string, ['sequence', i, 'key_file']) });
    else fixed.push({ ...common, steps: s.steps ?? [] });
  });
  if (fixed.length + 2 * rotating.length > MAX_SEQUENCES) {
    fail(
      ['sequence'],
      `at most ${MAX_SEQUENCES} sequences, a rotating one counting twice (the current and the previous step)`,
    );
  }
  for (const r of rotating) {
    for (const p of [0, 1]) {
      const i = raw.findIndex((x) => x.name === `${r.name}_${p}`);
      if (i >= 0) fail(['sequence', i, 'name'], `"${r.name}_${p}" is taken by the rotating sequence "${r.name}"`);
    }
  }
  return { fixed, rotating };
}
