#!/usr/bin/env python3
"""Open many idle keep-alive TLS connections to a proxy and hold them.

Each connection does a full TLS handshake, sends one keep-alive GET and reads the complete
response, then stays open and idle. When all are open the tool prints a line
``HOLDING <open> <failed>`` (and writes it to --ready-file if given), then waits until it gets
SIGTERM/SIGINT or --hold seconds pass. Before exiting it checks how many connections are still
open (a closed one is readable with EOF) and prints ``ALIVE <n>``.

Used by bench/run.sh to measure the proxies' resident memory with 10,000 idle TLS connections.
Certificates are not verified (the bench uses a throwaway PKI).
"""

import argparse
import concurrent.futures
import resource
import select
import signal
import socket
import ssl
import sys
import threading
import time


def raise_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def read_response(conn):
    """Reads one HTTP/1.1 response with a Content-Length body; returns the status code."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the response head")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
        if name.strip().lower() == b"transfer-encoding":
            raise ValueError("chunked response not supported by this tool")
    if length is None:
        raise ValueError("response without Content-Length")
    while len(rest) < length:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("closed inside the response body")
        rest += chunk
    return status


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", default="/small")
    ap.add_argument("-n", "--count", type=int, default=10000)
    ap.add_argument("--hold", type=float, default=300.0, help="seconds to hold at most (default 300)")
    ap.add_argument("--ready-file", help="file that gets the HOLDING line once all connections are open")
    ap.add_argument("--parallel", type=int, default=8, help="connections opened concurrently (default 8)")
    ap.add_argument("--max-failures", type=int, default=100, help="give up after this many failed connections")
    args = ap.parse_args()

    limit = raise_nofile(args.count + 256)
    if limit < args.count + 16:
        print(f"error: open-file limit {limit} is too low for {args.count} connections", file=sys.stderr)
        return 2

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3

    request = (f"GET {args.path} HTTP/1.1\r\nHost: {args.host}:{args.port}\r\n"
               f"User-Agent: gerbang-bench-idle\r\n\r\n").encode()

    stop = {"flag": False}

    def on_signal(_signo, _frame):
        stop["flag"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    conns = []
    failures = 0
    first_error = None
    lock = threading.Lock()
    started = time.monotonic()

    def open_one(_):
        nonlocal failures, first_error
        if stop["flag"]:
            return
        with lock:
            if failures >= args.max_failures:
                return
        raw = None
        try:
            raw = socket.create_connection((args.host, args.port), timeout=30)
            conn = ctx.wrap_socket(raw, server_hostname=args.host)
            conn.sendall(request)
            status = read_response(conn)
            if status != 200:
                raise ValueError(f"status {status}")
            conn.settimeout(None)
            with lock:
                conns.append(conn)
                n = len(conns)
            if n % 2000 == 0:
                print(f"  {n} open ({time.monotonic() - started:.1f}s)", file=sys.stderr, flush=True)
        except (OSError, ValueError, ConnectionError) as exc:
            with lock:
                failures += 1
                if first_error is None:
                    first_error = repr(exc)
            if raw is not None:
                raw.close()

    # The TLS work runs in OpenSSL without the GIL, so a few threads keep the proxy busy.
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.parallel) as pool:
        list(pool.map(open_one, range(args.count)))

    opened = time.monotonic() - started
    line = f"HOLDING {len(conns)} {failures} {opened:.1f}"
    print(line, flush=True)
    if first_error:
        print(f"first error ({failures} failed): {first_error}", file=sys.stderr, flush=True)
    if args.ready_file:
        with open(args.ready_file, "w", encoding="ascii") as f:
            f.write(line + "\n")

    deadline = time.monotonic() + args.hold
    while not stop["flag"] and time.monotonic() < deadline:
        time.sleep(0.2)

    # A connection the server closed is readable (EOF or an alert); an idle live one is not.
    alive = 0
    poller = select.poll()
    for conn in conns:
        poller.register(conn.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
    ready = {fd for fd, _ in poller.poll(0)}
    for conn in conns:
        if conn.fileno() not in ready:
            alive += 1
    print(f"ALIVE {alive}", flush=True)
    for conn in conns:
        try:
            conn.close()
        except OSError:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
