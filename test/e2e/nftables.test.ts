import { e2eSuite } from './suite.js';

e2eSuite('nftables', 'e2e-nft', 31);
