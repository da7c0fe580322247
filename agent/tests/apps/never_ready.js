// An app that starts and stays up but never becomes ready: it never listens and never calls
// process.send('ready'), so neither a readiness notification nor a health probe ever succeeds.
// A reload to it must keep the old instances.
'use strict';

console.log(`never_ready started, pid ${process.pid}`);
setInterval(() => console.log('still starting...'), 1000);
