#!/usr/bin/env node
// The `berth` command: runs the compiled CLI (build it first with `npm run build`).
import '../dist/src/cli/main.js';
