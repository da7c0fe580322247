// A cheap app for the corpus: it stays up doing nothing, listens on PORT when it has one (so
// cluster mode sees it serve), and tells PM2 it is ready when PM2 asks (`wait_ready`).
if (process.env.PORT) {
  require('http').createServer((req, res) => res.end('ok')).listen(process.env.PORT);
}
if (process.send) process.send('ready');
setInterval(() => {}, 1 << 30);
