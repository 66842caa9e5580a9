// docs/examples/vitest.config.ts: runs the guide's example tests on their own (the project's suite runs test/).
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));

export default defineConfig({
  // Vite's cache stays in the project's node_modules, not in a new docs/examples/node_modules.
  cacheDir: here('../../node_modules/.vite-docs-examples'),
  test: {
    root: here('.'),
    include: ['*.test.ts'],
  },
});
