/**
 * Classic knock steps as knockd writes them: `"8881"` (a TCP SYN), `"9991:udp"` (a UDP datagram), `"7777:tcp"`.
 * Shared by the daemon's `[[sequence]]` config and the client's `--sequence`.
 * @module
 */
import { type Access, isPort } from './access.js';

/** One step, or undefined when the text is not one. */
export function parseStep(text: string): Access | undefined {
  const m = /^(\d{1,5})(?::(tcp|udp))?$/.exec(text);
  if (!m) return undefined;
  const port = Number(m[1]);
  if (!isPort(port)) return undefined;
  return { proto: m[2] === 'udp' ? 'udp' : 'tcp', port };
}

/** A step as knockd writes it: tcp steps bare, udp steps with `:udp`. */
export function formatStep(a: Access): string {
  return a.proto === 'udp' ? `${a.port}:udp` : String(a.port);
}
