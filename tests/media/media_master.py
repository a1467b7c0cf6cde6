#!/usr/bin/python3
"""A KVS signaling MASTER that answers every viewer's offer and streams a VP8 test pattern.

For the media test and the demo: it connects to the signaling service (the local emulator, which
then relays viewers to it) with a SigV4-presigned ConnectAsMaster URL, like any master would.
One GStreamer webrtcbin per viewer: videotestsrc 320x240 @ 15 fps -> vp8enc -> webrtcbin
(sendonly). Candidates are trickled to the viewer with both sdpMid and sdpMLineIndex.

Environment: the emulator's env file (AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_SESSION_TOKEN, KVS_CHANNEL_ARN, KVS_WSS_ENDPOINT, KVS_CA_FILE). No STUN or TURN server is
used: host candidates only (run it where loopback is the only interface).

Options:
  --candidates-before-answer  send the local candidates first and the answer only once gathering
                              is complete (the out-of-order delivery viewers must handle)
  --max-seconds N             exit after N seconds (default 300)

Prints one line per event ("master: ..."); never prints credentials or the presigned URL.
Needs Debian's python3-gi, gir1.2-gst-plugins-bad-1.0, python3-websockets, python3-botocore.
"""
import argparse
import asyncio
import base64
import json
import os
import ssl
import sys
import urllib.parse

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("GstWebRTC", "1.0")
from gi.repository import Gst, GstSdp, GstWebRTC  # noqa: E402

import botocore.auth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402
import websockets  # noqa: E402

PIPELINE = (
    "videotestsrc is-live=true pattern=ball "
    "! video/x-raw,width=320,height=240,framerate=15/1 "
    "! vp8enc deadline=1 keyframe-max-dist=15 target-bitrate=300000 "
    "! rtpvp8pay pt=96 "
    "! application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000 "
    "! webrtcbin name=webrtc bundle-policy=max-bundle"
)


def log(msg):
    print(f"master: {msg}", flush=True)


def presigned_master_url(env):
    """ConnectAsMaster: GET wss://endpoint/?X-Amz-ChannelARN=..., SigV4 query auth (botocore)."""
    endpoint = env["KVS_WSS_ENDPOINT"].rstrip("/")
    https = "https://" + endpoint[len("wss://"):]
    query = urllib.parse.urlencode({"X-Amz-ChannelARN": env["KVS_CHANNEL_ARN"]})
    request = AWSRequest(method="GET", url=f"{https}/?{query}")
    creds = Credentials(
        env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], env.get("AWS_SESSION_TOKEN") or None
    )
    botocore.auth.SigV4QueryAuth(creds, "kinesisvideo", env["AWS_REGION"], expires=299).add_auth(
        request
    )
    return "wss://" + request.url[len("https://"):]


def mids_of(sdp_text):
    """The a=mid values of an SDP, in m-line order."""
    mids = []
    for line in sdp_text.splitlines():
        if line.startswith("m="):
            mids.append(None)
        elif line.startswith("a=mid:") and mids:
            mids[-1] = line[len("a=mid:"):].strip()
    return mids


class Session:
    """One viewer's peer connection. GStreamer calls back from its own threads; everything that
    must go out is handed to the asyncio loop through `send` (thread-safe)."""

    def __init__(self, master, viewer_id):
        self.master = master
        self.viewer_id = viewer_id
        self.pipeline = Gst.parse_launch(PIPELINE)
        self.webrtc = self.pipeline.get_by_name("webrtc")
        self.mids = []
        self.held_answer = None
        self.answer_sent = False
        self.webrtc.connect("on-ice-candidate", self.on_ice_candidate)
        self.webrtc.connect("notify::ice-gathering-state", self.on_gathering_state)
        self.webrtc.connect("notify::connection-state", self.on_connection_state)
        self.pipeline.set_state(Gst.State.PLAYING)

    def send(self, action, payload):
        self.master.send_threadsafe(action, self.viewer_id, payload)

    def on_offer(self, sdp_text):
        self.mids = mids_of(sdp_text)
        _, msg = GstSdp.SDPMessage.new_from_text(sdp_text)
        offer = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.OFFER, msg)
        self.webrtc.emit("set-remote-description", offer, None)
        promise = Gst.Promise.new_with_change_func(self.on_answer_created, None)
        self.webrtc.emit("create-answer", None, promise)

    def on_answer_created(self, promise, _data):
        reply = promise.get_reply()
        answer = reply.get_value("answer") if reply else None
        if answer is None:
            log(f"create-answer failed for {self.viewer_id}")
            return
        self.webrtc.emit("set-local-description", answer, None)
        payload = {"type": "answer", "sdp": answer.sdp.as_text()}
        if self.master.candidates_before_answer:
            self.held_answer = payload  # sent once gathering is complete
        else:
            self.answer_sent = True
            self.send("SDP_ANSWER", payload)

    def on_ice_candidate(self, _webrtc, mline, candidate):
        mid = self.mids[mline] if mline < len(self.mids) else None
        payload = {"candidate": candidate, "sdpMLineIndex": mline}
        if mid is not None:
            payload["sdpMid"] = mid
        self.send("ICE_CANDIDATE", payload)

    def on_gathering_state(self, webrtc, _pspec):
        state = webrtc.get_property("ice-gathering-state")
        if state == GstWebRTC.WebRTCICEGatheringState.COMPLETE and self.held_answer:
            log(f"gathering complete: answer to {self.viewer_id} after its candidates")
            self.answer_sent = True
            self.send("SDP_ANSWER", self.held_answer)
            self.held_answer = None

    def on_connection_state(self, webrtc, _pspec):
        state = webrtc.get_property("connection-state")
        log(f"peer {self.viewer_id}: {state.value_nick}")

    def on_remote_candidate(self, cand):
        mline = cand.get("sdpMLineIndex")
        if mline is None and cand.get("sdpMid") in self.mids:
            mline = self.mids.index(cand["sdpMid"])
        if mline is None or not cand.get("candidate"):
            log(f"candidate from {self.viewer_id} without a usable m-line: dropped")
            return
        self.webrtc.emit("add-ice-candidate", int(mline), cand["candidate"])

    def stop(self):
        self.pipeline.set_state(Gst.State.NULL)


class Master:
    def __init__(self, args):
        self.candidates_before_answer = args.candidates_before_answer
        self.loop = None
        self.outbox = None
        self.sessions = {}

    def send_threadsafe(self, action, viewer_id, payload):
        frame = json.dumps(
            {
                "action": action,
                "recipientClientId": viewer_id,
                "messagePayload": base64.b64encode(json.dumps(payload).encode()).decode(),
            }
        )
        self.loop.call_soon_threadsafe(self.outbox.put_nowait, (action, viewer_id, frame))

    async def sender(self, ws):
        while True:
            action, viewer_id, frame = await self.outbox.get()
            await ws.send(frame)
            log(f"sent {action} to {viewer_id}")

    def on_frame(self, text):
        try:
            msg = json.loads(text)
            kind = msg.get("messageType")
            sender = msg.get("senderClientId") or ""
            payload = json.loads(base64.b64decode(msg.get("messagePayload") or "") or "null")
        except (ValueError, TypeError):
            log("ignored a frame that is not a signaling message")
            return
        if kind == "SDP_OFFER" and isinstance(payload, dict) and payload.get("sdp"):
            log(f"offer from {sender}")
            old = self.sessions.pop(sender, None)
            if old:
                old.stop()
            session = Session(self, sender)
            self.sessions[sender] = session
            session.on_offer(payload["sdp"])
        elif kind == "ICE_CANDIDATE" and isinstance(payload, dict) and sender in self.sessions:
            self.sessions[sender].on_remote_candidate(payload)
        else:
            log(f"ignored {kind} from {sender or '-'}")

    async def run(self, env, max_seconds):
        self.loop = asyncio.get_running_loop()
        self.outbox = asyncio.Queue()
        ctx = ssl.create_default_context(cafile=env.get("KVS_CA_FILE") or None)
        async with websockets.connect(presigned_master_url(env), ssl=ctx, max_size=65536) as ws:
            log("connected as master")
            sender = asyncio.create_task(self.sender(ws))
            try:
                async with asyncio.timeout(max_seconds):
                    async for text in ws:
                        if isinstance(text, str):
                            self.on_frame(text)
            finally:
                sender.cancel()
                for s in self.sessions.values():
                    s.stop()
        log("signaling closed")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates-before-answer", action="store_true")
    parser.add_argument("--max-seconds", type=float, default=300)
    args = parser.parse_args()
    missing = [
        k
        for k in ("AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "KVS_CHANNEL_ARN",
                  "KVS_WSS_ENDPOINT")
        if not os.environ.get(k)
    ]
    if missing:
        sys.exit(f"master: environment variable {missing[0]} is not set")
    Gst.init(None)
    # The first DTLS element of a process generates its certificate (RSA 2048, ~1 s on a small
    # machine); do it now rather than while a viewer waits for its answer.
    Gst.ElementFactory.make("dtlssrtpdec")
    try:
        asyncio.run(Master(args).run(os.environ, args.max_seconds))
    except TimeoutError:
        log(f"--max-seconds {args.max_seconds:g} reached")
    except (OSError, websockets.exceptions.WebSocketException) as e:
        sys.exit(f"master: signaling failed: {e}")


if __name__ == "__main__":
    main()
