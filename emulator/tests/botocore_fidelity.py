"""Fidelity check: drive the emulator with botocore's own signers and clients.

Run by tests/botocore.rs with the emulator's KEY=VALUE variables in the environment
(AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, [AWS_SESSION_TOKEN], KVS_CHANNEL_NAME,
KVS_CHANNEL_ARN, KVS_CONTROL_PLANE_URL, KVS_WSS_ENDPOINT, KVS_HTTPS_ENDPOINT, KVS_CA_FILE,
KVS_CLIENT_ID). Prints one line per case ("PASS name" / "FAIL name: why") and exits non-zero
when any case fails.
"""

import base64
import datetime
import http.client
import json
import os
import socket
import ssl
import struct
import sys
import urllib.parse

import botocore.auth
import botocore.session
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore import UNSIGNED
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

ENV = os.environ
REGION = ENV["AWS_REGION"]
AKID = ENV["AWS_ACCESS_KEY_ID"]
SECRET = ENV["AWS_SECRET_ACCESS_KEY"]
TOKEN = ENV.get("AWS_SESSION_TOKEN")
ARN = ENV["KVS_CHANNEL_ARN"]
CHANNEL = ENV["KVS_CHANNEL_NAME"]
CA = ENV["KVS_CA_FILE"]
CLIENT_ID = ENV["KVS_CLIENT_ID"]
TIMEOUT = 10

CTX = ssl.create_default_context(cafile=CA)
RESULTS = []
_REAL_NOW = botocore.auth.get_current_datetime


def report(name, ok, why=""):
    RESULTS.append(ok)
    print(("PASS " if ok else "FAIL ") + name + ("" if ok else ": " + why), flush=True)


def host_port(url):
    u = urllib.parse.urlsplit(url)
    return u.hostname, u.port


def creds(secret=SECRET):
    return Credentials(AKID, secret, TOKEN)


def at(offset_seconds):
    """Make botocore sign as if the clock were shifted."""
    real = _REAL_NOW()

    def fake():
        return real + datetime.timedelta(seconds=offset_seconds)

    botocore.auth.get_current_datetime = fake


def clock_restore():
    botocore.auth.get_current_datetime = _REAL_NOW


# --- WebSocket (ConnectAsViewer) with SigV4QueryAuth -------------------------------------------


def presign_viewer(secret=SECRET, sign_host=None, expires=299, arn=ARN):
    host, port = host_port(ENV["KVS_WSS_ENDPOINT"])
    netloc = sign_host or "%s:%d" % (host, port)
    query = urllib.parse.urlencode({"X-Amz-ChannelARN": arn, "X-Amz-ClientId": CLIENT_ID})
    req = AWSRequest(method="GET", url="https://%s/?%s" % (netloc, query))
    SigV4QueryAuth(creds(secret), "kinesisvideo", REGION, expires=expires).add_auth(req)
    u = urllib.parse.urlsplit(req.url)
    return u.path or "/", u.query


def ws_frame(text):
    data = text.encode()
    mask = os.urandom(4)
    head = bytes([0x81])
    n = len(data)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def read_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError("connection closed")
        buf += chunk
    return buf


def read_ws_text(s):
    while True:
        b0, b1 = read_exact(s, 2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack(">H", read_exact(s, 2))[0]
        elif n == 127:
            n = struct.unpack(">Q", read_exact(s, 8))[0]
        payload = read_exact(s, n)
        if b0 & 0x0F == 0x1:
            return payload.decode()


def ws_upgrade(path, query, host_header=None):
    """Returns (status, headers dict lower-case, body, socket)."""
    host, port = host_port(ENV["KVS_WSS_ENDPOINT"])
    raw = socket.create_connection((host, port), timeout=TIMEOUT)
    s = CTX.wrap_socket(raw, server_hostname=host)
    key = base64.b64encode(os.urandom(16)).decode()
    req = (
        "GET %s?%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
        % (path, query, host_header or "%s:%d" % (host, port), key)
    )
    s.sendall(req.encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            break
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    body = rest
    want = int(headers.get("content-length", "0") or 0)
    while status != 101 and len(body) < want:
        chunk = s.recv(4096)
        if not chunk:
            break
        body += chunk
    return status, headers, body.decode(errors="replace"), s


def expect_ws_denied(name, path, query, host_header=None, message_prefix=None):
    status, headers, body, s = ws_upgrade(path, query, host_header)
    s.close()
    et = headers.get("x-amzn-errortype", "")
    ok = status == 403 and et.split(":")[0] == "AccessDeniedException" and "date" in headers
    msg = json.loads(body).get("message", "") if body else ""
    if message_prefix and not msg.startswith(message_prefix):
        ok = False
    report(name, ok, "status=%s type=%s message=%r" % (status, et, msg))


def wss_cases():
    path, query = presign_viewer()
    status, headers, body, s = ws_upgrade(path, query)
    if status != 101:
        report("wss presigned by SigV4QueryAuth is accepted", False, "status %s %s" % (status, body))
    else:
        offer = {"type": "offer", "sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
                 "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=recvonly\r\n"
                 "a=rtpmap:96 H264/90000\r\n"}
        frame = {"action": "SDP_OFFER", "messagePayload": base64.b64encode(json.dumps(offer).encode()).decode()}
        s.sendall(ws_frame(json.dumps(frame)))
        answer = json.loads(read_ws_text(s))
        ok = answer.get("messageType") == "SDP_ANSWER" and "senderClientId" not in answer
        payload = json.loads(base64.b64decode(answer["messagePayload"]))
        ok = ok and payload.get("type") == "answer" and "m=video" in payload.get("sdp", "")
        report("wss presigned by SigV4QueryAuth is accepted", ok, repr(answer)[:200])
    s.close()

    sig = urllib.parse.parse_qs(query)["X-Amz-Signature"][0]
    flipped = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    expect_ws_denied("wss tampered signature is denied", path, query.replace(sig, flipped),
                     message_prefix="The request signature we calculated does not match")

    path2, query2 = presign_viewer(secret="x" * 40)
    expect_ws_denied("wss wrong secret is denied", path2, query2)

    at(-15 * 60)
    try:
        path3, query3 = presign_viewer()
    finally:
        clock_restore()
    expect_ws_denied("wss stale date is denied", path3, query3, message_prefix="Signature expired")

    _, port = host_port(ENV["KVS_WSS_ENDPOINT"])
    path4, query4 = presign_viewer(sign_host="localhost:%d" % port)
    expect_ws_denied("wss wrong host is denied", path4, query4)


# --- Control plane with botocore clients and SigV4Auth ----------------------------------------


def client(service, endpoint):
    session = botocore.session.get_session()
    return session.create_client(
        service,
        region_name=REGION,
        endpoint_url=endpoint,
        verify=CA,
        aws_access_key_id=AKID,
        aws_secret_access_key=SECRET,
        aws_session_token=TOKEN,
    )


def control_plane_cases():
    kv = client("kinesisvideo", ENV["KVS_CONTROL_PLANE_URL"])
    d = kv.describe_signaling_channel(ChannelName=CHANNEL)["ChannelInfo"]
    report("botocore DescribeSignalingChannel is accepted and parsed",
           d["ChannelARN"] == ARN and d["ChannelStatus"] == "ACTIVE"
           and isinstance(d["CreationTime"], datetime.datetime)
           and d["SingleMasterConfiguration"]["MessageTtlSeconds"] == 60, repr(d))

    e = kv.get_signaling_channel_endpoint(
        ChannelARN=ARN,
        SingleMasterChannelEndpointConfiguration={"Protocols": ["WSS", "HTTPS"], "Role": "VIEWER"},
    )["ResourceEndpointList"]
    eps = {x["Protocol"]: x["ResourceEndpoint"] for x in e}
    report("botocore GetSignalingChannelEndpoint is accepted",
           eps.get("WSS") == ENV["KVS_WSS_ENDPOINT"] and eps.get("HTTPS") == ENV["KVS_HTTPS_ENDPOINT"], repr(e))

    sig = client("kinesis-video-signaling", eps["HTTPS"])
    ice = sig.get_ice_server_config(ChannelARN=ARN, ClientId=CLIENT_ID, Service="TURN")["IceServerList"]
    ok = len(ice) == 2 and all(len(s["Uris"]) == 3 and s["Ttl"] == 300 for s in ice)
    user = ice[0]["Username"] if ice else ""
    exp, _, tail = user.partition(":")
    ok = ok and exp.isdigit() and base64.b64decode(tail).decode() == "v1:" + ARN
    ok = ok and len(base64.b64decode(ice[0]["Password"])) == 32
    report("botocore GetIceServerConfig is accepted", ok, repr(ice)[:300])

    try:
        kv.describe_signaling_channel(ChannelName="no-such-channel")
        report("botocore sees ResourceNotFoundException", False, "no error")
    except ClientError as err:
        report("botocore sees ResourceNotFoundException",
               err.response["Error"]["Code"] == "ResourceNotFoundException"
               and err.response["ResponseMetadata"]["HTTPStatusCode"] == 404, repr(err.response))

    def client_error(name, expected_code, **kwargs):
        try:
            c = botocore.session.get_session().create_client(
                "kinesisvideo", region_name=REGION, endpoint_url=ENV["KVS_CONTROL_PLANE_URL"],
                verify=CA, **kwargs)
            c.describe_signaling_channel(ChannelName=CHANNEL)
            report(name, False, "no error")
        except ClientError as err:
            report(name, err.response["Error"]["Code"] == expected_code
                   and err.response["ResponseMetadata"]["HTTPStatusCode"] == 403, repr(err.response))

    client_error("botocore client with a wrong secret sees InvalidSignatureException",
                 "InvalidSignatureException", aws_access_key_id=AKID,
                 aws_secret_access_key="y" * 40, aws_session_token=TOKEN)
    client_error("botocore client with an unknown key sees UnrecognizedClientException",
                 "UnrecognizedClientException", aws_access_key_id="AKIAUNKNOWNUNKNOWN00",
                 aws_secret_access_key=SECRET, aws_session_token=TOKEN)
    client_error("botocore unsigned client sees MissingAuthenticationTokenException",
                 "MissingAuthenticationTokenException",
                 config=Config(signature_version=UNSIGNED))


def signed_post(path, body, secret=SECRET, sign_host=None, tamper=False):
    host, port = host_port(ENV["KVS_CONTROL_PLANE_URL"])
    netloc = sign_host or "%s:%d" % (host, port)
    req = AWSRequest(method="POST", url="https://%s%s" % (netloc, path), data=body,
                     headers={"Content-Type": "application/json"})
    SigV4Auth(creds(secret), "kinesisvideo", REGION).add_auth(req)
    headers = dict(req.headers.items())
    if tamper:
        a = headers["Authorization"]
        headers["Authorization"] = a[:-1] + ("0" if a[-1] != "0" else "1")
    headers["Host"] = "%s:%d" % (host, port)
    conn = http.client.HTTPSConnection(host, port, context=CTX, timeout=TIMEOUT)
    conn.request("POST", path, body=body, headers=headers)
    r = conn.getresponse()
    data = r.read().decode()
    out = (r.status, {k.lower(): v for k, v in r.getheaders()}, data)
    conn.close()
    return out


def expect_post_denied(name, status, headers, body, message_prefix=None,
                       error_type="InvalidSignatureException"):
    # The control plane answers auth failures with the auth layer's types (not AccessDenied).
    et = headers.get("x-amzn-errortype", "")
    msg = json.loads(body).get("message", "") if body else ""
    ok = status == 403 and et.split(":")[0] == error_type and "date" in headers
    if message_prefix and not msg.startswith(message_prefix):
        ok = False
    report(name, ok, "status=%s type=%s message=%r" % (status, et, msg))


def sigv4auth_cases():
    body = json.dumps({"ChannelName": CHANNEL})
    st, h, b = signed_post("/describeSignalingChannel", body)
    report("SigV4Auth POST is accepted", st == 200 and json.loads(b)["ChannelInfo"]["ChannelARN"] == ARN, b)
    expect_post_denied("SigV4Auth tampered signature is denied",
                       *signed_post("/describeSignalingChannel", body, tamper=True),
                       message_prefix="The request signature we calculated does not match")
    expect_post_denied("SigV4Auth wrong secret is denied",
                       *signed_post("/describeSignalingChannel", body, secret="z" * 40))
    at(-15 * 60)
    try:
        res = signed_post("/describeSignalingChannel", body)
    finally:
        clock_restore()
    expect_post_denied("SigV4Auth stale date is denied", *res, message_prefix="Signature expired")
    _, port = host_port(ENV["KVS_CONTROL_PLANE_URL"])
    expect_post_denied("SigV4Auth wrong host is denied",
                       *signed_post("/describeSignalingChannel", body, sign_host="localhost:%d" % port))


def management_cases():
    """ListSignalingChannels / Delete / Update / tags through botocore's own client, as CI
    scripts call them; a channel created at run time works for signaling at once."""
    kv = botocore.session.get_session().create_client(
        "kinesisvideo", region_name=REGION, endpoint_url=ENV["KVS_CONTROL_PLANE_URL"], verify=CA,
        aws_access_key_id=AKID, aws_secret_access_key=SECRET, aws_session_token=TOKEN)
    arns = {}
    for name in ("ci-a-1", "ci-a-2", "ci-b-1"):
        arns[name] = kv.create_signaling_channel(
            ChannelName=name, Tags=[{"Key": "owner", "Value": "ci"}])["ChannelARN"]
    listed = kv.list_signaling_channels(
        ChannelNameCondition={"ComparisonOperator": "BEGINS_WITH", "ComparisonValue": "ci-a"})
    names = [c["ChannelName"] for c in listed["ChannelInfoList"]]
    report("ListSignalingChannels with ChannelNameCondition BEGINS_WITH",
           names == ["ci-a-1", "ci-a-2"] and "NextToken" not in listed, repr(listed)[:300])
    pages = list(kv.get_paginator("list_signaling_channels").paginate(PaginationConfig={"PageSize": 1}))
    all_names = [c["ChannelName"] for p in pages for c in p["ChannelInfoList"]]
    report("ListSignalingChannels paginates with NextToken",
           len(pages) == 4 and all_names == [CHANNEL, "ci-a-1", "ci-a-2", "ci-b-1"]
           and all(isinstance(p["ChannelInfoList"][0]["CreationTime"], datetime.datetime) for p in pages),
           repr(all_names))

    path, query = presign_viewer(arn=arns["ci-a-1"])
    status, _, body, sock = ws_upgrade(path, query)
    sock.close()
    report("a channel created at run time accepts a viewer at once", status == 101, body)

    info = kv.describe_signaling_channel(ChannelARN=arns["ci-a-1"])["ChannelInfo"]
    kv.update_signaling_channel(ChannelARN=arns["ci-a-1"], CurrentVersion=info["Version"],
                                SingleMasterConfiguration={"MessageTtlSeconds": 30})
    after = kv.describe_signaling_channel(ChannelARN=arns["ci-a-1"])["ChannelInfo"]
    report("UpdateSignalingChannel sets MessageTtlSeconds and a new Version",
           after["SingleMasterConfiguration"]["MessageTtlSeconds"] == 30
           and after["Version"] != info["Version"], repr(after))
    try:
        kv.update_signaling_channel(ChannelARN=arns["ci-a-1"], CurrentVersion=info["Version"],
                                    SingleMasterConfiguration={"MessageTtlSeconds": 40})
        report("UpdateSignalingChannel with a stale version is VersionMismatchException", False, "no error")
    except ClientError as err:
        report("UpdateSignalingChannel with a stale version is VersionMismatchException",
               err.response["Error"]["Code"] == "VersionMismatchException"
               and err.response["ResponseMetadata"]["HTTPStatusCode"] == 400, repr(err.response))

    kv.tag_resource(ResourceARN=arns["ci-b-1"], Tags=[{"Key": "stage", "Value": "test"},
                                                      {"Key": "owner", "Value": "me"}])
    tags = kv.list_tags_for_resource(ResourceARN=arns["ci-b-1"])["Tags"]
    kv.untag_resource(ResourceARN=arns["ci-b-1"], TagKeyList=["stage"])
    tags2 = kv.list_tags_for_resource(ResourceARN=arns["ci-b-1"])["Tags"]
    report("TagResource / UntagResource / ListTagsForResource",
           tags == {"owner": "me", "stage": "test"} and tags2 == {"owner": "me"}, repr((tags, tags2)))

    for name in ("ci-a-1", "ci-a-2", "ci-b-1"):
        kv.delete_signaling_channel(ChannelARN=arns[name])
    left = [c["ChannelName"] for c in kv.list_signaling_channels()["ChannelInfoList"]]
    try:
        kv.describe_signaling_channel(ChannelName="ci-a-1")
        gone = False
    except ClientError as err:
        gone = err.response["Error"]["Code"] == "ResourceNotFoundException"
    report("DeleteSignalingChannel removes the channels", left == [CHANNEL] and gone, repr(left))


def main():
    for group in (wss_cases, control_plane_cases, sigv4auth_cases, management_cases):
        try:
            group()
        except Exception as exc:  # report and keep going
            report(group.__name__, False, "%s: %s" % (type(exc).__name__, exc))
    failed = RESULTS.count(False)
    print("fidelity cases: %d of %d failed" % (failed, len(RESULTS)))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
