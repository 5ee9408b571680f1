#!/usr/bin/env node
// Entry point for the `dadi` command; the build (npm ci runs `prepare`) writes dist/.
await import('../dist/cli/entry.js');
