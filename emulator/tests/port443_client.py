#!/usr/bin/env python3
"""A client with the official C SDK's constraints: it refuses any endpoint URL that carries a
port and always connects on 443, verifying the certificate against the advertised host name.
With botocore (control plane, GetIceServerConfig) and SigV4QueryAuth (the WSS URLs) it runs a
MASTER and a VIEWER through the emulator: offer -> answer and a candidate each way.
Reads the emulator's env file variables; prints PASS/FAIL lines; exit 0 only if all passed."""

import base64
import json
import os
import socket
import ssl
import struct
import sys
import urllib.parse

import botocore.session
from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ENV = os.environ
REGION = ENV["AWS_REGION"]
CREDS = Credentials(ENV["AWS_ACCESS_KEY_ID"], ENV["AWS_SECRET_ACCESS_KEY"],
                    ENV.get("AWS_SESSION_TOKEN"))
CA = ENV["KVS_CA_FILE"]
CTX = ssl.create_default_context(cafile=CA)
TIMEOUT = 10
FAILED = []


def check(name, ok, why=""):
    if not ok:
        FAILED.append(name)
    print(("PASS " if ok else "FAIL ") + name + ("" if ok else ": " + str(why)), flush=True)


def port_less_host(url, scheme):
    """The C SDK's rule: scheme://host, no port, no path; returns the host."""
    u = urllib.parse.urlsplit(url)
    if u.scheme != scheme or u.port is not None or u.path not in ("", "/") or not u.hostname:
        raise ValueError("endpoint %r is not %s://HOST without a port" % (url, scheme))
    return u.hostname


def client(service, endpoint):
    return botocore.session.get_session().create_client(
        service, region_name=REGION, endpoint_url=endpoint, verify=CA,
        aws_access_key_id=CREDS.access_key, aws_secret_access_key=CREDS.secret_key,
        aws_session_token=CREDS.token)


def ws_frame(text):
    data = text.encode()
    mask = os.urandom(4)
    n = len(data)
    head = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack(">H", n))
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def read_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError("connection closed")
        buf += chunk
    return buf


def read_json(s):
    while True:
        b0, b1 = read_exact(s, 2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack(">H", read_exact(s, 2))[0]
        elif n == 127:
            n = struct.unpack(">Q", read_exact(s, 8))[0]
        payload = read_exact(s, n)
        if b0 & 0x0F == 0x1:
            return json.loads(payload.decode())


def connect_ws(endpoint, params):
    host = port_less_host(endpoint, "wss")
    query = urllib.parse.urlencode(params)
    req = AWSRequest(method="GET", url="https://%s/?%s" % (host, query))
    SigV4QueryAuth(CREDS, "kinesisvideo", REGION, expires=299).add_auth(req)
    u = urllib.parse.urlsplit(req.url)
    raw = socket.create_connection((host, 443), timeout=TIMEOUT)
    s = CTX.wrap_socket(raw, server_hostname=host)  # verifies the certificate covers host
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(("GET /?%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
               % (u.query, host, key)).encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(1)
        if not chunk:
            raise EOFError("closed during upgrade")
        buf += chunk
    status = int(buf.split(b" ")[1])
    if status != 101:
        raise RuntimeError("upgrade answered %d: %r" % (status, buf))
    return s


def b64json(obj):
    return base64.b64encode(json.dumps(obj).encode()).decode()


def main():
    control = ENV["KVS_CONTROL_PLANE_URL"]
    port_less_host(control, "https")
    kv = client("kinesisvideo", control)
    arn = kv.describe_signaling_channel(ChannelName=ENV["KVS_CHANNEL_NAME"])["ChannelInfo"]["ChannelARN"]
    check("DescribeSignalingChannel on a port-less control plane", arn == ENV["KVS_CHANNEL_ARN"], arn)
    eps = {}
    for role in ("VIEWER", "MASTER"):
        r = kv.get_signaling_channel_endpoint(
            ChannelARN=arn,
            SingleMasterChannelEndpointConfiguration={"Protocols": ["WSS", "HTTPS"], "Role": role})
        eps[role] = {e["Protocol"]: e["ResourceEndpoint"] for e in r["ResourceEndpointList"]}
    for role, e in eps.items():
        try:
            port_less_host(e["WSS"], "wss")
            port_less_host(e["HTTPS"], "https")
            check("%s endpoints are port-less host names" % role, True)
        except ValueError as err:
            check("%s endpoints are port-less host names" % role, False, err)
    check("VIEWER and MASTER get distinct WSS hosts",
          port_less_host(eps["VIEWER"]["WSS"], "wss") != port_less_host(eps["MASTER"]["WSS"], "wss"), eps)
    ice = client("kinesis-video-signaling", eps["VIEWER"]["HTTPS"]).get_ice_server_config(
        ChannelARN=arn, ClientId="port443-viewer")
    check("GetIceServerConfig on the port-less HTTPS endpoint", len(ice["IceServerList"]) >= 1, ice)

    master = connect_ws(eps["MASTER"]["WSS"], {"X-Amz-ChannelARN": arn})
    viewer = connect_ws(eps["VIEWER"]["WSS"], {"X-Amz-ChannelARN": arn, "X-Amz-ClientId": "port443-viewer"})
    check("MASTER and VIEWER WebSockets open on 443", True)
    offer = {"type": "offer", "sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\n"}
    viewer.sendall(ws_frame(json.dumps({"action": "SDP_OFFER", "messagePayload": b64json(offer)})))
    got = read_json(master)
    check("master receives the offer with senderClientId",
          got.get("messageType") == "SDP_OFFER" and got.get("senderClientId") == "port443-viewer", got)
    answer = {"type": "answer", "sdp": "v=0\r\ns=-\r\n"}
    master.sendall(ws_frame(json.dumps({"action": "SDP_ANSWER", "recipientClientId": "port443-viewer",
                                        "messagePayload": b64json(answer)})))
    got = read_json(viewer)
    check("viewer receives the answer without senderClientId",
          got.get("messageType") == "SDP_ANSWER" and "senderClientId" not in got, got)
    cand = {"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "0", "sdpMLineIndex": 0}
    master.sendall(ws_frame(json.dumps({"action": "ICE_CANDIDATE", "recipientClientId": "port443-viewer",
                                        "messagePayload": b64json(cand)})))
    viewer.sendall(ws_frame(json.dumps({"action": "ICE_CANDIDATE", "messagePayload": b64json(cand)})))
    a, b = read_json(viewer), read_json(master)
    check("candidates both ways", a.get("messageType") == "ICE_CANDIDATE"
          and b.get("messageType") == "ICE_CANDIDATE", (a, b))
    print("port-443 client: %d failed" % len(FAILED))
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:  # noqa: BLE001 - report any failure as one FAIL line
        check("port-443 client", False, "%s: %s" % (type(exc).__name__, exc))
        sys.exit(1)
