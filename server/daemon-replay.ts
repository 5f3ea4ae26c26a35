/**
 * The daemon's replay record: the replay guard (shared/replay.ts) loaded from the replay file (server/replay-file.ts)
 * at start and appending each accepted packet to it, and the file's compaction once it holds more than
 * REPLAY_COMPACT_FACTOR times the live records (plus REPLAY_COMPACT_SLACK), checked after an accepted knock's firewall
 * change, never before it. Without a replay file (unit tests) the guard is in memory only. Kept out of
 * server/daemon.ts.
 * @module
 */
import { REPLAY_COMPACT_FACTOR, REPLAY_COMPACT_SLACK } from '../shared/constants.js';
import { ReplayGuard } from '../shared/replay.js';
import type { Config } from './config.js';
import type { Logger } from './log.js';
import type { ReplayFile } from './replay-file.js';

/** The replay guard of a config at `now`, with the records of `rf` still in the window (and its floor). */
export function replayGuardOf(c: Config, rf: ReplayFile | undefined, now: number): ReplayGuard {
  const windowMs = c.replay.window * 1000;
  return new ReplayGuard({
    windowMs,
    initial: rf ? rf.load(now, windowMs) : [],
    floor: rf?.floor ?? 0,
    ...(rf ? { persist: rf } : {}),
  });
}

/** Compact `rf` to the guard's live records when it has grown enough; a failure is logged, never thrown. */
export function compactIfDue(rf: ReplayFile | undefined, replay: ReplayGuard, now: number, log: Logger): void {
  if (!rf || rf.lines <= REPLAY_COMPACT_FACTOR * replay.size + REPLAY_COMPACT_SLACK) return;
  try {
    rf.compact(replay.state(now));
  } catch (err) {
    // appends go on to the old file; compaction is retried on the next accepted knock
    log.error({ event: 'state-write-error', err }, 'compacting the replay log failed');
  }
}
