/**
 * The built-in protocols, in the order the verdict table prints them. Each is loaded on demand so that one
 * module's failure to load is reported against that protocol alone.
 */
import type { Protocol } from '../model/registry.ts';

export const builtinProtocols: readonly { readonly name: string; readonly load: () => Promise<Protocol> }[] = [
  { name: 'gpu-semantics', load: async () => (await import('./gpu-semantics.ts')).default },
  { name: 'pp-async-p2p', load: async () => (await import('./pp-async-p2p.ts')).default },
  { name: 'eplb-staged-transfer', load: async () => (await import('./eplb-staged-transfer.ts')).default },
  { name: 'overlap-linear', load: async () => (await import('./overlap-linear.ts')).default },
  { name: 'dp-padding', load: async () => (await import('./dp-padding.ts')).default },
  { name: 'eplb-async-rebalance', load: async () => (await import('./eplb-async-rebalance.ts')).default },
  // Each protocol module registers here as it lands.
];
