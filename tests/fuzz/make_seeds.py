#!/usr/bin/env python3
"""Writes the hand-made seed corpora into tests/fuzz/corpus/<target>/ (issue #7).

Seeds are small, valid or nearly valid inputs taken from the RFCs, the unit-test vectors and the examples,
so the fuzzers start next to the interesting code paths. Re-run after changing a seed list; file names are
stable (a short description), so git shows what changed. The JWT seeds in "signed" form (odd first byte)
are signed by the fuzz target itself with its fixed keys; one raw EdDSA token is signed here with openssl
from the same fixed Ed25519 seed as tests/fuzz/jwt_fuzz_keys.hpp.
Files named regress-* are crash reproducers added by hand when a bug was found: keep them.
"""
import base64
import os
import pathlib
import subprocess
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CORPUS = HERE / "corpus"


def put(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data)


H = "Host: api.kota.go.id\r\n"

# ---- request_head: first byte picks the limits (odd = the gateway's defaults, even = tiny) ----
req = {
    "get": "GET / HTTP/1.1\r\n" + H + "\r\n",
    "get_pipelined": "GET /a HTTP/1.1\r\n" + H + "\r\nGET /b HTTP/1.1\r\n" + H + "\r\n",
    "post_cl": "POST /submit HTTP/1.1\r\n" + H + "Content-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n" + H + "\r\n",
    "post_cl_short": "POST /submit HTTP/1.1\r\n" + H + "Content-Length: 10\r\n\r\nhello",
    "post_chunked": "POST /s HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "chunked_ext_trailer": "POST /s HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\n"
                           "5;name=val\r\nhello\r\n3\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n",
    "chunked_bad_size": "POST /s HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    "cl_and_te": "POST / HTTP/1.1\r\n" + H + "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te_chunked_twice": "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
    "te_gzip_chunked": "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    "duplicate_cl": "POST / HTTP/1.1\r\n" + H + "Content-Length: 1\r\nContent-Length: 1\r\n\r\na",
    "cl_plus": "POST / HTTP/1.1\r\n" + H + "Content-Length: +1\r\n\r\na",
    "cl_huge": "POST / HTTP/1.1\r\n" + H + "Content-Length: 18446744073709551616\r\n\r\n",
    "obs_fold": "GET / HTTP/1.1\r\n" + H + "X-A: 1\r\n 2\r\n\r\n",
    "bare_lf": "GET / HTTP/1.1\n" + H + "\r\n",
    "bare_cr": "GET / HTTP/1.1\r" + H + "\r\n",
    "space_before_colon": "GET / HTTP/1.1\r\n" + H + "Content-Length : 3\r\n\r\nabc",
    "underscore_cl": "POST / HTTP/1.1\r\n" + H + "Content_Length: 3\r\n\r\nabc",
    "two_hosts": "GET / HTTP/1.1\r\n" + H + H + "\r\n",
    "no_host": "GET / HTTP/1.1\r\n\r\n",
    "http10": "GET / HTTP/1.0\r\n\r\n",
    "http2_preface": "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    "absolute_form": "GET http://api.kota.go.id:8443/a?b=c HTTP/1.1\r\n" + H + "\r\n",
    "connect": "CONNECT api.kota.go.id:443 HTTP/1.1\r\n" + H + "\r\n",
    "options_star": "OPTIONS * HTTP/1.1\r\n" + H + "\r\n",
    "expect": "POST / HTTP/1.1\r\n" + H + "Expect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
    "nul": "GET /\x00 HTTP/1.1\r\n" + H + "\r\n",
    "obs_text": "GET / HTTP/1.1\r\n" + H + "X-Name: caf\xe9\r\n\r\n",
    "host_ipv6": "GET / HTTP/1.1\r\nHost: [2001:db8::1]:443\r\n\r\n",
    "leading_crlf": "\r\nGET / HTTP/1.1\r\n" + H + "\r\n",
}
for name, v in req.items():
    put("request_head", name, "\x01" + v)  # odd first byte: the gateway's default limits
for name in ("get", "post_chunked", "obs_fold"):
    put("request_head", name + "_tiny_limits", "\x00" + req[name])

# ---- response_head ----
resp = {
    "ok_cl": "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
    "ok_chunked": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "ok_close": "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close",
    "no_reason": "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
    "empty_reason": "HTTP/1.1 204 \r\n\r\n",
    "not_modified_cl": "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
    "continue_then_ok": "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
    "switching": "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
    "cl_te": "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "dup_cl": "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    "http10": "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi",
    "status_999": "HTTP/1.1 999 Odd\r\nContent-Length: 0\r\n\r\n",
    "bad_status": "HTTP/1.1 20 OK\r\n\r\n",
    "obs_fold": "HTTP/1.1 200 OK\r\nX-A: 1\r\n\t2\r\nContent-Length: 0\r\n\r\n",
}
for name, v in resp.items():
    put("response_head", name, "\x01" + v)  # first byte: limits, as for request_head
put("response_head", "ok_cl_tiny_limits", "\x00" + resp["ok_cl"])

# ---- config_loader: the example configurations and a minimal one ----
for f in sorted((ROOT / "examples").glob("*.yaml")):
    put("config_loader", "example_" + f.stem, f.read_bytes())
put("config_loader", "minimal",
    "listeners:\n  - name: public\n    bind: \"127.0.0.1:8443\"\n    tls:\n      certificates:\n"
    "        - cert_file: certs/server.pem\n          key_file: certs/server.key\n"
    "upstreams:\n  - name: app\n    targets: [\"127.0.0.1:9000\"]\n"
    "routes:\n  - name: all\n    match: { prefix: / }\n    upstream: app\n")
put("config_loader", "anchors", "a: &x [1, 2]\nb: *x\nc: {<<: *x}\n")
put("config_loader", "not_a_map", "- 1\n- 2\n")
put("config_loader", "bad_yaml", "listeners: [\n")

# ---- units: one value per file ----
for v in ["250ms", "30s", "5m", "1h", "7d", "0s", "9223372036854775807ms", "106751991167301d",
          "512", "512B", "4KiB", "10MiB", "1GiB", "1TiB", "10KB", "10MB", "1GB", "18446744073709551615",
          "18446744073709551616", "10.0.0.0/8", "192.168.1.1", "10.0.0.1/8", "2001:db8::/32", "::1",
          "::ffff:10.0.0.0/104", "fe80::1%eth0", "0.0.0.0/0", "::/0", "127.0.0.1:8443", "[::1]:8443",
          "*:8443", "localhost:0", "[::ffff:1.2.3.4]:65535", "1.2.3.4:65536", "01.2.3.4"]:
    put("units", v.replace("/", "_slash_").replace(":", "_").replace("*", "star").replace("%", "pct") or "empty", v)

# ---- ip_filter: FuzzedDataProvider bytes; a few shapes ----
put("ip_filter", "empty", b"")
put("ip_filter", "v4_allow", bytes([1, 0, 0, 8, 10, 0, 0, 0]) + bytes([0, 2, 10, 1, 2, 3]) * 4)
put("ip_filter", "v6_mapped", bytes([1, 1, 1, 104, 1, 10, 0, 0, 0, 0, 24, 192, 168, 0, 0]) + bytes([1, 0, 10, 1, 2, 3]) * 4)
put("ip_filter", "mixed", bytes(range(7, 200)))

# ---- jwt: signed form (odd first byte: alg = (b >> 1) % 4 -> 1 EdDSA, 3 ES256, 5 RS256, 7 PS256) ----
NOW = 1700000000
def claims(extra=""):
    return ('{"iss":"https://idp.fuzz","aud":"gerbang","sub":"user-1","iat":%d,"exp":%d%s}'
            % (NOW - 10, NOW + 600, extra))
for b, alg, kid in [(1, "EdDSA", "ed"), (3, "ES256", "p256"), (5, "RS256", "rsa"), (7, "PS256", "rsa")]:
    put("jwt", "signed_" + alg, chr(b) + '{"alg":"%s","kid":"%s","typ":"JWT"}\n' % (alg, kid) + claims(',"groups":["a","b"]'))
put("jwt", "signed_payload_only", "\x01" + claims())
put("jwt", "signed_aud_array", "\x01" + '{"alg":"EdDSA","kid":"ed"}\n' +
    '{"iss":"https://idp.fuzz","aud":["x","gerbang"],"sub":"u","iat":%d,"exp":%d,"nbf":%d}' % (NOW, NOW + 60, NOW))
put("jwt", "signed_expired", "\x01" + '{"alg":"EdDSA","kid":"ed"}\n' +
    '{"iss":"https://idp.fuzz","aud":"gerbang","sub":"u","exp":%d}' % (NOW - 100))
put("jwt", "signed_crit", "\x01" + '{"alg":"EdDSA","kid":"ed","crit":["exp"]}\n' + claims())
put("jwt", "signed_alg_none", "\x01" + '{"alg":"none","kid":"ed"}\n' + claims())
put("jwt", "signed_hs256", "\x01" + '{"alg":"HS256","kid":"rsa"}\n' + claims())
put("jwt", "signed_wrong_key", "\x05" + '{"alg":"RS256","kid":"p256"}\n' + claims())
put("jwt", "signed_dup_member", "\x01" + '{"alg":"EdDSA","alg":"none","kid":"ed"}\n' + claims())
put("jwt", "signed_unicode", "\x01" + '{"alg":"EdDSA","kid":"ed"}\n' +
    '{"iss":"https://idp.fuzz","aud":"gerbang","sub":"\\u00e9\\ud83d\\ude00","iat":%d,"exp":%d}' % (NOW, NOW + 60))

def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
seed = bytes(0x42 + i for i in range(32))
der = bytes.fromhex("302e020100300506032b657004220420") + seed
with tempfile.TemporaryDirectory() as t:
    key = os.path.join(t, "ed.der")
    open(key, "wb").write(der)
    for name, header, payload in [
        ("raw_eddsa", '{"alg":"EdDSA","kid":"ed","typ":"JWT"}', claims()),
        ("raw_eddsa_groups", '{"alg":"EdDSA","kid":"ed"}', claims(',"groups":["dinkes"]')),
    ]:
        signing_input = b64u(header.encode()) + "." + b64u(payload.encode())
        msg = os.path.join(t, "msg")
        open(msg, "wb").write(signing_input.encode())
        sig = subprocess.run(["openssl", "pkeyutl", "-sign", "-rawin", "-inkey", key, "-keyform", "DER",
                              "-in", msg], check=True, capture_output=True).stdout
        put("jwt", name, "\x00" + signing_input + "." + b64u(sig))
put("jwt", "raw_garbage", "\x00eyJhbGciOiJub25lIn0.e30.")

# ---- jwks ----
put("jwks", "okp", '{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}')
put("jwks", "ec_p256_bad_point", '{"keys":[{"kty":"EC","crv":"P-256","kid":"e","x":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","y":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}]}')
put("jwks", "rsa_small", '{"keys":[{"kty":"RSA","kid":"r","n":"sXch","e":"AQAB","use":"sig","alg":"RS256"}]}')
put("jwks", "empty_keys", '{"keys":[]}')
put("jwks", "nested", '{"keys":[{"a":[[[[[[[[[[1]]]]]]]]]]}]}')
put("jwks", "numbers", '[0,-0,1e308,-1.5e-7,9223372036854775807,9223372036854775808,1E400]')
put("jwks", "strings", '["\\u0000","\\ud800","\\ud83d\\ude00","\\/","caf\u00e9"]')
put("jwks", "dup", '{"keys":[],"keys":[]}')

# ---- audit_record (from tests/unit/audit/record_test.cpp and docs/audit-format.md) ----
put("audit_record", "start", '{"v":1,"kind":"start","time_ms":1767225600123}')
put("audit_record", "close_full",
    '{"v":1,"kind":"exchange_close","time_ms":1767225600123,"request_id":"r1","listener":"public",'
    '"client":"203.0.113.7:51234","tls_version":"TLSv1.3","tls_cipher":"TLS_AES_128_GCM_SHA256",'
    '"client_cert_sha256":"ab","consumer":"dukcapil","auth_method":"mtls","route":"citizens",'
    '"upstream":"10.0.0.5:8080","method":"POST","path":"/a?b=\\"c\\"\\\\d","status":201,"decision":"forward",'
    '"reason":"waf.block","waf_rule_ids":"942100,949110","bytes_in":10,"bytes_out":20,"duration_us":30,'
    '"request_body_sha256":"cd","response_body_sha256":"ef","opens":0,'
    '"detail":"line1\\nline2\\t\\u0001 caf\u00e9 /"}')
put("audit_record", "doc_example",
    '{"v":1,"kind":"exchange_close","time_ms":1767225600123,"request_id":"r1","consumer":"dukcapil",'
    '"route":"citizens","method":"GET","path":"/api/v1/citizens/7","status":200,"decision":"forward",'
    '"bytes_out":107,"duration_us":830,"opens":41}')
put("audit_record", "deny", '{"v":1,"kind":"exchange","time_ms":1,"decision":"deny","reason":"authz.denied","status":403}')
put("audit_record", "negative_time", '{"v":1,"kind":"halt","time_ms":-1,"detail":"x"}')

# ---- checkpoint ----
root = base64.b64encode(bytes(range(32))).decode()
put("checkpoint", "body", "audit.fuzz.example/log\n5\n" + root + "\n")
put("checkpoint", "body_ext", "audit.fuzz.example/log\n0\n" + root + "\next one\n")
put("checkpoint", "body_other_origin", "example.com/other\n18446744073709551615\n" + root + "\n")
put("checkpoint", "c2sp_vkey", "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k")
put("checkpoint", "c2sp_note", "This is an example message.\n\n\u2014 example.com/foo "
    "Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n")
put("checkpoint", "note_two_sigs", "audit.fuzz.example/log\n1\n" + root + "\n\n\u2014 a AAAAAAAA\n\u2014 b AAAAAAAA\n")

# ---- receipt ----
put("receipt", "basic", "audit.gw.kota.go.id/gw-01;42;" + root)
put("receipt", "zero", "o;0;" + root)
put("receipt", "semicolon_origin", "a;b;c;7;" + root)
put("receipt", "leading_zero", "o;007;" + root)
put("receipt", "max", "o;18446744073709551615;" + root)
