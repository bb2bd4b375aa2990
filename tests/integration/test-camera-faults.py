#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
# Camera faults end to end: the camera simulator serves one misbehaving camera
# per fault and one healthy camera, the hub relays them, and cimshub-whep-viewer
# checks that each faulty camera still plays while the healthy one keeps going.
"""Run the camera fault integration tests and print one PASS/FAIL line each.

Exit status is 0 only when every test passes. The last line is
"N passed, M failed".
"""

import argparse
import importlib.util
import os
import re
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "browser"))
from run_browser_test import (  # noqa: E402  (the path is set just above)
    free_tcp_port, libconfig_string, make_key_pair, report_results, wait_for_healthz,
    wait_for_output)

_SPEC = importlib.util.spec_from_file_location("test_whep_viewer", os.path.join(HERE, "test-whep-viewer.py"))
whep = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(whep)

HEALTHY = "healthy"
SMALL = "width=320,height=180,fps=15,keyint=15,kbps=400"
CONNECT_TIMEOUT_MS = 3000
FIRST_KEYFRAME_LIMIT_MS = 1000.0
# The healthy camera's viewers join a running source, so the hub sends them
# its cached keyframe as soon as DTLS is up. A viewer that waits for the
# camera's next keyframe instead waits up to its 1 s interval.
# The whole first keyframe, which includes ICE and DTLS set-up, gets a
# looser bound that leaves room for slow set-up under ASan.
HEALTHY_KEYFRAME_AFTER_DTLS_MS = 300.0
HEALTHY_FIRST_KEYFRAME_LIMIT_MS = 2500.0
WATCH_S = 3
# Most packets a viewer may get back to back while it waits for its first
# keyframe: the hub's pacing burst of 64, with room for a retransmission.
JOIN_BURST_LIMIT = 96
# Maximum time a viewer may go without a packet after its first keyframe
# while the hub responds to its PLIs: 2.5 frame intervals of the 10 fps camera.
# In runs of this case it was 103 to 141 ms with paced snapshots, and about
# 940 ms when a snapshot stalled between its bursts.
PLI_SILENCE_LIMIT_MS = 250.0
USER, PASSWORD = "camuser", "cam-secret-1"
# Faults that need a login on the camera.
AUTH_FAULTS = ("empty-nonce", "basic-and-digest", "auth-describe-only")

# Camera id -> (simulator SPEC without path, expected first size).
CAMERAS = {
    HEALTHY: (f"{SMALL},transport=tcp", (320, 180)),
    "sprop-only": (f"{SMALL},fault=sprop-only", (320, 180)),
    "broken-audio": (f"{SMALL},fault=broken-audio", (320, 180)),
    "resize": ("width=640,height=360,fps=15,keyint=15,kbps=800,fault=resize", (640, 360)),
    "bframes": (f"{SMALL},fault=bframes", (320, 180)),
    "big-keyframe": ("width=1280,height=720,fps=10,keyint=20,kbps=6000,pattern=snow,"
                     "fault=big-keyframe,transport=tcp", (1280, 720)),
    "stap-a": ("width=160,height=120,fps=15,keyint=15,kbps=100,pattern=black,fault=stap-a",
               (160, 120)),
    "tcp-junk": (f"{SMALL},fault=tcp-junk", (320, 180)),
    "empty-nonce": (f"{SMALL},user={USER},password={PASSWORD},fault=empty-nonce", (320, 180)),
    "basic-and-digest": (f"{SMALL},user={USER},password={PASSWORD},fault=basic-and-digest",
                         (320, 180)),
    "auth-describe-only": (f"{SMALL},user={USER},password={PASSWORD},fault=auth-describe-only",
                           (320, 180)),
    "get-parameter-454": (f"{SMALL},fault=get-parameter-454+short-timeout", (320, 180)),
    "get-parameter-unlisted": (f"{SMALL},fault=get-parameter-unlisted+short-timeout", (320, 180)),
    "redirect": (f"{SMALL},fault=redirect", (320, 180)),
    "udp-refused": (f"{SMALL},fault=udp-refused", (320, 180)),
    "reorder": ("width=640,height=360,fps=15,keyint=15,kbps=1500,fault=reorder", (640, 360)),
    "metadata-track": (f"{SMALL},fault=metadata-track", (320, 180)),
    "bad-sdp": (f"{SMALL},fault=bad-sdp", (320, 180)),
    "options-bare": (f"{SMALL},fault=options-bare", (320, 180)),
    "inband-only": (f"{SMALL},fault=inband-only", (320, 180)),
    "no-marker": (f"{SMALL},fault=no-marker", (320, 180)),
    "silent": (f"{SMALL},fault=silent,transport=tcp", (320, 180)),
    # Pulled from the start (on_demand = false), with one keyframe in 5 s;
    # kept-b is the same camera at another URL, for a reload.
    "kept": ("width=320,height=180,fps=15,keyint=75,kbps=400", (320, 180)),
    "kept-b": ("width=320,height=180,fps=15,keyint=75,kbps=400", (320, 180)),
}
KEPT = "kept"
IDLE_SOURCE_STOP_S = 5


def write_hub_config(path, settings, kept_on_demand=False, kept_url_of="kept"):
    """Writes a hub configuration with every camera of CAMERAS in Boston but
    kept-b. The kept camera has on_demand = @kept_on_demand and the URL of
    the simulator's camera @kept_url_of."""
    cameras = []
    for camera in CAMERAS:
        if camera == "kept-b":
            continue
        login = ""
        if camera in AUTH_FAULTS:
            login = f'source_username = "{USER}"; source_password = "{PASSWORD}";'
        url = settings["urls"][kept_url_of if camera == KEPT else camera]
        on_demand = f"on_demand = {'true' if kept_on_demand else 'false'};" if camera == KEPT else ""
        cameras.append(
            f"""  {{ id = "{camera}"; jurisdiction = "boston"; location = "Fault bench {camera}";
    brand_model = "cimshub-camera-sim"; installed = "2024-01-01";
    source = "{url}"; {login} {on_demand}
    shared_with = []; restricted = false; }}""")
    camera_list = ",\n".join(cameras)
    text = f"""# Written by test-camera-faults.py for one test run.
hub: {{
  http_listen = "127.0.0.1:{settings["http_port"]}";
  ice_udp_ports = [{settings["ice_ports"][0]}, {settings["ice_ports"][1]}];
  public_addresses = ["127.0.0.1"];
  state_dir = {libconfig_string(settings["state_dir"])};
  idle_source_stop_s = {IDLE_SOURCE_STOP_S};
  source_connect_timeout_ms = {CONNECT_TIMEOUT_MS};
  whep_rate_per_client = 1000;
  whep_rate_total = 1000;
  max_sessions_per_user = 1000;
  max_sessions_per_camera = 1000;
}};
jurisdictions = (
  {{ id = "boston"; name = "Boston"; participates = true;
    token_issuer = "https://idp.boston.test";
    token_key = {libconfig_string(settings["key"])}; }}
);
agencies = ();
cameras = (
{camera_list}
);
viewer_profiles = (
  {{ name = "browser"; codecs = ["h264", "h265"];
    max_width = 1920; max_height = 1080; max_fps = 30; max_kbps = 8000; }}
);
"""
    with open(path, "w", encoding="utf-8") as config_file:
        config_file.write(text)


class FaultRig(whep.Rig):
    """The simulator with every fault camera, the hub, and the fault checks."""

    def __init__(self, args):
        super().__init__(args)

    def setup(self):
        keys = {"boston": make_key_pair(self.temp_dir, "boston")}
        sim_port = free_tcp_port()
        http_port = free_tcp_port()
        self.hub_url = f"http://127.0.0.1:{http_port}"
        argv = [self.args.camera_sim, "--address", "127.0.0.1", "--port", str(sim_port)]
        for camera, (spec, _) in CAMERAS.items():
            argv += ["--camera", f"path={camera},{spec}"]
        sim = self.processes.start("camera-sim", argv)
        sim_log = self.processes.log_paths("camera-sim")[0]
        if not wait_for_output(sim, sim_log, f"/{HEALTHY} (", self.deadline.left(15)):
            raise RuntimeError("the camera simulator did not print its serving lines")
        urls = self.serving_urls(sim_log)
        missing = [camera for camera in CAMERAS if camera not in urls]
        if missing:
            raise RuntimeError(f"the camera simulator printed no URL for {missing}")

        state_dir = os.path.join(self.temp_dir, "state")
        os.mkdir(state_dir)
        config_path = os.path.join(self.temp_dir, "hub.conf")
        self.config_path = config_path
        self.hub_settings = {
            "http_port": http_port, "urls": urls, "ice_ports": whep.free_udp_range(200),
            "state_dir": state_dir, "key": keys["boston"][1]}
        write_hub_config(config_path, self.hub_settings)
        path = os.path.join(self.temp_dir, "boston.token")
        with open(path, "w", encoding="utf-8") as token_file:
            token_file.write(self.mint_token(keys["boston"][0], "boston") + "\n")
        self.token_paths["boston"] = path

        hub = self.processes.start("cimshub", [self.args.cimshub, "--config", config_path])
        self.hub_proc = hub
        self.hub_started_s = time.monotonic()
        if not wait_for_healthz(hub, self.hub_url, self.deadline.left(20)):
            raise RuntimeError(f"the hub did not answer 200 on {self.hub_url}/healthz")

    def serving_urls(self, sim_log):
        """Reads the camera id -> RTSP URL map from the serving lines, where
        the raw responder's cameras each have their own port."""
        with open(sim_log, "r", encoding="utf-8", errors="replace") as log:
            text = log.read()
        return {match.group(2): match.group(1)
                for match in re.finditer(r"serving (rtsp://[^ ]+?/([\w-]+)) \(", text)}

    def log_text(self, name):
        """Returns the process's stdout and stderr logs as one text."""
        text = ""
        for path in self.processes.log_paths(name):
            if os.path.exists(path):
                with open(path, "r", encoding="utf-8", errors="replace") as log:
                    text += log.read()
        return text

    # ---- running a fault camera beside the healthy one -----------------------------

    def warm(self, *cameras):
        """Starts the hub's ingest of @cameras, all at once, with a 1 s viewer
        each, so that the checked viewers join a running source. A first
        viewer that starts the ingest can miss the first keyframe, and then
        prints a note. That race is in the hub, not in the cameras' faults."""
        def warm_one(camera):
            # Under load the first viewer can end before the camera's first
            # keyframe reached the hub: a second one then joins a running
            # source and ends after that keyframe is cached.
            for attempt in (1, 2):
                run = self.run_viewer("--duration", "1", camera=camera, timeout_s=20)
                problems = self.viewer_problems(run, CAMERAS[camera][1])
                if not problems:
                    break
                print(f"note: cold start of {camera}, warm-up {attempt}: {'; '.join(problems)}", flush=True)

        threads = [threading.Thread(target=warm_one, args=(camera,)) for camera in cameras]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def run_beside_healthy(self, camera, *extra, duration_s=WATCH_S, timeout_s=40):
        """Runs a viewer of @camera and, at the same time, one of the healthy
        camera. Returns both runs and the problems of the healthy one."""
        healthy = {}
        self.warm(camera, HEALTHY)

        def watch_healthy():
            healthy["run"] = self.run_viewer("--duration", str(duration_s), camera=HEALTHY,
                                             timeout_s=timeout_s)

        thread = threading.Thread(target=watch_healthy)
        thread.start()
        run = self.run_viewer("--duration", str(duration_s), *extra, camera=camera,
                              timeout_s=timeout_s)
        thread.join()
        healthy_problems = [f"healthy camera: {p}" for p in
                            self.viewer_problems(healthy["run"], CAMERAS[HEALTHY][1],
                                                 limit_ms=HEALTHY_FIRST_KEYFRAME_LIMIT_MS)
                            + self.cached_keyframe_problems(healthy["run"])]
        if healthy_problems:
            healthy_problems.append("the hub's lines on it: " + " | ".join(
                line.strip() for line in self.log_text("cimshub").splitlines()
                if f"camera={HEALTHY}" in line)[-3000:])
        return run, healthy_problems

    def cached_keyframe_problems(self, run):
        """Problems when a viewer of a running camera got its first keyframe
        later after DTLS than the keyframe cache allows."""
        problems = []
        for viewer in run.viewers:
            connected_ms, keyframe_ms = viewer.get("dtls_connected_ms"), viewer.get("first_keyframe_ms")
            if connected_ms is None or keyframe_ms is None or connected_ms < 0 or keyframe_ms < 0:
                continue
            if keyframe_ms - connected_ms > HEALTHY_KEYFRAME_AFTER_DTLS_MS:
                problems.append(f"viewer {viewer.get('viewer')}: first whole keyframe "
                                f"{keyframe_ms - connected_ms:.0f} ms after DTLS connected, limit "
                                f"{HEALTHY_KEYFRAME_AFTER_DTLS_MS:.0f}: it did not get the cached keyframe")
        return problems

    def viewer_problems(self, run, expected_size, limit_ms=FIRST_KEYFRAME_LIMIT_MS):
        problems = []
        if run.returncode != 0:
            problems.append(f"exit status {run.returncode}: {run.stderr.strip()[-300:]}")
        if not run.viewers:
            problems.append("no viewer result")
        for viewer in run.viewers:
            tag = f"viewer {viewer.get('viewer')}"
            if viewer.get("status") != 201:
                problems.append(f"{tag}: status {viewer.get('status')} ({viewer.get('error')})")
                continue
            first_keyframe = viewer.get("first_keyframe_ms")
            if first_keyframe is None or first_keyframe > limit_ms:
                problems.append(f"{tag}: first whole keyframe at {first_keyframe} ms, limit "
                                f"{limit_ms:.0f} (answer at {viewer.get('answer_ms')} ms, DTLS "
                                f"connected at {viewer.get('dtls_connected_ms')} ms, first packet at "
                                f"{viewer.get('first_packet_ms')} ms)")
            if (viewer.get("width"), viewer.get("height")) != expected_size:
                problems.append(f"{tag}: size {viewer.get('width')}x{viewer.get('height')}, "
                                f"expected {expected_size[0]}x{expected_size[1]}")
            if viewer.get("lost") != 0:
                problems.append(f"{tag}: {viewer.get('lost')} packets lost")
            if viewer.get("ended_by") != "duration":
                problems.append(f"{tag}: ended by {viewer.get('ended_by')} ({viewer.get('error')})")
        return problems

    def check_plain(self, camera, extra_check=None):
        """Plays @camera beside the healthy camera; @extra_check(run) may add
        problems."""
        run, problems = self.run_beside_healthy(camera)
        problems = self.viewer_problems(run, CAMERAS[camera][1]) + problems
        if extra_check is not None:
            problems += extra_check(run)
        self.record(camera, problems, whep.describe(run))

    # ---- the faults ----------------------------------------------------------------

    def test_resize(self):
        run, problems = self.run_beside_healthy("resize", duration_s=8)
        problems = self.viewer_problems(run, CAMERAS["resize"][1]) + problems
        for viewer in run.viewers:
            sizes = viewer.get("sizes") or []
            if not {"640x360", "480x270"} <= set(sizes):
                problems.append(f"SPS sizes seen {sizes}, expected 640x360 and 480x270")
            if (viewer.get("keyframes") or 0) < 4:
                problems.append(f"{viewer.get('keyframes')} whole keyframes in 8 s")
        self.record("resize", problems, whep.describe(run))

    def test_big_keyframe(self):
        # Eight viewers join 350 ms apart, at random points of the 2 s GOP.
        self.warm("big-keyframe")
        run = self.run_viewer("--viewers", "8", "--ramp-ms", "350", "--duration", "3",
                              "--socket-timestamps", camera="big-keyframe", timeout_s=40)
        problems = self.viewer_problems(run, CAMERAS["big-keyframe"][1])
        if len(run.viewers) != 8:
            problems.append(f"{len(run.viewers)} viewer results, expected 8")
        for viewer in run.viewers:
            # A viewer sent a partial keyframe first would wait a whole GOP for
            # the next one; the first packet is the start of the first keyframe.
            if viewer.get("first_packet_ms") is not None and viewer.get("first_keyframe_ms") is not None \
                    and viewer["first_keyframe_ms"] - viewer["first_packet_ms"] > 1000:
                problems.append(f"viewer {viewer.get('viewer')}: first packet at "
                                f"{viewer['first_packet_ms']} ms, first whole keyframe at "
                                f"{viewer['first_keyframe_ms']} ms")
            # The hub paces the cached keyframe in bursts of 64 packets. Sent
            # at once, a keyframe of hundreds of packets arrives as one burst
            # and can overflow a busy viewer's receive buffer.
            burst = viewer.get("join_burst_packets")
            if burst is None or burst > JOIN_BURST_LIMIT:
                problems.append(f"viewer {viewer.get('viewer')}: {burst} packets arrived back to back "
                                f"before the first keyframe, limit {JOIN_BURST_LIMIT}")
        counts = [int(n) for n in re.findall(r"/big-keyframe: keyframe sent in (\d+) RTP packets",
                                             self.log_text("camera-sim"))]
        if not counts or min(counts) <= 150:
            problems.append(f"keyframe packet counts {counts}, expected more than 150 each")
        bursts = [viewer.get("join_burst_packets") for viewer in run.viewers]
        self.record("big-keyframe", problems,
                    whep.describe(run) + f" keyframe_packets={counts} join_bursts={bursts}")

    def test_big_keyframe_pli(self):
        # PLIs long after the viewer connected, when libnice's checks have
        # settled: each snapshot of a keyframe of hundreds of packets goes
        # out in paced bursts, and nothing but the pacing timer may be
        # waking the viewer's group between them. A stalled snapshot holds
        # back the live packets queued behind it.
        self.warm("big-keyframe")
        snapshots_before = self.metric("cimshub_keyframe_snapshots_sent_total")
        run = self.run_viewer("--viewers", "1", "--duration", "9", "--pli-interval", "1500",
                              camera="big-keyframe", timeout_s=40)
        problems = self.viewer_problems(run, CAMERAS["big-keyframe"][1])
        if len(run.viewers) != 1:
            problems.append(f"{len(run.viewers)} viewer results, expected 1")
        # The join's snapshot and one for each of about five PLIs.
        snapshots = self.metric("cimshub_keyframe_snapshots_sent_total") - snapshots_before
        if not snapshots >= 4:
            problems.append(f"the hub sent {snapshots:.0f} keyframe snapshots, expected at least 4")
        for viewer in run.viewers:
            silence = viewer.get("longest_silence_ms")
            if silence is None or silence > PLI_SILENCE_LIMIT_MS:
                problems.append(f"viewer {viewer.get('viewer')}: {silence} ms without a packet after the "
                                f"first keyframe, limit {PLI_SILENCE_LIMIT_MS} ms")
        self.record("big-keyframe-pli", problems,
                    whep.describe(run) + f" longest_silence_ms={[v.get('longest_silence_ms') for v in run.viewers]}")

    def test_stap_a(self):
        self.warm("stap-a")
        plis_before = self.metric("cimshub_rtcp_plis_received_total")
        run, problems = self.run_beside_healthy("stap-a")
        problems = self.viewer_problems(run, CAMERAS["stap-a"][1], limit_ms=2500) + problems
        plis = self.metric("cimshub_rtcp_plis_received_total") - plis_before
        if not plis <= 2:
            problems.append(f"the hub counted {plis:.0f} PLIs")
        lines = re.findall(r"/stap-a: keyframe sent in (\d+) RTP packets, first NAL type (\d+)",
                           self.log_text("camera-sim"))
        if not lines or any(n != "1" or t != "24" for n, t in lines):
            problems.append(f"keyframes sent as {lines}, expected one STAP-A (type 24) each")
        self.record("stap-a", problems, whep.describe(run) + f" plis={plis:.0f}")

    def test_no_marker(self):
        """A camera that never sets the RTP marker bit must still reach the
        viewer as whole frames: the hub marks each frame's last packet. The
        viewer, like a browser, ends a frame only at a marker bit."""
        def check(run):
            problems = []
            for viewer in run.viewers:
                if (viewer.get("packets") or 0) > 0 and not viewer.get("keyframes"):
                    problems.append(f"viewer {viewer.get('viewer')}: {viewer.get('packets')} packets "
                                    "arrived but no whole keyframe, and a frame ends at its marker bit")
            repairs = re.findall(r"camera=([\w-]+): the camera leaves the RTP marker bit unset",
                                 self.log_text("cimshub"))
            if repairs != ["no-marker"]:
                problems.append(f"the hub logged marker repair for cameras {repairs}, expected only no-marker")
            return problems
        self.check_plain("no-marker", check)

    def test_digest(self, camera, scheme="Digest"):
        def check(run):
            log = self.log_text("camera-sim")
            accepted = re.findall(rf"/{camera}: \w+ accepted with (\w+) credentials", log)
            if not accepted:
                return ["the camera accepted no credentials"]
            if set(accepted) != {scheme}:
                return [f"credentials sent as {sorted(set(accepted))}, expected {scheme} only"]
            return []
        self.check_plain(camera, check)

    def test_profile_from_sps(self, camera):
        # The camera's SDP has no profile-level-id, so the hub reads the
        # profile from the SPS and matches the offer to it. sprop-only sends
        # the SPS in sprop-parameter-sets. inband-only sends it only in the
        # stream, so the cold start's viewer waits for it.
        def check(run):
            log = self.log_text("cimshub")
            found = re.findall(rf"camera={camera} [^:]*: profile \S+: relaying the camera's H\.264 "
                               r"\(profile-level-id ([0-9a-f]{6})\)", log)
            unknown = re.findall(rf"camera={camera} [^:]*: profile \S+: relaying the camera's H\.264 "
                                 r"\(profile-level-id unknown", log)
            if unknown:
                return [f"{len(unknown)} session(s), the cold start's among them, relayed with the profile unknown"]
            if not found:
                return [f"the hub logged no profile-level-id for the {camera} camera's sessions"]
            if {value[:4] for value in found} != {"42c0"}:
                return [f"profile-level-id {sorted(set(found))}, expected constrained baseline (42c0..)"]
            return []
        self.check_plain(camera, check)

    def test_redirect(self):
        self.check_plain("redirect", lambda run: [] if "/redirect: DESCRIBE redirected" in
                         self.log_text("camera-sim") else ["the camera redirected nothing"])

    def test_long(self):
        """Keep-alive cameras for 3 x 8 s and the silent camera, at once."""
        results = {}

        def watch(camera, duration_s, *extra):
            results[camera] = self.run_viewer("--duration", str(duration_s), "--idle-timeout",
                                              "10000", *extra, camera=camera, timeout_s=60)

        self.warm("get-parameter-454", "get-parameter-unlisted", "silent")
        # The silent camera sends for 6 s after each connection: silent from
        # about 6 s after the warm-up began, sending again from about 10 s
        # on, once the hub has reconnected, and silent again from about 16 s.
        # Its viewer ends about 13.5 s in, inside the second sending spell.
        threads = [threading.Thread(target=watch, args=("get-parameter-454", 25)),
                   threading.Thread(target=watch, args=("get-parameter-unlisted", 25)),
                   threading.Thread(target=watch, args=("silent", 12))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        log = self.log_text("camera-sim")

        for camera in ("get-parameter-454", "get-parameter-unlisted"):
            run = results[camera]
            problems = self.viewer_problems(run, CAMERAS[camera][1])
            dropped = re.search(rf"/{camera}: session \w+ had no keep-alive", log) is not None
            if dropped:
                problems.append("the camera closed the session for want of a keep-alive")
            for viewer in run.viewers:
                if (viewer.get("keyframes") or 0) < 20:
                    problems.append(f"{viewer.get('keyframes')} whole keyframes in 25 s")
            self.record(camera, problems, whep.describe(run))

        run = results["silent"]
        problems = [p for p in self.viewer_problems(run, CAMERAS["silent"][1]) if "lost" not in p]
        if "/silent: stopped sending RTP" not in log:
            problems.append("the camera never went silent")
        for viewer in run.viewers:
            first, last = viewer.get("first_packet_unix_ms"), viewer.get("last_keyframe_unix_ms")
            if first is None or last is None or last - first < 8000:
                problems.append(f"no whole keyframe after the silence (first packet {first}, "
                                f"last keyframe {last})")
            ended = viewer.get("ended_unix_ms")
            if ended is None or viewer.get("last_packet_unix_ms") is None \
                    or ended - viewer["last_packet_unix_ms"] > 1500:
                problems.append("media had not resumed when the viewer ended")
        self.record("silent", problems, whep.describe(run))


    # ---- a camera pulled from the start ----------------------------------------

    def wait_hub_log(self, text, count, timeout_s):
        """Waits until the hub's log contains @text @count times."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if self.log_text("cimshub").count(text) >= count:
                return True
            time.sleep(0.1)
        return False

    def reload_hub(self, **config):
        """Rewrites the configuration with @config and reloads the hub."""
        n_reloaded = self.log_text("cimshub").count("reloaded: cameras")
        write_hub_config(self.config_path, self.hub_settings, **config)
        os.kill(self.hub_proc.pid, signal.SIGHUP)
        return self.wait_hub_log("reloaded: cameras", n_reloaded + 1, 10)

    def test_kept(self):
        """A camera with on_demand = false is pulled from the hub's start and
        past idle_source_stop_s without a viewer, follows a new URL on reload
        with its viewer still playing, and stops when idle once a reload
        makes it on demand again."""
        problems = []
        time.sleep(max(0.0, self.hub_started_s + IDLE_SOURCE_STOP_S + 2 - time.monotonic()))
        log = self.log_text("cimshub")
        if f"camera={KEPT}: pulled whether or not anyone watches" not in log \
                or f"camera={KEPT}: receiving video" not in log:
            problems.append("the hub did not pull the kept camera before any viewer asked")
        if f"camera={KEPT}: no viewer for" in log:
            problems.append("the hub stopped the kept camera's ingest without a viewer")

        # The camera has been running for seconds, so its stream is mid-GOP:
        # only the hub's cached keyframe gives the viewer a picture at once.
        run_result = {}

        def watch():
            run_result["run"] = self.run_viewer("--duration", "4", camera=KEPT, timeout_s=30)

        thread = threading.Thread(target=watch)
        thread.start()
        time.sleep(1.5)
        if not self.reload_hub(kept_url_of="kept-b"):
            problems.append("the reload with the new URL did not happen")
        moved = self.wait_hub_log(f"camera={KEPT}: its source URL or login changed", 1, 5)
        thread.join()
        run = run_result["run"]
        problems += self.viewer_problems(run, CAMERAS[KEPT][1])
        problems += self.cached_keyframe_problems(run)
        # Epochs go on from the first connection's, so viewers see a new stream.
        if not moved or f"flowing from {self.hub_settings['urls']['kept-b']} (epoch 2)" \
                not in self.log_text("cimshub"):
            problems.append("the hub did not connect to the new URL as epoch 2 after the reload")
        if f"camera={KEPT}: ingest stopped: " in self.log_text("cimshub"):
            problems.append("the hub logged the replaced ingest's stop as a failure")
        for viewer in run.viewers:
            last, ended = viewer.get("last_packet_unix_ms"), viewer.get("ended_unix_ms")
            if last is None or ended is None or ended - last > 1000:
                problems.append(f"media stopped {None if last is None else ended - last} ms before "
                                "the viewer ended, after the new URL")

        n_stops = self.log_text("cimshub").count(f"camera={KEPT}: no viewer for")
        if not self.reload_hub(kept_on_demand=True, kept_url_of="kept-b"):
            problems.append("the reload to on_demand = true did not happen")
        if f"camera={KEPT}: no longer pulled without viewers (on_demand is true)" not in self.log_text("cimshub"):
            problems.append("the hub did not log why the camera is no longer kept")
        if not self.wait_hub_log(f"camera={KEPT}: no viewer for", n_stops + 1, IDLE_SOURCE_STOP_S + 5):
            problems.append("the camera's ingest did not stop when idle after on_demand = true")
        self.record("kept", problems, whep.describe(run))


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("cimshub", "cimshubctl", "camera-sim", "whep-viewer"):
        parser.add_argument("--" + name, required=True, help=f"path of the {name} binary")
    parser.add_argument("--time-limit", type=float, default=230.0,
                        help="seconds the whole run may take (default: %(default)s)")
    parser.add_argument("--keep-temp", action="store_true",
                        help="keep the temporary directory with logs and config")
    parser.add_argument("--only", help="comma-separated test names to run")
    return parser.parse_args()


def run_tests(rig, only):
    plain = ("broken-audio", "bframes", "tcp-junk", "udp-refused", "reorder",
             "metadata-track", "bad-sdp", "options-bare")
    tests = [(name, lambda name=name: rig.check_plain(name)) for name in plain]
    tests += [("sprop-only", lambda: rig.test_profile_from_sps("sprop-only")),
              ("inband-only", lambda: rig.test_profile_from_sps("inband-only")), ("resize", rig.test_resize), ("big-keyframe", rig.test_big_keyframe),
              ("big-keyframe-pli", rig.test_big_keyframe_pli),
              ("stap-a", rig.test_stap_a), ("redirect", rig.test_redirect),
              ("no-marker", rig.test_no_marker),
              ("empty-nonce", lambda: rig.test_digest("empty-nonce")),
              ("basic-and-digest", lambda: rig.test_digest("basic-and-digest")),
              ("auth-describe-only", lambda: rig.test_digest("auth-describe-only")),
              ("long", rig.test_long), ("kept", rig.test_kept)]
    for name, test in tests:
        if only and name not in only:
            continue
        test()


def main():
    args = parse_args()
    rig = FaultRig(args)
    watchdog = threading.Timer(args.time_limit + 5, lambda: (rig.processes.stop_all(), os._exit(1)))
    watchdog.daemon = True
    watchdog.start()
    try:
        try:
            rig.setup()
        except (RuntimeError, OSError, subprocess.SubprocessError) as error:
            rig.record("setup", [str(error)], "")
        else:
            run_tests(rig, set(args.only.split(",")) if args.only else None)
        if not all(passed for _, passed in rig.results):
            rig.processes.report_exits()
            rig.print_logs()
    finally:
        rig.cleanup()
        watchdog.cancel()

    return report_results(rig.results)


if __name__ == "__main__":
    sys.exit(main())
