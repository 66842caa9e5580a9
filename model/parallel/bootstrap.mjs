// A worker thread of a parallel search starts here: it registers tsx (as bin/interleave.mjs does for the
// CLI; loader hooks are per thread) and then runs the TypeScript worker, which loads the model itself.
import { register } from 'tsx/esm/api';

register();
await import('./worker.ts');
