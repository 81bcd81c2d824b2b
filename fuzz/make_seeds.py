#!/usr/bin/env python3
"""Writes the seed corpora in fuzz/seeds/ (committed; re-run after a proto or
target change). Seeds are valid or nearly valid inputs, so the fuzzers start
past the first checks instead of guessing a checksum or a protobuf tag."""
import base64, os, zlib

HERE = os.path.dirname(os.path.abspath(__file__))
B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def write(target, name, data):
    path = os.path.join(HERE, "seeds", target)
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def checksum(body):
    n, out = zlib.crc32(body.encode()), ""
    for _ in range(6):
        out = B62[n % 62] + out
        n //= 62
    return out


def key(prefix):
    # A fixture in the key format, issued by no server.
    body = f"{prefix}_FuzzSeedKeyId0001_" + "FuzzSeedSecretNotARealKey" + "0" * 18
    return body + checksum(body)


# Protobuf encoding, just enough for the request messages.
def varint(n):
    n &= (1 << 64) - 1
    out = b""
    while True:
        b, n = n & 0x7F, n >> 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def s(field, value):
    data = value if isinstance(value, bytes) else value.encode()
    return varint(field << 3 | 2) + varint(len(data)) + data


def i(field, value):
    return varint(field << 3) + varint(value)


def ts(field, seconds, nanos=0):
    return s(field, i(1, seconds) + i(2, nanos))


FUTURE = 1_900_000_000  # 2030
token = lambda *parts: base64.urlsafe_b64encode("\0".join(parts).encode()).rstrip(b"=").decode()
KEY_ID = "lki_FuzzSeedKeyId0001"

requests = {
    0: [s(1, "learner-activity") + s(2, "ci key") + ts(3, FUTURE), s(1, "Bad Name") + ts(3, 5)],
    1: [s(1, "learner-activity") + s(2, KEY_ID)],
    2: [s(1, "learner-activity") + i(2, 10) + s(3, token("k", "learner-activity", "17", KEY_ID))],
    3: [s(1, "learner-activity") + s(2, KEY_ID)],
    4: [s(1, key("lki")) + s(2, "/course.v1.CourseService/GetOutline")],
    5: [s(1, s(1, KEY_ID) + s(2, "learner-activity") + s(3, "renamed") + ts(5, FUTURE) + i(7, 1))
        + s(2, s(1, "display_name") + s(1, "expire_time") + s(1, "disabled"))],
    6: [s(1, "learner-activity") + s(2, KEY_ID) + s(3, i(1, 3600))],
    7: [i(1, 2) + s(2, token("i", "learner-activity"))],
    8: [s(1, "reports")],
    9: [s(1, "acme") + s(2, s(1, s(1, "admin") + s(2, "a-user-api-key-of-24chars") + i(3, 1))
                           + s(2, "admin") + s(3, "lb-secret"))
        + s(3, s(1, "LbHostOverride") + s(2, "lb.example.com"))],
    10: [s(1, "acme") + s(2, s(1, "ClientSettings.LbHostOverride") + s(2, "lb.example.com"))
         + s(2, s(1, "ClientCredentials.LbApiKey") + s(2, "x"))],
    11: [s(1, "acme") + s(2, "ops") + s(3, "another-user-api-key-24ch") + i(4, 2)],
    12: [s(1, "acme") + s(2, "ops")],
    13: [s(1, "acme")],
    14: [s(1, "acme") + s(2, "ops") + s(3, "another-user-api-key-24ch")],
    15: [s(1, "acme")],
    16: [s(1, "acme") + ts(2, 1) + ts(3, FUTURE) + i(4, 5) + s(5, token("a", "17", "3"))],
    17: [b""],
}
for rpc, bodies in requests.items():
    for n, body in enumerate(bodies):
        write("requests", f"rpc{rpc:02}-{n}", bytes([rpc]) + body)

for kind in ("lki", "lkp"):
    write("key_format", kind, key(kind))
    write("key_format", kind + "-id", f"{kind}_FuzzSeedKeyId0001")

with open(os.path.join(HERE, "..", "tests", "api", "helpers.rs")) as f:
    helpers = f.read()
write("catalog", "test-catalog", helpers.split('r#"', 1)[1].split('"#', 1)[0])
write("catalog", "empty", "")

for name in ("ClientSettings.LbHostOverride\nlb.example.com", "ClientCredentials.LbApiKey\nx",
             "ClientCredentials.UserApiKeys.admin", "Other.Name"):
    write("setting_name", name.split("\n")[0].replace(".", "-"), name)

basic = base64.b64encode(b"admin@acme:a-user-api-key").decode()
write("credentials", "sid", bytes([len(key("lkp"))]) + key("lkp").encode() + f"Basic {basic}".encode())
write("credentials", "bearer", b"\0" + f"Bearer {key('lkp')}".encode())
