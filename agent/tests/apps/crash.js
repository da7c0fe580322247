// An app that crashes: it prints one line to stdout and one to stderr, then exits with
// CRASH_CODE (default 1) after CRASH_AFTER_MS (default 100). For restart policies
// (min_uptime, max_restarts, backoff, stop_exit_codes) and log tests.
'use strict';

const code = Number(process.env.CRASH_CODE || 1);
const after = Number(process.env.CRASH_AFTER_MS || 100);
console.log(`crash.js pid ${process.pid} starting, exiting with ${code} in ${after} ms`);
console.error(`crash.js pid ${process.pid} about to fail`);
setTimeout(() => process.exit(code), after);
