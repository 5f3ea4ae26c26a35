/**
 * zod field schemas that more than one part of the config uses (server/config.ts, server/sequence-config.ts).
 * @module
 */
import { z } from 'zod';
import { parseAccess } from '../shared/access.js';

/** `"tcp/22"` → `{ proto: 'tcp', port: 22 }`, or an issue naming the value. */
export const accessSchema = z.string().transform((s, ctx) => {
  const a = parseAccess(s);
  if (!a) {
    ctx.addIssue({ code: 'custom', message: `"${s}" is not an access like "tcp/22" or "udp/53"` });
    return z.NEVER;
  }
  return a;
});
