// sleep.js as an ES module.
import http from 'node:http';

if (process.env.PORT) http.createServer((req, res) => res.end('ok')).listen(process.env.PORT);
if (process.send) process.send('ready');
setInterval(() => {}, 1 << 30);
