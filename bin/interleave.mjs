#!/usr/bin/env -S node --max-semi-space-size=64
// Entry point: registers tsx so the CLI, the built-in specs and users' own `.ts` model files load without a build step.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../model/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
