/**
 * ipaddr.js, evaluated on first use: what `import ipaddr from 'ipaddr.js'` gets in the knock bundle
 * (scripts/build-client.ts). A plain knock to an IPv4 literal never touches it (shared/address.ts ipFamilyOf), so
 * it never evaluates it (client cold start). Every property read goes to the real module.
 */
'use strict';
let real;
const load = () => {
  real ??= require('ipaddr.js');
  return real;
};
module.exports = new Proxy(
  {},
  {
    get: (_, key) => load()[key],
    has: (_, key) => key in load(),
  },
);
