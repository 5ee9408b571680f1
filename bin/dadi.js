#!/usr/bin/env node
// Entry point for the `dadi` command; the build (npm ci runs `prepare`) writes dist/.
import('../dist/cli/main.js').then((m) => m.main(process.argv.slice(2)));
