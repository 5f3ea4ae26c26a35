/**
 * The hook for parts of the bench that live in their own module and print their own table: the flood part (helper
 * "flood": scripts/bench/flood.ts, datagrams/s absorbed while a legitimate knock still opens) and the 10,000-grant
 * scale part (helper "sectests": scripts/bench/scale.ts) plug in here. A part returns one section; scripts/bench.ts
 * runs every part listed in its EXTRA_PARTS (when `--only` names it or is absent), report.ts prints the section
 * under its title and puts `json` in the JSON report under `name`.
 * @module
 */
import type { Scope } from './lifecycle.js';
import type { Options } from './options.js';

export interface BenchSection {
  readonly title: string;
  /** Column titles, then one row of cells per line (cells already formatted). */
  readonly header: readonly string[];
  readonly rows: readonly (readonly string[])[];
  /** Lines printed under the table (method, conditions). */
  readonly notes?: readonly string[];
  /** Something that went wrong: printed as a WARNING, and the bench exits 1. */
  readonly failures?: readonly string[];
  readonly json: unknown;
}

export interface BenchPart {
  /** For `--only NAME` and the JSON key. */
  readonly name: string;
  run(opts: Options, scope: Scope): Promise<BenchSection>;
}
