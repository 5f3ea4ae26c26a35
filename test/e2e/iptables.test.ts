import { e2eSuite } from './suite.js';

e2eSuite('iptables', 'e2e-ipt', 32);
