/** The proof engine: symbolic transition systems, BMC, k-induction and validity queries over Z3. */
export * from './check.ts';
export * from './sorts.ts';
export * from './system.ts';
export * from './z3.ts';
