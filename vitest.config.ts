import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 300_000,
    hookTimeout: 300_000,
    // Two cores in CI: one fork per core keeps the explorer tests from starving each other.
    pool: 'forks',
    maxWorkers: 2,
    // The bare string 'unwind' is not an error: it is how Emscripten (z3-solver's WASM build) returns a thread
    // to the event loop. proofs/engine/z3-threads.ts absorbs it on the paths where this build lets it escape;
    // should it escape elsewhere, a query it really breaks still fails its test through the watchdog in
    // proofs/engine/z3.ts, so only the string itself is dropped here. A real Error has a name; this has none.
    onUnhandledError(error) {
      const e = error as { message?: unknown; name?: unknown };
      return !(e.message === 'unwind' && e.name === undefined);
    },
  },
});
