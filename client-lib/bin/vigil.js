#!/usr/bin/env node
// Installed as `vigil`; the code is built into dist/ by `npm ci` (root prepare script).
import '../dist/src/cli/main.js';
