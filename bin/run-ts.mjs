#!/usr/bin/env -S node --max-semi-space-size=64
// Runs one TypeScript entry file (benchmarks, scripts) through tsx without a build step.
import { register } from 'tsx/esm/api';
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';

register();
const [file, ...rest] = process.argv.slice(2);
process.argv = [process.argv[0], resolve(file), ...rest];
await import(pathToFileURL(resolve(file)).href);
