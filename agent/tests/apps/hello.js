// A plain Node HTTP app written the way apps are written for PM2: it listens on PORT and knows
// nothing about pmfleet.
//
//   GET /               "hello from <pid> instance <NODE_APP_INSTANCE>"
//   GET /slow?ms=N      the same after N milliseconds (requests in flight during a reload)
//   GET /health         "ok"
//
// HELLO_OWN_SIGINT=1 installs the app's own SIGINT handler, which prints "own SIGINT handler",
// closes the server and exits 0 once it is closed.
'use strict';

const http = require('http');

const port = process.env.PORT || 3000;
const instance = process.env.NODE_APP_INSTANCE === undefined ? '-' : process.env.NODE_APP_INSTANCE;

function reply(res, body) {
  res.setHeader('Content-Type', 'text/plain');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(body);
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://app');
  const body = `hello from ${process.pid} instance ${instance}\n`;
  if (url.pathname === '/health') return reply(res, 'ok\n');
  if (url.pathname === '/slow') {
    const ms = Number(url.searchParams.get('ms')) || 100;
    return setTimeout(() => reply(res, body), ms);
  }
  return reply(res, body);
});

server.listen(port, () => {
  console.log(`listening on ${JSON.stringify(server.address())} pid ${process.pid}`);
});

if (process.env.HELLO_OWN_SIGINT === '1') {
  process.on('SIGINT', () => {
    console.log('own SIGINT handler');
    server.close(() => {
      console.log('server closed');
      process.exit(0);
    });
  });
}
