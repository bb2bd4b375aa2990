#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
# A WHEP viewer built on GStreamer's webrtcbin, the WebRTC stack of
# GStreamer-based clients such as video-wall players. It offers to receive
# H.264, posts the offer to the hub, decodes what arrives and reports, as
# JSON lines on stdout, when it played its first frame and how the session
# ended. The hub's close_notify shows as the DTLS transport's "closed" state.
"""Watch one camera through the hub with webrtcbin and report as JSON lines."""

import argparse
import json
import sys
import time
import urllib.error
import urllib.request

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("GstWebRTC", "1.0")
gi.require_version("Nice", "0.1")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC, Nice  # noqa: E402  (after require_version)

OFFER_CAPS = ("application/x-rtp,media=video,encoding-name=H264,payload=102,clock-rate=90000,"
              "packetization-mode=(string)1,profile-level-id=(string)42e01f")


class Viewer:
    """One webrtcbin viewer and what it saw."""

    def __init__(self, args):
        self.args = args
        self.loop = GLib.MainLoop()
        self.started = time.monotonic()
        self.frames = 0
        self.first_frame_ms = None
        self.dtls_states = []
        self.session_url = None
        self.error = None

        self.pipeline = Gst.Pipeline.new("viewer")
        self.webrtc = Gst.ElementFactory.make("webrtcbin", "webrtc")
        self.webrtc.set_property("bundle-policy", GstWebRTC.WebRTCBundlePolicy.MAX_BUNDLE)
        self.add_local_address(args.local_address)
        self.pipeline.add(self.webrtc)
        self.webrtc.emit("add-transceiver", GstWebRTC.WebRTCRTPTransceiverDirection.RECVONLY,
                         Gst.Caps.from_string(OFFER_CAPS))
        self.webrtc.connect("pad-added", self.on_pad_added)
        self.webrtc.connect("notify::ice-gathering-state", self.on_gathering_state)

    def add_local_address(self, text):
        """Makes libnice gather on @text: on its own it skips loopback, the
        only interface of the test's network namespace."""
        address = Nice.Address()
        address.init()
        if not address.set_from_string(text):
            raise SystemExit(f"webrtcbin-viewer.py: --local-address {text!r} is not an IP address")
        # With PyGObject 3.42, dropping a temporary wrapper of the ICE object
        # freed it under webrtcbin (GLib criticals followed), so the wrappers
        # live as long as the viewer.
        self.ice = self.webrtc.get_property("ice-agent")
        self.nice_agent = self.ice.get_property("agent")
        self.nice_agent.add_local_address(address)

    def elapsed_ms(self):
        return round((time.monotonic() - self.started) * 1000, 1)

    def emit(self, event, **fields):
        print(json.dumps({"event": event, "ms": self.elapsed_ms(), **fields}), flush=True)

    def fail(self, message):
        self.error = message
        self.loop.quit()

    # ---- the offer and the SDP answer ---------------------------------------

    def start(self):
        self.pipeline.set_state(Gst.State.PLAYING)
        promise = Gst.Promise.new_with_change_func(self.on_offer_created, None)
        self.webrtc.emit("create-offer", None, promise)

    def on_offer_created(self, promise, _data):
        # The reply must outlive get_value(): with a temporary in its place,
        # PyGObject frees the structure first and the offer comes out NULL.
        reply = promise.get_reply()
        offer = reply.get_value("offer")
        self.webrtc.emit("set-local-description", offer, Gst.Promise.new())

    def on_gathering_state(self, webrtc, _pspec):
        if webrtc.get_property("ice-gathering-state") == GstWebRTC.WebRTCICEGatheringState.COMPLETE:
            GLib.idle_add(self.post_offer)

    def post_offer(self):
        sdp = self.webrtc.get_property("local-description").sdp.as_text()
        request = urllib.request.Request(f"{self.args.url}/whep/cameras/{self.args.camera}", data=sdp.encode(),
                                         method="POST")
        request.add_header("Content-Type", "application/sdp")
        request.add_header("Authorization", "Bearer " + self.args.token)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                answer_text = response.read().decode()
                location = response.headers.get("Location", "")
        except (urllib.error.URLError, OSError) as error:
            self.fail(f"POST failed: {error}")
            return False

        self.session_url = location
        self.emit("answer", session_url=location)
        _, message = GstSdp.SDPMessage.new_from_text(answer_text)
        answer = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, message)
        self.webrtc.emit("set-remote-description", answer, Gst.Promise.new())
        self.watch_dtls()
        return False

    def watch_dtls(self):
        transceiver = self.webrtc.emit("get-transceiver", 0)
        transport = transceiver.get_property("receiver").get_property("transport")
        transport.connect("notify::state", self.on_dtls_state)

    def on_dtls_state(self, transport, _pspec):
        state = transport.get_property("state").value_nick
        self.dtls_states.append(state)
        GLib.idle_add(self.emit, "dtls", state=state)
        if state in ("closed", "failed"):
            GLib.idle_add(self.loop.quit)

    # ---- decoding -------------------------------------------------------------

    def on_pad_added(self, _webrtc, pad):
        if pad.get_direction() != Gst.PadDirection.SRC:
            return
        decoder = Gst.parse_bin_from_description(
            "rtph264depay ! h264parse ! avdec_h264 ! fakesink name=frames signal-handoffs=true sync=false", True)
        self.pipeline.add(decoder)
        decoder.sync_state_with_parent()
        decoder.get_by_name("frames").connect("handoff", self.on_frame)
        pad.link(decoder.get_static_pad("sink"))

    def on_frame(self, _sink, _buffer, _pad):
        self.frames += 1
        if self.frames == 1:
            self.first_frame_ms = self.elapsed_ms()
            GLib.idle_add(self.emit, "first-frame")
        if self.frames == self.args.frames:
            GLib.idle_add(self.emit, "playing", frames=self.frames)

    def run(self):
        GLib.timeout_add_seconds(self.args.timeout, self.on_timeout)
        self.start()
        self.loop.run()
        self.pipeline.set_state(Gst.State.NULL)
        self.emit("end", frames=self.frames, first_frame_ms=self.first_frame_ms, dtls_states=self.dtls_states,
                  error=self.error)
        return 0 if self.error is None else 1

    def on_timeout(self):
        self.emit("timeout")
        self.loop.quit()
        return False


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True, help="hub base URL, e.g. http://127.0.0.1:8080")
    parser.add_argument("--camera", required=True, help="camera id")
    parser.add_argument("--token", required=True, help="bearer token")
    parser.add_argument("--frames", type=int, default=25, help="decoded frames before the playing event")
    parser.add_argument("--timeout", type=int, default=30, help="seconds before the viewer gives up")
    parser.add_argument("--local-address", default="127.0.0.1", help="address of the viewer's ICE candidates")
    args = parser.parse_args()

    Gst.init(None)
    return Viewer(args).run()


if __name__ == "__main__":
    sys.exit(main())
