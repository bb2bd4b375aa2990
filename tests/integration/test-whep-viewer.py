#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
# Integration test of WHEP relay with cimshub-whep-viewer as the client: it
# starts the camera simulator and the hub on 127.0.0.1, runs the viewer in
# several modes and checks its JSON results against the hub's /metrics.
"""Run the WHEP viewer integration tests and print one PASS/FAIL line each.

Exit status is 0 only when every test passes. The last line is
"N passed, M failed". A 50-viewer first-keyframe measurement is printed,
not asserted.
"""

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "browser"))
from run_browser_test import (  # noqa: E402  (the path is set just above)
    Deadline, Processes, api_request, free_tcp_port, http_get, libconfig_string, make_key_pair, read_metric_sum,
    report_results, run_checked, udp_range_is_free, wait_for_healthz, wait_for_output)

H264_CAMERA = "bos-0001"
H265_CAMERA = "bos-0002"
H265_SIZE = (320, 240)
FIRST_KEYFRAME_LIMIT_MS = 1000.0
WATCH_S = 3
# At 25 fps the pattern camera sends well over one packet a frame.
MIN_PACKETS_PER_S = 20
# A lost first DTLS flight must be retransmitted within this time after the
# SDP answer arrives. OpenSSL alone waits 1 s.
LOST_FLIGHT_LIMIT_MS = 600
# A viewer that applies the SDP answer this late gets the hub's first ICE
# check before it. It must still connect within SLOW_ANSWER_MARGIN_MS of
# applying the SDP answer, because one missed wake-up of its loop costs 1 s.
SLOW_ANSWER_DELAY_MS = 150
SLOW_ANSWER_MARGIN_MS = 400
WEBRTCBIN_VIEWER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "webrtcbin-viewer.py")
WEBRTCBIN_TIMEOUT_S = 30
# webrtcbin's jitter buffer delays packets by this much (its default latency).
WEBRTCBIN_LATENCY_MS = 200


def free_udp_range(count, attempts=200):
    """Finds @count consecutive free UDP ports on 127.0.0.1 below the usual
    ephemeral range, where other programs' sockets rarely sit."""
    for _ in range(attempts):
        first = random.randrange(20000, 32000 - count)
        if udp_range_is_free(first, count):
            return first, first + count - 1
    raise RuntimeError(f"no {count} consecutive free UDP ports found in {attempts} attempts")


def write_hub_config(path, settings):
    """Writes a hub configuration with one H.264 and one H.265 camera of
    Boston and two jurisdictions, Boston and Chelsea."""
    jurisdictions = ",\n".join(
        f"""  {{ id = "{name}"; name = "{name.capitalize()}"; participates = true;
    token_issuer = "https://idp.{name}.test";
    token_key = {libconfig_string(settings["keys"][name])}; }}"""
        for name in ("boston", "chelsea"))
    cameras = ",\n".join(
        f"""  {{ id = "{camera}"; jurisdiction = "boston"; location = "Test bench camera {camera}";
    brand_model = "cimshub-camera-sim"; installed = "2024-01-01";
    source = "rtsp://127.0.0.1:{settings["sim_port"]}/{camera}";
    shared_with = []; restricted = false; }}"""
        for camera in (H264_CAMERA, H265_CAMERA))
    text = f"""# Written by test-whep-viewer.py for one test run.
hub: {{
  http_listen = "127.0.0.1:{settings["http_port"]}";
  ice_udp_ports = [{settings["ice_ports"][0]}, {settings["ice_ports"][1]}];
  public_addresses = ["127.0.0.1"];
  state_dir = {libconfig_string(settings["state_dir"])};
  idle_source_stop_s = 30;
  whep_rate_per_client = 1000;
  whep_rate_total = 1000;
  max_sessions_per_user = 1000;
  max_sessions_per_camera = 1000;
}};
jurisdictions = (
{jurisdictions}
);
agencies = ();
cameras = (
{cameras}
);
viewer_profiles = (
  {{ name = "browser"; codecs = ["h264", "h265"];
    max_width = 1920; max_height = 1080; max_fps = 30; max_kbps = 4000; }}
);
"""
    with open(path, "w", encoding="utf-8") as config_file:
        config_file.write(text)


class ViewerRun:
    """The outcome of one cimshub-whep-viewer process."""

    def __init__(self, returncode, viewers, summary, events, stderr):
        self.returncode = returncode
        self.viewers = viewers
        self.summary = summary
        self.events = events
        self.stderr = stderr


class Rig:
    """The camera simulator and hub of one test run, and the checks."""

    def __init__(self, args):
        self.args = args
        self.deadline = Deadline(args.time_limit)
        self.temp_dir = tempfile.mkdtemp(prefix="cimshub-whep-viewer-")
        self.processes = Processes(self.temp_dir)
        self.results = []
        self.hub_url = None
        self.token_paths = {}
        footage = os.environ.get("CIMS_TEST_FOOTAGE")
        self.footage = footage if footage and os.path.isfile(footage) else None
        self.h264_size = (768, 576) if self.footage else (640, 480)

    def record(self, name, problems, detail):
        passed = not problems
        self.results.append((name, passed))
        text = detail + ("; " + "; ".join(problems) if problems else "")
        print(f"{'PASS' if passed else 'FAIL'}: {name}: {text}", flush=True)

    # ---- set-up -------------------------------------------------------------

    def camera_specs(self):
        """Simulator cameras that accept RTSP over TCP only, so that a loss the
        viewer counts happened between the hub and the viewer."""
        if self.footage:
            h264 = (f"path={H264_CAMERA},codec=h264,width=768,height=576,fps=10,keyint=20,"
                    "source=file,transport=tcp")
        else:
            h264 = (f"path={H264_CAMERA},codec=h264,width=640,height=480,fps=25,keyint=20,"
                    "source=pattern,transport=tcp")
        h265 = (f"path={H265_CAMERA},codec=h265,width={H265_SIZE[0]},height={H265_SIZE[1]},"
                "fps=25,keyint=20,source=pattern,transport=tcp")
        return [h264, h265]

    def setup(self):
        keys = {name: make_key_pair(self.temp_dir, name) for name in ("boston", "chelsea")}
        sim_port = free_tcp_port()
        http_port = free_tcp_port()
        self.hub_url = f"http://127.0.0.1:{http_port}"
        state_dir = os.path.join(self.temp_dir, "state")
        os.mkdir(state_dir)
        config_path = os.path.join(self.temp_dir, "hub.conf")
        write_hub_config(config_path, {
            "http_port": http_port, "sim_port": sim_port, "ice_ports": free_udp_range(120),
            "state_dir": state_dir, "keys": {name: pair[1] for name, pair in keys.items()},
        })

        self.admin_token = self.mint_token(keys["boston"][0], "boston", "system-administrator", "")
        for name in ("boston", "chelsea"):
            path = os.path.join(self.temp_dir, name + ".token")
            with open(path, "w", encoding="utf-8") as token_file:
                token_file.write(self.mint_token(keys[name][0], name) + "\n")
            self.token_paths[name] = path

        argv = [self.args.camera_sim, "--address", "127.0.0.1", "--port", str(sim_port)]
        for spec in self.camera_specs():
            argv += ["--camera", spec]
        if self.footage:
            argv += ["--footage", self.footage]
        sim = self.processes.start("camera-sim", argv)
        if not wait_for_output(sim, self.processes.log_paths("camera-sim")[0],
                               "cimshub-camera-sim: serving", self.deadline.left(15)):
            raise RuntimeError("the camera simulator did not print its serving line")

        hub = self.processes.start("cimshub", [self.args.cimshub, "--config", config_path])
        if not wait_for_healthz(hub, self.hub_url, self.deadline.left(20)):
            raise RuntimeError(f"the hub did not answer 200 on {self.hub_url}/healthz")

    def mint_token(self, private_key, jurisdiction, roles="viewer", permissions="view"):
        output = run_checked([self.args.cimshubctl, "token", "mint", "--key", private_key,
                              "--issuer", f"https://idp.{jurisdiction}.test",
                              "--subject", f"{jurisdiction}-bench-{roles}",
                              "--name", f"{jurisdiction.capitalize()} Bench Viewer",
                              "--jurisdiction", jurisdiction, "--permissions", permissions,
                              "--roles", roles, "--ttl", "900"], "cimshubctl token mint")
        token = output.strip().splitlines()[-1].strip() if output.strip() else ""
        if token.count(".") != 2:
            raise RuntimeError(f"cimshubctl token mint printed no JWT: {output!r}")
        return token

    # ---- running the viewer ---------------------------------------------------

    def run_viewer(self, *extra, camera=H264_CAMERA, jurisdiction="boston", timeout_s=40):
        argv = [self.args.whep_viewer, "--url", self.hub_url, "--camera", camera,
                "--token-file", self.token_paths[jurisdiction], "--json", "--events",
                "--idle-timeout", "3000", *extra]
        try:
            result = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                    timeout=self.deadline.left(timeout_s))
        except subprocess.TimeoutExpired as error:
            return ViewerRun(None, [], None, [], f"timed out: {error}")
        viewers, events, summary = [], [], None
        for line in result.stdout.splitlines():
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if "event" in obj:
                events.append(obj)
            elif obj.get("summary"):
                summary = obj
            else:
                viewers.append(obj)
        return ViewerRun(result.returncode, viewers, summary, events, result.stderr)

    def metric(self, name):
        """Returns the metric's value, or NaN when /metrics or the metric is
        missing, so that every comparison with it fails."""
        value = read_metric_sum(self.hub_url, name)
        return float("nan") if value is None else value

    def wait_sessions_active(self, expected, timeout_s=5):
        end = time.monotonic() + self.deadline.left(timeout_s)
        while time.monotonic() < end:
            if self.metric("cimshub_sessions_active") == expected:
                return True
            time.sleep(0.1)
        return False

    # ---- checks -----------------------------------------------------------------

    def watch_problems(self, run, n_viewers, expected_size, codec="H264"):
        """Problems with a run of @n_viewers that each watched for WATCH_S
        seconds and left with DELETE."""
        problems = []
        if run.returncode != 0:
            problems.append(f"exit status {run.returncode}: {run.stderr.strip()[-300:]}")
        if len(run.viewers) != n_viewers:
            problems.append(f"expected {n_viewers} viewer results, got {len(run.viewers)}")
        for viewer in run.viewers:
            tag = f"viewer {viewer.get('viewer')}"
            first_keyframe = viewer.get("first_keyframe_ms")
            if viewer.get("status") != 201:
                problems.append(f"{tag}: status {viewer.get('status')} ({viewer.get('error')})")
                continue
            if first_keyframe is None or first_keyframe > FIRST_KEYFRAME_LIMIT_MS:
                problems.append(f"{tag}: first keyframe {first_keyframe} ms, limit "
                                f"{FIRST_KEYFRAME_LIMIT_MS:.0f}")
            if (viewer.get("width"), viewer.get("height")) != expected_size:
                problems.append(f"{tag}: size {viewer.get('width')}x{viewer.get('height')}, "
                                f"expected {expected_size[0]}x{expected_size[1]}")
            if viewer.get("codec") != codec:
                problems.append(f"{tag}: codec {viewer.get('codec')}, expected {codec}")
            if viewer.get("lost") != 0:
                problems.append(f"{tag}: {viewer.get('lost')} packets lost")
            if viewer.get("undecryptable") != 0:
                problems.append(f"{tag}: {viewer.get('undecryptable')} packets failed SRTP")
            if viewer.get("packets", 0) < MIN_PACKETS_PER_S * (WATCH_S - 1):
                problems.append(f"{tag}: only {viewer.get('packets')} packets in {WATCH_S} s")
            if viewer.get("ended_by") != "duration":
                problems.append(f"{tag}: ended by {viewer.get('ended_by')} ({viewer.get('error')})")
            elif viewer.get("delete_status") != 200:
                problems.append(f"{tag}: DELETE returned {viewer.get('delete_status')}")
            if not (viewer.get("session_url") or "").startswith(self.hub_url + "/whep/sessions/"):
                problems.append(f"{tag}: session URL {viewer.get('session_url')!r}")
        urls = [v.get("session_url") for v in run.viewers]
        if len(set(urls)) != len(urls):
            problems.append("two viewers got the same session URL")
        keyframe_events = {e["viewer"] for e in run.events if e.get("event") == "first-keyframe"}
        if len(keyframe_events) != n_viewers:
            problems.append(f"{len(keyframe_events)} first-keyframe events for {n_viewers} viewers")
        return problems

    def test_one_viewer(self):
        relayed_before = self.metric("cimshub_rtp_packets_relayed_total")
        run = self.run_viewer("--duration", str(WATCH_S))
        relayed = self.metric("cimshub_rtp_packets_relayed_total") - relayed_before
        problems = self.watch_problems(run, 1, self.h264_size)
        received = sum(v.get("packets", 0) for v in run.viewers)
        # The viewer may miss the last packets sent before the DELETE, never more.
        if not (0 < received <= relayed + 2 and received >= 0.9 * relayed):
            problems.append(f"viewer received {received} packets, hub relayed {relayed:.0f}")
        if not self.wait_sessions_active(0):
            problems.append("cimshub_sessions_active is not 0 after the DELETE")
        self.record("one-viewer", problems, describe(run) + f" relayed={relayed:.0f}")

    def test_five_viewers(self):
        relayed_before = self.metric("cimshub_rtp_packets_relayed_total")
        delays_before = self.metric("cimshub_relay_delay_seconds_count")
        run = self.run_viewer("--viewers", "5", "--duration", str(WATCH_S))
        problems = self.watch_problems(run, 5, self.h264_size)
        if not self.wait_sessions_active(0):
            problems.append("cimshub_sessions_active is not 0 after the DELETEs")
        problems += self.relay_delay_problems(self.metric("cimshub_rtp_packets_relayed_total") - relayed_before,
                                              self.metric("cimshub_relay_delay_seconds_count") - delays_before)
        self.record("five-viewers", problems, describe(run))

    def relay_delay_problems(self, n_relayed, n_delays):
        """Problems with the relay-delay histogram after @n_relayed packets
        went out, @n_delays of them counted in it: all but the keyframe
        snapshots (a few per viewer), in buckets that add up."""
        problems = []
        if not n_relayed / 2 <= n_delays <= n_relayed:
            problems.append(f"the relay-delay histogram counted {n_delays:.0f} of {n_relayed:.0f} packets "
                            "relayed; expected at least half, the packets sent after the keyframe snapshots")
        status, body = http_get(self.hub_url + "/metrics")
        buckets = [float(line.split()[1]) for line in body.splitlines()
                   if status == 200 and line.startswith("cimshub_relay_delay_seconds_bucket{")]
        if len(buckets) < 2 or buckets != sorted(buckets):
            problems.append(f"relay-delay buckets are not cumulative: {buckets}")
        elif buckets[-1] != self.metric("cimshub_relay_delay_seconds_count"):
            problems.append(f"the +Inf bucket ({buckets[-1]:.0f}) differs from the count")
        if self.metric("cimshub_relay_delay_seconds_sum") <= 0:
            problems.append("the relay-delay sum is not positive")
        return problems

    def test_setup_roles(self):
        for setup, role in (("actpass", None), ("active", "client"), ("passive", "server")):
            run = self.run_viewer("--setup", setup, "--duration", "2")
            problems = self.watch_problems(run, 1, self.h264_size) if run.viewers else ["no result"]
            problems = [p for p in problems if "packets in" not in p]
            for viewer in run.viewers:
                if role is not None and viewer.get("dtls_role") != role:
                    problems.append(f"DTLS role {viewer.get('dtls_role')}, expected {role}")
            self.record(f"setup-{setup}", problems, describe(run))

    def test_srtp_profiles(self):
        for profile in ("SRTP_AES128_CM_SHA1_80", "SRTP_AEAD_AES_128_GCM"):
            run = self.run_viewer("--srtp-profiles", profile, "--duration", "2")
            problems = self.watch_problems(run, 1, self.h264_size) if run.viewers else ["no result"]
            problems = [p for p in problems if "packets in" not in p]
            for viewer in run.viewers:
                if viewer.get("srtp_profile") != profile:
                    problems.append(f"SRTP profile {viewer.get('srtp_profile')}, expected {profile}")
            self.record(f"srtp-{profile}", problems, describe(run))

    def test_bad_fingerprint(self):
        mismatches_before = self.metric("cimshub_dtls_fingerprint_mismatches_total")
        relayed_before = self.metric("cimshub_rtp_packets_relayed_total")
        start = time.monotonic()
        run = self.run_viewer("--bad-fingerprint", "--duration", "0")
        elapsed_s = time.monotonic() - start
        problems = []
        if run.returncode != 1:
            problems.append(f"exit status {run.returncode}, expected 1 (no keyframe)")
        if len(run.viewers) != 1:
            problems.append(f"expected 1 viewer result, got {len(run.viewers)}")
        for viewer in run.viewers:
            if viewer.get("status") != 201:
                problems.append(f"status {viewer.get('status')}, expected 201")
            if viewer.get("ended_by") not in ("close-notify", "ice-failed"):
                problems.append(f"ended by {viewer.get('ended_by')}, expected close-notify or "
                                f"ice-failed ({viewer.get('error')})")
            if viewer.get("packets") != 0:
                problems.append(f"{viewer.get('packets')} media packets arrived")
        # Ending by the hub is quick; the 3 s idle timeout would mean it never did.
        if elapsed_s > 2.5:
            problems.append(f"the viewer ran {elapsed_s:.1f} s")
        mismatches = self.metric("cimshub_dtls_fingerprint_mismatches_total") - mismatches_before
        if not mismatches == 1:
            problems.append(f"cimshub_dtls_fingerprint_mismatches_total rose by {mismatches:.0f}")
        relayed = self.metric("cimshub_rtp_packets_relayed_total") - relayed_before
        if not relayed == 0:
            problems.append(f"the hub relayed {relayed:.0f} packets")
        if not self.wait_sessions_active(0):
            problems.append("cimshub_sessions_active is not 0")
        self.record("bad-fingerprint", problems, describe(run) + f" elapsed={elapsed_s:.1f}s")

    def test_other_jurisdiction(self):
        run = self.run_viewer("--expect-status", "403", jurisdiction="chelsea")
        problems = []
        if run.returncode != 0:
            problems.append(f"exit status {run.returncode}")
        for viewer in run.viewers:
            if viewer.get("status") != 403:
                problems.append(f"status {viewer.get('status')}")
            if viewer.get("packets") != 0 or viewer.get("session_url") is not None:
                problems.append("a denied viewer got a session or media")
        # The same run expecting 201 must fail: --expect-status is what passed it.
        control = self.run_viewer("--expect-status", "201", jurisdiction="chelsea")
        if control.returncode != 1:
            problems.append(f"--expect-status 201 on a denial exited {control.returncode}")
        self.record("deny-other-jurisdiction", problems, describe(run))

    def test_pli(self):
        plis_before = self.metric("cimshub_rtcp_plis_received_total")
        run = self.run_viewer("--pli-interval", "500", "--duration", str(WATCH_S))
        plis = self.metric("cimshub_rtcp_plis_received_total") - plis_before
        problems = self.watch_problems(run, 1, self.h264_size)
        if not plis >= WATCH_S * 2 - 2:
            problems.append(f"the hub counted {plis:.0f} PLIs, expected about {WATCH_S * 2}")
        self.record("pli", problems, describe(run) + f" plis={plis:.0f}")

    def test_lost_client_hello(self):
        """The viewer drops the hub's first DTLS datagram, its ClientHello, as
        a viewer that has not read the SDP answer yet does. The hub must
        retransmit it well before OpenSSL's default of 1 s."""
        run = self.run_viewer("--drop-dtls", "1", "--duration", "2")
        problems = self.watch_problems(run, 1, self.h264_size) if run.viewers else ["no result"]
        problems = [p for p in problems if "packets in" not in p]
        for viewer in run.viewers:
            if viewer.get("dtls_role") != "server" or viewer.get("dtls_dropped") != 1:
                problems.append(f"DTLS role {viewer.get('dtls_role')} with {viewer.get('dtls_dropped')} "
                                "datagrams dropped, expected server with 1")
            if dtls_is_late(viewer, LOST_FLIGHT_LIMIT_MS):
                problems.append(f"{dtls_timing(viewer)}: the ClientHello came again later than "
                                f"{LOST_FLIGHT_LIMIT_MS} ms")
        self.record("lost-client-hello", problems, describe(run))

    def test_slow_answer(self):
        """The viewer applies the SDP answer SLOW_ANSWER_DELAY_MS after it
        arrives, so the hub's first ICE check comes before the viewer knows
        the hub's credentials. ICE and DTLS must still complete promptly."""
        run = self.run_viewer("--answer-delay-ms", str(SLOW_ANSWER_DELAY_MS), "--duration", "2")
        problems = self.watch_problems(run, 1, self.h264_size) if run.viewers else ["no result"]
        problems = [p for p in problems if "packets in" not in p]
        limit_ms = SLOW_ANSWER_DELAY_MS + SLOW_ANSWER_MARGIN_MS
        for viewer in run.viewers:
            if dtls_is_late(viewer, limit_ms):
                problems.append(f"{dtls_timing(viewer)}: more than {limit_ms} ms after the SDP answer arrived")
        self.record("slow-answer", problems, describe(run))

    def run_webrtcbin_viewer(self):
        """Runs webrtcbin-viewer.py and ends its session through the admin
        API once it plays. Returns (last event of each kind, the DELETE's
        HTTP status or None)."""
        with open(self.token_paths["boston"], encoding="utf-8") as token_file:
            token = token_file.read().strip()
        proc = subprocess.Popen(["/usr/bin/python3", WEBRTCBIN_VIEWER, "--url", self.hub_url, "--camera", H264_CAMERA,
                                 "--token", token, "--timeout", str(WEBRTCBIN_TIMEOUT_S)],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        events = {}
        ended_by_admin = None
        try:
            for line in proc.stdout:
                event = json.loads(line)
                events[event["event"]] = event
                if event["event"] != "playing" or ended_by_admin is not None:
                    continue

                session_id = events.get("answer", {}).get("session_url", "").rsplit("/", 1)[-1]
                ended_by_admin = api_request(self.hub_url, "DELETE", f"/api/v1/sessions/{session_id}",
                                             self.admin_token)[0]
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        return events, ended_by_admin

    def test_webrtcbin(self):
        """GStreamer's webrtcbin, the WebRTC stack of GStreamer-based players,
        watches the H.264 camera and decodes frames. A system administrator
        then ends the session, and webrtcbin's DTLS transport must see the
        hub's close_notify."""
        events, ended_by_admin = self.run_webrtcbin_viewer()
        end = events.get("end", {})

        problems = []
        if "playing" not in events:
            problems.append(f"webrtcbin decoded {end.get('frames')} frames, expected 25")
        elif events["first-frame"]["ms"] - events["answer"]["ms"] > FIRST_KEYFRAME_LIMIT_MS + WEBRTCBIN_LATENCY_MS:
            problems.append(f"the first frame took more than {FIRST_KEYFRAME_LIMIT_MS + WEBRTCBIN_LATENCY_MS:.0f} ms "
                            "after the answer")
        if ended_by_admin != 200:
            problems.append(f"ending the session returned {ended_by_admin}")
        if "closed" not in end.get("dtls_states", []):
            problems.append("webrtcbin's DTLS transport never saw the hub close the association")
        self.record("webrtcbin", problems, f"events {[(e['event'], e['ms']) for e in events.values()]}; "
                                         f"end {end}")

    def test_h265(self):
        run = self.run_viewer("--h265", "--duration", str(WATCH_S), camera=H265_CAMERA)
        problems = self.watch_problems(run, 1, H265_SIZE, codec="H265")
        self.record("h265", problems, describe(run))

    def measure_fifty(self):
        run = self.run_viewer("--viewers", "50", "--duration", "2", timeout_s=60)
        summary = run.summary or {}
        print(f"note: 50 viewers at once: first keyframe p50={summary.get('first_keyframe_ms_p50')} "
              f"ms p99={summary.get('first_keyframe_ms_p99')} ms "
              f"max={summary.get('first_keyframe_ms_max')} ms, "
              f"{summary.get('successful')} of 50 successful (exit {run.returncode})", flush=True)

    # ---- logs and clean-up ---------------------------------------------------------

    def print_logs(self):
        for name in ("camera-sim", "cimshub"):
            for path in self.processes.log_paths(name):
                if not os.path.exists(path):
                    continue
                with open(path, "r", encoding="utf-8", errors="replace") as log:
                    lines = log.read().splitlines()
                if lines:
                    print(f"----- {os.path.basename(path)} (last 40 lines) -----")
                    print("\n".join(lines[-40:]))

    def cleanup(self):
        self.processes.stop_all()
        if self.args.keep_temp:
            print(f"note: kept {self.temp_dir}")
        else:
            shutil.rmtree(self.temp_dir, ignore_errors=True)


def dtls_is_late(viewer, limit_ms):
    """Tells whether a viewer's DTLS connected more than @limit_ms after its
    SDP answer arrived, or never."""
    connected_ms, answer_ms = viewer.get("dtls_connected_ms"), viewer.get("answer_ms")
    return connected_ms is None or answer_ms is None or connected_ms - answer_ms > limit_ms


def dtls_timing(viewer):
    return f"DTLS connected at {viewer.get('dtls_connected_ms')} ms, answer at {viewer.get('answer_ms')} ms"


def describe(run):
    parts = [f"exit={run.returncode}"]
    for viewer in run.viewers[:5]:
        parts.append(f"[#{viewer.get('viewer')} status={viewer.get('status')} "
                     f"kf={viewer.get('first_keyframe_ms')}ms pkts={viewer.get('packets')} "
                     f"lost={viewer.get('lost')} {viewer.get('width')}x{viewer.get('height')} "
                     f"ended={viewer.get('ended_by')}]")
    return " ".join(parts)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("cimshub", "cimshubctl", "camera-sim", "whep-viewer"):
        parser.add_argument("--" + name, required=True, help=f"path of the {name} binary")
    parser.add_argument("--time-limit", type=float, default=110.0,
                        help="seconds the whole run may take (default: %(default)s)")
    parser.add_argument("--keep-temp", action="store_true",
                        help="keep the temporary directory with logs and config")
    return parser.parse_args()


def main():
    args = parse_args()
    rig = Rig(args)
    watchdog = threading.Timer(args.time_limit + 5, lambda: (rig.processes.stop_all(), os._exit(1)))
    watchdog.daemon = True
    watchdog.start()
    try:
        try:
            rig.setup()
        except (RuntimeError, OSError, subprocess.SubprocessError) as error:
            rig.record("setup", [str(error)], "")
        else:
            rig.test_one_viewer()
            rig.test_five_viewers()
            rig.test_setup_roles()
            rig.test_srtp_profiles()
            rig.test_bad_fingerprint()
            rig.test_other_jurisdiction()
            rig.test_pli()
            rig.test_lost_client_hello()
            rig.test_slow_answer()
            rig.test_webrtcbin()
            rig.test_h265()
            rig.measure_fifty()
        if not all(passed for _, passed in rig.results):
            rig.processes.report_exits()
            rig.print_logs()
    finally:
        rig.cleanup()
        watchdog.cancel()

    return report_results(rig.results)


if __name__ == "__main__":
    sys.exit(main())
