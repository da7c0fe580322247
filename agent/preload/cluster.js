// pmfleet cluster preload for Node.js (plain CommonJS, no dependencies, Node >= 18).
//
// The agent starts Node apps with NODE_OPTIONS="--require <this file>". It makes an unmodified
// app that calls `server.listen(PORT)` work in pmfleet's cluster mode, drains keep-alive
// connections on stop so a rolling reload fails no request, and reports readiness.
//
// 1. Shared listening socket (systemd socket-activation protocol)
//    When LISTEN_FDS is "1" and LISTEN_PID is this process's pid or unset, the first server
//    that listens on a TCP port (a number, a numeric string, `{port}`, or no port at all) listens
//    on the inherited fd 3 instead; the port itself is ignored, the agent chose it when it bound
//    the socket. Callbacks and the 'listening' event work as usual. Listens on a path, an fd or
//    a handle, and every later server, are left alone. When LISTEN_PID was unset, it is set to
//    this pid once fd 3 is taken, so Node processes this one starts (which inherit NODE_OPTIONS
//    and the environment) do not claim the socket too. Leaving LISTEN_PID unset lets the agent
//    start apps through wrappers (`npm start`, a shell script): the first Node process in the
//    tree that listens takes the socket.
//
//    When PMFLEET_PROBE_PORT is set, the server that takes the inherited socket also gets the
//    connections made to 127.0.0.1:PMFLEET_PROBE_PORT, a port of this process alone: the agent
//    probes the instance's health there (the shared socket is answered by whichever instance
//    accepts first, the old ones included). The extra listener is closed when draining starts,
//    and never keeps the process alive.
//
// 2. Graceful drain on SIGINT and SIGTERM
//    Once a server is listening, the first SIGINT or SIGTERM
//    - stops accepting: the listening handle is closed, which only closes this process's copy
//      of the shared socket, so connections keep queueing for the other instances;
//    - answers every request that arrives from then on — and every response not yet started —
//      with `Connection: close`, after which Node closes the connection itself. The client
//      learns that the connection is finished from a complete response and reconnects, landing
//      on another instance. This is what makes the drain race-free: the server never closes a
//      connection a client may be sending a request on at that very moment, which is how
//      PM2's reload (and Node's own `server.close()`, which closes idle keep-alive
//      connections at once) loses requests;
//    - closes a connection only after it stayed idle (no request in flight) for
//      PMFLEET_DRAIN_IDLE_MS (default 1000 ms) after draining started or after its last
//      response: a client that is sending requests sends its next one well within that time;
//    - while draining, `server.closeIdleConnections()` (called by `server.close()` in Node
//      >= 19) leaves connections to the steps above;
//    - when every connection of every server is gone, the process ends the way the signal would
//      have ended it without this file (the default action of the signal), unless the app has
//      its own listener for that signal: then only the drain happens and the app's handler
//      decides when to exit (its `server.close(cb)` calls back once the drain is complete).
//    After PMFLEET_DRAIN_TIMEOUT_MS (default 10000 ms) remaining connections are destroyed;
//    the agent's kill_timeout (SIGKILL) is normally shorter anyway. A second signal while
//    draining ends the process at once (unless the app handles the signal).
//    Before any server listens, no signal listener is installed, so scripts and wrapper
//    processes that load this file keep Node's default signal behaviour.
//
// 3. Readiness
//    Node has no Unix datagram sockets, so it cannot use sd_notify's NOTIFY_SOCKET. The agent
//    gives the instance one (or both) of two stream channels instead, and this file writes
//    sd_notify-style lines to them:
//    - PMFLEET_READY_SOCKET: the path of a Unix *stream* socket the agent listens on. One
//      connection is made at the first message and kept for later ones.
//    - PMFLEET_READY_FD: an inherited descriptor (the write end of a pipe); written
//      synchronously.
//    "READY=1\n" is written once:
//    - when PMFLEET_NOTIFY_ON_LISTEN is "1", as soon as the first server is listening;
//    - when the app calls `process.send('ready')` (PM2's `wait_ready` convention). Apps started
//      by the agent have no IPC channel, so `process.send` is defined here when it is missing
//      (it accepts any message, reports 'ready' and otherwise does nothing); an existing
//      `process.send` is wrapped.
//    "STOPPING=1\n" is written when draining starts. Failures to write are ignored (the agent
//    may have closed its end), and the socket never keeps the process alive.

'use strict';

const net = require('net');
const http = require('http');
const https = require('https');

const env = process.env;
const IDLE_MS = positiveInt(env.PMFLEET_DRAIN_IDLE_MS, 1000);
const DRAIN_TIMEOUT_MS = positiveInt(env.PMFLEET_DRAIN_TIMEOUT_MS, 10000);
const SIGNALS = ['SIGINT', 'SIGTERM'];

function positiveInt(value, fallback) {
  const n = Number.parseInt(value, 10);
  return Number.isFinite(n) && n >= 0 ? n : fallback;
}

// ---------------------------------------------------------------------------------------------
// Readiness

let readySent = false;

let readySocket = null;

function notify(line) {
  const fd = Number.parseInt(env.PMFLEET_READY_FD, 10);
  if (Number.isInteger(fd) && fd >= 0) {
    try {
      require('fs').writeSync(fd, line + '\n');
    } catch (_) {
      // The agent went away or closed its end: nothing to tell.
    }
  }
  const path = env.PMFLEET_READY_SOCKET;
  if (path) {
    try {
      if (!readySocket) {
        readySocket = net.createConnection({ path });
        readySocket.on('error', () => {});
        readySocket.unref();
      }
      readySocket.write(line + '\n');
    } catch (_) {
      // As above.
    }
  }
}

function notifyReady() {
  if (readySent) return;
  readySent = true;
  notify('READY=1');
}

const originalSend = typeof process.send === 'function' ? process.send : null;
process.send = function send(message, ...rest) {
  if (message === 'ready' || (message && message.type === 'process:msg' && message.data === 'ready')) {
    notifyReady();
  }
  if (originalSend) return originalSend.call(process, message, ...rest);
  const callback = rest.find((a) => typeof a === 'function');
  if (callback) process.nextTick(callback, null);
  return true;
};

// ---------------------------------------------------------------------------------------------
// Listening on the inherited socket

let inheritedTaken = false;

function canTakeInherited() {
  if (inheritedTaken || env.LISTEN_FDS !== '1') return false;
  return !env.LISTEN_PID || env.LISTEN_PID === String(process.pid);
}

// Does this `listen(...)` call ask for a TCP port (as opposed to a path, fd or handle)?
function isPortListen(args) {
  const first = args[0];
  if (first === undefined || first === null || typeof first === 'function') return true;
  if (typeof first === 'number') return true;
  if (typeof first === 'string') return /^\s*\d+\s*$/.test(first);
  if (typeof first === 'object') {
    if (first._handle || first.handle || first instanceof net.Server) return false;
    if (first.fd !== undefined && first.fd !== null) return false;
    if (first.path !== undefined && first.path !== null) return false;
    return true;
  }
  return false;
}

// The backlog and callback of a port listen, wherever the caller put them.
function fdListenArgs(args) {
  const callback = typeof args[args.length - 1] === 'function' ? args[args.length - 1] : undefined;
  const options = { fd: 3 };
  const first = args[0];
  if (first && typeof first === 'object') {
    if (first.backlog !== undefined) options.backlog = first.backlog;
    if (first.signal !== undefined) options.signal = first.signal;
  } else {
    // listen(port, [host], [backlog], [cb]): the backlog is the first number after the port.
    const backlog = args.slice(1).find((a) => typeof a === 'number');
    if (backlog !== undefined) options.backlog = backlog;
  }
  return callback ? [options, callback] : [options];
}

const originalListen = net.Server.prototype.listen;
net.Server.prototype.listen = function listen(...args) {
  let callArgs = args;
  if (canTakeInherited() && isPortListen(args)) {
    inheritedTaken = true;
    if (!env.LISTEN_PID) env.LISTEN_PID = String(process.pid);
    callArgs = fdListenArgs(args);
    serveProbePort(this);
  }
  track(this);
  return originalListen.apply(this, callArgs);
};

// The instance's own port for health checks: its connections are handed to `server`.
const probeListeners = [];

function serveProbePort(server) {
  const port = positiveInt(env.PMFLEET_PROBE_PORT, 0);
  if (port <= 0) return;
  const side = net.createServer((socket) => server.emit('connection', socket));
  side.on('error', () => {});
  originalListen.call(side, port, '127.0.0.1');
  side.unref();
  probeListeners.push(side);
}

// ---------------------------------------------------------------------------------------------
// Tracking servers and connections

const servers = new Set();
const STATE = Symbol('pmfleet.connection');
const SOCKETS = Symbol('pmfleet.sockets');
const REQUEST_SOCKETS = Symbol('pmfleet.requestSockets');
let draining = false;

function isHttp(server) {
  return server instanceof http.Server || server instanceof https.Server;
}

function track(server) {
  if (servers.has(server)) return;
  servers.add(server);
  server[SOCKETS] = new Set();
  server[REQUEST_SOCKETS] = new Set();
  installSignalHandlers();

  server.once('listening', () => {
    if (env.PMFLEET_NOTIFY_ON_LISTEN === '1') notifyReady();
  });

  // Every connection, whatever the protocol: the drain waits for all of them.
  server.on('connection', (socket) => {
    server[SOCKETS].add(socket);
    socket.once('close', () => {
      server[SOCKETS].delete(socket);
      if (draining) exitIfDone();
    });
  });

  if (!isHttp(server)) return;
  // The socket that carries requests: the TCP socket, or for HTTPS the TLS socket over it.
  const requestSocketEvent = server instanceof https.Server ? 'secureConnection' : 'connection';
  server.on(requestSocketEvent, (socket) => {
    const state = { inFlight: 0, responses: new Set(), idleTimer: null };
    socket[STATE] = state;
    server[REQUEST_SOCKETS].add(socket);
    socket.once('close', () => {
      clearTimeout(state.idleTimer);
      server[REQUEST_SOCKETS].delete(socket);
    });
    if (draining) scheduleIdleClose(socket);
  });
  // First in line, so the header is set before the app's handler can send the response.
  server.prependListener('request', (req, res) => {
    const socket = req.socket;
    const state = socket && socket[STATE];
    if (!state) return;
    state.inFlight += 1;
    state.responses.add(res);
    clearTimeout(state.idleTimer);
    if (draining) closeAfter(res);
    let done = false;
    const finished = () => {
      if (done) return;
      done = true;
      state.inFlight -= 1;
      state.responses.delete(res);
      if (draining) scheduleIdleClose(socket);
    };
    res.once('finish', finished);
    res.once('close', finished);
  });
}

// Make `res` the last response on its connection.
function closeAfter(res) {
  res.shouldKeepAlive = false;
  if (!res.headersSent) {
    try {
      res.setHeader('Connection', 'close');
    } catch (_) {
      // Headers went out after all; the idle timer closes the connection.
    }
  }
}

// Close the connection if it carries no request for IDLE_MS.
function scheduleIdleClose(socket) {
  const state = socket[STATE];
  if (!state || state.inFlight > 0 || socket.destroyed) return;
  clearTimeout(state.idleTimer);
  state.idleTimer = setTimeout(() => {
    if (state.inFlight === 0 && !socket.destroyed) socket.destroy();
  }, IDLE_MS);
}

// While draining, connections are closed by the drain; Node's close() must not cut idle ones.
for (const Server of [http.Server, https.Server]) {
  const original = Server.prototype.closeIdleConnections;
  if (typeof original !== 'function') continue;
  Server.prototype.closeIdleConnections = function closeIdleConnections(...args) {
    if (draining) return undefined;
    return original.apply(this, args);
  };
}

// ---------------------------------------------------------------------------------------------
// Draining on a stop signal

const handlers = new Map();
let drainSignal = null;
let exitWhenDone = false;

function installSignalHandlers() {
  if (handlers.size > 0) return;
  for (const signal of SIGNALS) {
    const handler = () => onSignal(signal);
    handlers.set(signal, handler);
    process.on(signal, handler);
  }
}

function appHandles(signal) {
  return process.listeners(signal).some((l) => l !== handlers.get(signal));
}

function onSignal(signal) {
  if (draining) {
    if (!appHandles(signal)) die(signal);
    return;
  }
  draining = true;
  drainSignal = signal;
  exitWhenDone = !appHandles(signal);
  notify('STOPPING=1');
  for (const side of probeListeners) side.close();

  for (const server of servers) {
    for (const socket of server[REQUEST_SOCKETS]) {
      for (const res of socket[STATE].responses) closeAfter(res);
      scheduleIdleClose(socket);
    }
    if (server.listening) {
      // net's close: stop accepting; unlike http's, it leaves open connections alone.
      net.Server.prototype.close.call(server);
    }
  }
  exitIfDone();

  const hardStop = setTimeout(() => {
    for (const server of servers) {
      for (const socket of server[SOCKETS]) socket.destroy();
    }
  }, DRAIN_TIMEOUT_MS);
  hardStop.unref();
}

function exitIfDone() {
  if (!exitWhenDone) return;
  for (const server of servers) {
    if (server.listening || server[SOCKETS].size > 0) return;
  }
  die(drainSignal);
}

function die(signal) {
  exitWhenDone = false;
  for (const [sig, handler] of handlers) process.removeListener(sig, handler);
  // With no listener left Node restores the default action, so this ends the process the way
  // the signal would have without the preload.
  process.kill(process.pid, signal);
  // Should the signal be blocked or ignored, exit anyway.
  setTimeout(() => process.exit(0), 100).unref();
}
