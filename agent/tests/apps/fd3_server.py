#!/usr/bin/env python3
"""A Python HTTP app that speaks pmfleet's cluster protocol natively, with no preload.

- Serves on the inherited listening socket fd 3 when LISTEN_FDS=1 (and LISTEN_PID is unset or
  this pid), otherwise binds PORT (default 8000) itself.
- Reports readiness once serving: "READY=1" as a datagram to NOTIFY_SOCKET (sd_notify; a
  leading "@" means the abstract namespace) and as a line to the descriptor in
  PMFLEET_READY_FD, whichever is set.
- GET / answers "hello from python <pid>"; GET /crash exits with code 3 at once.
- On SIGINT or SIGTERM: stops accepting, answers each connection's next request with
  "Connection: close", closes connections idle for 2 s, and exits 0 when they are all gone.
"""
import http.server
import os
import signal
import socket
import socketserver
import sys
import threading

stopping = threading.Event()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # An idle keep-alive connection is closed after this many seconds.
    timeout = 2

    def do_GET(self):
        if self.path == "/crash":
            os._exit(3)
        body = f"hello from python {os.getpid()}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        if stopping.is_set():
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = False
    block_on_close = True


def listening_socket():
    pid = str(os.getpid())
    if os.environ.get("LISTEN_FDS") == "1" and os.environ.get("LISTEN_PID", pid) == pid:
        return socket.socket(fileno=3)
    port = int(os.environ.get("PORT", "8000"))
    return socket.create_server(("0.0.0.0", port))


def notify(message):
    path = os.environ.get("NOTIFY_SOCKET")
    if path:
        if path.startswith("@"):
            path = "\0" + path[1:]
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
                s.connect(path)
                s.sendall(message.encode())
        except OSError as e:
            print(f"cannot notify {path!r}: {e}", file=sys.stderr, flush=True)
    fd = os.environ.get("PMFLEET_READY_FD")
    if fd:
        try:
            os.write(int(fd), (message + "\n").encode())
        except (OSError, ValueError):
            pass


def main():
    sock = listening_socket()
    # Other processes accept from the same socket: a readable socket may be empty by the time
    # this one accepts, which must not block the serving loop.
    sock.setblocking(False)
    server = Server(sock.getsockname(), Handler, bind_and_activate=False)
    server.socket = sock
    server.server_address = sock.getsockname()

    def stop(signum, frame):
        if stopping.is_set():
            return
        stopping.set()
        notify("STOPPING=1")
        # shutdown() waits for serve_forever() to return, so it cannot run on this thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    print(f"listening on {server.server_address} pid {os.getpid()}", flush=True)
    notify("READY=1")
    server.serve_forever(poll_interval=0.1)
    # Closes this process's copy of the socket, then waits for the connection threads.
    server.server_close()
    print("drained", flush=True)


if __name__ == "__main__":
    main()
