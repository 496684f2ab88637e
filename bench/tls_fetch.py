#!/usr/bin/env python3
"""One HTTPS request for bench/run.sh's functional checks; prints `STATUS BODY_BYTES [HEADER_VALUE]`.

    tls_fetch.py PORT METHOD PATH [--body-file F] [-H "Name: value"]... [--show-header NAME]

Certificates are not verified (the bench uses a throwaway PKI). The Host header is "localhost" unless
given with -H.
"""

import argparse
import http.client
import ssl
import sys


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("method")
    ap.add_argument("path")
    ap.add_argument("--body-file")
    ap.add_argument("-H", "--header", action="append", default=[])
    ap.add_argument("--show-header")
    args = ap.parse_args()

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    headers = {"Host": "localhost"}
    for h in args.header:
        name, _, value = h.partition(":")
        headers[name.strip()] = value.strip()
    body = None
    if args.body_file:
        with open(args.body_file, "rb") as f:
            body = f.read()
    conn = http.client.HTTPSConnection("127.0.0.1", args.port, context=ctx, timeout=10)
    try:
        conn.request(args.method, args.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        out = f"{resp.status} {len(data)}"
        if args.show_header:
            out += " " + (resp.getheader(args.show_header) or "-")
        print(out)
    except (OSError, http.client.HTTPException) as e:
        print(f"000 0 {type(e).__name__}: {e}")
    finally:
        conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
