/**
 * The `[[sequence]]` entries of the daemon's config (classic knock sequences, docs/classic.md): the zod schema that
 * server/config.ts embeds, and the cross-checks that need the rest of the config (open ⊆ firewall.protect, duration ≤
 * grant.max_duration, the backend). Errors go through the config loader's `fail`, so they name file, line and key.
 * @module
 */
import { z } from 'zod';
import { type Access, formatAccess, parseAccess, sameAccess } from '../shared/access.js';
import { parseStep } from '../shared/knock-steps.js';
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

const accessSchema = z.string().transform((s, ctx) => {
  const a = parseAccess(s);
  if (!a) {
    ctx.addIssue({ code: 'custom', message: `"${s}" is not an access like "tcp/22" or "udp/53"` });
    return z.NEVER;
  }
  return a;
});

export const sequenceSchema = z.strictObject({
  name: z.string().regex(SEQUENCE_NAME_RE, 'must be a lower-case letter, then up to 23 of a-z 0-9 _'),
  steps: z.array(stepSchema),
  gap: z.number().int('must be a whole number of seconds').min(1).max(MAX_GAP_S).default(DEFAULT_SEQUENCE_GAP_S),
  open: z.array(accessSchema).min(1, 'must list at least one access, e.g. ["tcp/22"]'),
  duration: z.number().int('must be a whole number of seconds').min(1).max(65535).optional(),
  ignore: z.array(accessSchema).default([]),
});

export const sequencesSchema = z.array(sequenceSchema).max(MAX_SEQUENCES).default([]);

type RawSequence = z.output<typeof sequenceSchema>;

/** Resolve the entries against the rest of the config; `fail` throws the loader's one-line error. */
export function resolveSequences(
  raw: readonly RawSequence[],
  ctx: {
    readonly protect: readonly Access[];
    readonly duration: number;
    readonly maxDuration: number;
  },
  fail: (segs: readonly (string | number)[], msg: string) => never,
): KnockSequence[] {
  const names = new Set<string>();
  return raw.map((s, i) => {
    if (names.has(s.name)) fail(['sequence', i, 'name'], `duplicate sequence name "${s.name}"`);
    names.add(s.name);
    const problem = stepsProblem(s.steps, s.ignore);
    if (problem !== undefined) fail(['sequence', i, 'steps'], problem);
    s.open.forEach((a, j) => {
      if (!ctx.protect.some((p) => sameAccess(p, a)))
        fail(['sequence', i, 'open', j], `${formatAccess(a)} is not in firewall.protect (it would already be open)`);
    });
    const durationS = s.duration ?? ctx.duration;
    if (durationS > ctx.maxDuration)
      fail(['sequence', i, 'duration'], `must not exceed grant.max_duration (${ctx.maxDuration})`);
    return { name: s.name, steps: s.steps, gapS: s.gap, open: s.open, durationS, ignore: s.ignore };
  });
}
