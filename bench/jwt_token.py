#!/usr/bin/env python3
"""Make an EdDSA (Ed25519) JWKS file and one signed JWT for the `policies` bench scenario.

Python's standard library cannot sign with Ed25519, so the JWS signing input is written to a file and
signed by `openssl pkeyutl -sign -rawin` (OpenSSL 3; one-shot signing needs a file, not stdin). The public
key is the last 32 bytes of the key's SubjectPublicKeyInfo DER (`openssl pkey -pubout -outform DER`).

    jwt_token.py --key ed25519.pem --jwks-out jwks.json --issuer I --audience A --subject S [--lifetime 82800]

prints the compact token (header.payload.signature) on stdout.
"""

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
import time


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def compact_json(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=False).encode()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--key", required=True, help="Ed25519 private key, PEM (openssl genpkey -algorithm ed25519)")
    ap.add_argument("--jwks-out", required=True)
    ap.add_argument("--kid", default="bench-ed25519-1")
    ap.add_argument("--issuer", required=True)
    ap.add_argument("--audience", required=True)
    ap.add_argument("--subject", required=True)
    ap.add_argument("--groups", default="bench-clients", help="comma-separated groups claim")
    ap.add_argument("--lifetime", type=int, default=23 * 3600, help="seconds from now to exp")
    args = ap.parse_args()

    der = subprocess.run(["openssl", "pkey", "-in", args.key, "-pubout", "-outform", "DER"],
                         check=True, capture_output=True).stdout
    if len(der) != 44:  # 12-byte SPKI prefix for Ed25519 + 32-byte key
        print(f"unexpected Ed25519 SPKI length {len(der)}", file=sys.stderr)
        return 1
    jwks = {"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": args.kid, "use": "sig", "alg": "EdDSA",
                      "x": b64url(der[-32:])}]}
    with open(args.jwks_out, "w") as f:
        json.dump(jwks, f, indent=2)
        f.write("\n")

    now = int(time.time())
    header = {"alg": "EdDSA", "typ": "JWT", "kid": args.kid}
    payload = {"iss": args.issuer, "sub": args.subject, "aud": args.audience, "iat": now, "nbf": now,
               "exp": now + args.lifetime, "jti": b64url(os.urandom(12)),
               "groups": [g for g in args.groups.split(",") if g]}
    signing_input = b64url(compact_json(header)) + "." + b64url(compact_json(payload))
    with tempfile.NamedTemporaryFile(prefix="jws-", delete=False) as tmp:
        tmp.write(signing_input.encode("ascii"))
        path = tmp.name
    try:
        sig = subprocess.run(["openssl", "pkeyutl", "-sign", "-inkey", args.key, "-rawin", "-in", path],
                             check=True, capture_output=True).stdout
    finally:
        os.unlink(path)
    if len(sig) != 64:
        print(f"unexpected Ed25519 signature length {len(sig)}", file=sys.stderr)
        return 1
    print(signing_input + "." + b64url(sig))
    return 0


if __name__ == "__main__":
    sys.exit(main())
