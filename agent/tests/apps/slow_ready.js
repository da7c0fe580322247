// PM2's wait_ready convention: the app listens at once (with the `{port, host}` form of listen)
// but is only ready after READY_DELAY_MS (default 2000) of warm-up, when it calls
// process.send('ready'). Requests before that get "warming up" with status 503.
'use strict';

const http = require('http');

const delay = Number(process.env.READY_DELAY_MS || 2000);
let ready = false;

const server = http.createServer((req, res) => {
  const body = ready ? `ready ${process.pid}\n` : 'warming up\n';
  res.statusCode = ready ? 200 : 503;
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(body);
});

server.listen({ port: Number(process.env.PORT || 3000), host: '127.0.0.1' }, () => {
  console.log(`listening, ready in ${delay} ms`);
  setTimeout(() => {
    ready = true;
    console.log('ready');
    process.send('ready');
  }, delay);
});
