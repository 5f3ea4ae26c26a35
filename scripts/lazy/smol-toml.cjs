/**
 * smol-toml, evaluated on first use: what `import { parse } from 'smol-toml'` gets in the knock bundle
 * (scripts/build-client.ts). It is needed only when there is a profile file to read (client/profile.ts), so a
 * knock without one never evaluates it (client cold start).
 */
'use strict';
let real;
exports.parse = (...args) => {
  real ??= require('smol-toml');
  return real.parse(...args);
};
