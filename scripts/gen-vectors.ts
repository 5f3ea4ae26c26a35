/**
 * Rewrite test/vectors/knock-v1.json from the code (harness/vectors.ts builds it):
 *
 *     node --import tsx scripts/gen-vectors.ts
 * @module
 */
import { VECTORS_PATH, writeVectors } from '../harness/vectors.js';

const n = writeVectors();
process.stdout.write(`wrote ${VECTORS_PATH} (${n} cases)\n`);
