#!/usr/bin/env node
// Installed as `vigil-witness`; the code is built into dist/ by `npm ci` (root prepare script).
import '../dist/src/main.js';
