#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
# Revocation-to-stop benchmark: live WHEP viewers (cimshub-whep-viewer), each
# under its own grant, and one admin-API revocation per grant, timed against
# the viewer's last media packet and DTLS close_notify.
"""Measure the time from a grant revocation's response to the viewer's last media packet.

The camera simulator and the hub run on 127.0.0.1. Chelsea's viewers watch
Boston's camera bos-0001, each under its own grant with its own incident
number, so that a revocation ends exactly one session and the samples do not
depend on each other. Viewers run in rounds of --batch processes. In each
round, every viewer waits for its first keyframe, then the grants are revoked
one by one with DELETE /api/v1/grants/{id}, after a random pause of up to one
frame interval so the revocation falls anywhere between two frames.

The times are taken on one clock: the revocation response time is
time.time() just after the response body is read, and the viewer reports the
receive times of its last RTP packet and of close_notify in Unix ms.
Exit status is 0 only when every session gave a sample.
"""

import argparse
import csv
import http.client
import importlib.util
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(BENCH_DIR, "..", "tests", "browser"))
from run_browser_test import (  # noqa: E402  (the path is set just above)
    Processes, free_tcp_port, free_udp_range, libconfig_string, make_key_pair,
    run_checked, wait_for_healthz, wait_for_output)


def load_access_live():
    """Load tests/integration/test-access-live.py, whose name is not importable."""
    path = os.path.join(BENCH_DIR, "..", "tests", "integration", "test-access-live.py")
    spec = importlib.util.spec_from_file_location("access_live", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


access_live = load_access_live()

CAMERA_ID = "bos-0001"
JURISDICTIONS = ("boston", "chelsea")
ENDED_BY_HUB = ("close-notify", "ice-failed")


def percentile(values, fraction):
    """Nearest-rank percentile of @values (not empty)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


class Bench:
    """The hub, the camera simulator, the tokens and the samples of one run."""

    def __init__(self, args):
        self.args = args
        self.temp = tempfile.mkdtemp(prefix="cimshub-revocation-")
        self.processes = Processes(self.temp)
        self.keys = {}
        self.tokens = {}
        self.viewers = []
        self.samples = []
        self.failures = []
        self.connection = None

    # ---- set-up -------------------------------------------------------------

    def setup(self):
        for name in JURISDICTIONS:
            self.keys[name] = make_key_pair(self.temp, name)
        self.http_port = free_tcp_port()
        self.sim_port = free_tcp_port()
        # One UDP port per live session, with room for ports not yet released.
        self.ice_ports = free_udp_range(2 * self.args.batch + 20)
        self.base_url = f"http://127.0.0.1:{self.http_port}"
        self.config_path = os.path.join(self.temp, "hub.conf")
        self.write_config()
        self.start_camera()
        self.start_hub()
        self.tokens["authority"] = self.token("boston", "boston-chief", roles=("grant-authority",))
        self.tokens["viewer"] = self.token("chelsea", "chelsea-viewer", permissions=("view",))
        self.connection = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=10)

    def write_config(self):
        jurisdictions = ",\n".join(
            f"""  {{ id = "{name}"; name = "{name.capitalize()}"; participates = true;
    token_issuer = "https://idp.{name}.test"; token_key = {libconfig_string(self.keys[name][1])}; }}"""
            for name in JURISDICTIONS)
        # Every viewer is the same Chelsea user from one address, so the
        # per-user session cap and the WHEP rate limits are raised above
        # what one round needs.
        text = f"""hub: {{
  http_listen = "127.0.0.1:{self.http_port}";
  ice_udp_ports = [{self.ice_ports[0]}, {self.ice_ports[1]}];
  public_addresses = ["127.0.0.1"];
  state_dir = {libconfig_string(os.path.join(self.temp, "state"))};
  idle_source_stop_s = 30;
  reconnect_backoff_ms = [200, 1000];
  max_sessions_per_user = 100000;
  whep_rate_per_client = 10000;
  whep_rate_total = 10000;
}};
jurisdictions = (
{jurisdictions}
);
agencies = ();
cameras = (
  {{ id = "{CAMERA_ID}"; jurisdiction = "boston"; location = "Revocation bench camera";
    brand_model = "cimshub-camera-sim"; installed = "2024-01-01";
    source = "rtsp://127.0.0.1:{self.sim_port}/{CAMERA_ID}";
    shared_with = []; restricted = false; }}
);
viewer_profiles = (
  {{ name = "browser"; codecs = ["h264"]; max_width = 1920; max_height = 1080; max_fps = 60; max_kbps = 4000; }}
);
"""
        with open(self.config_path, "w", encoding="utf-8") as config_file:
            config_file.write(text)

    def start_camera(self):
        fps = self.args.fps
        argv = [self.args.camera_sim, "--address", "127.0.0.1", "--port", str(self.sim_port),
                "--camera", f"path={CAMERA_ID},codec=h264,width=320,height=240,fps={fps},keyint={fps}"]
        proc = self.processes.start("camera-sim", argv)
        if not wait_for_output(proc, os.path.join(self.temp, "camera-sim.stdout"), "serving", 15):
            raise RuntimeError("the camera simulator did not print its serving line within 15 s")

    def start_hub(self):
        proc = self.processes.start("cimshub", [self.args.cimshub, "--config", self.config_path])
        if not wait_for_healthz(proc, self.base_url, 15):
            raise RuntimeError(f"the hub did not return 200 on {self.base_url}/healthz within 15 s")

    def token(self, jurisdiction, subject, roles=(), permissions=()):
        argv = [self.args.cimshubctl, "token", "mint", "--key", self.keys[jurisdiction][0],
                "--issuer", f"https://idp.{jurisdiction}.test", "--subject", subject,
                "--name", subject.replace("-", " ").title(), "--jurisdiction", jurisdiction,
                "--ttl", "3600"]
        if roles:
            argv += ["--roles", ",".join(roles)]
        if permissions:
            argv += ["--permissions", ",".join(permissions)]
        return run_checked(argv, "cimshubctl token mint").strip()

    # ---- admin API on one kept-alive connection --------------------------------

    def api(self, method, path, body=None):
        """Send one admin-API request. Returns (status, JSON body, request
        start and response end in Unix ms); status 0 when the request failed."""
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": "Bearer " + self.tokens["authority"]}
        if data is not None:
            headers["Content-Type"] = "application/json"
        sent_ms = time.time() * 1000
        try:
            self.connection.request(method, path, body=data, headers=headers)
            response = self.connection.getresponse()
            text = response.read()
            done_ms = time.time() * 1000
        except (OSError, http.client.HTTPException) as error:
            self.connection.close()  # the next request opens a new connection
            return 0, {"error": str(error)}, sent_ms, time.time() * 1000
        try:
            parsed = json.loads(text) if text else {}
        except ValueError:
            parsed = {"raw": text.decode("utf-8", "replace")}
        return response.status, parsed, sent_ms, done_ms

    def grant_create(self, incident_number):
        status, body, _, _ = self.api("POST", "/api/v1/grants", {
            "grantee": "chelsea", "cameras": [CAMERA_ID], "purpose": "Revocation benchmark",
            "incident_number": incident_number})
        if status != 201:
            raise RuntimeError(f"POST /api/v1/grants returned {status} {body}")
        return body["grant"]["id"]

    # ---- one round -------------------------------------------------------------

    def run_round(self, round_index, count):
        """Start @count viewers, each under a new grant, revoke the grants one
        by one and collect one sample per viewer."""
        entries = []
        for i in range(count):
            number = f"RB-{round_index:03d}-{i:04d}"
            grant_id = self.grant_create(number)
            viewer = access_live.Viewer(self, f"viewer-{round_index}-{i}", self.tokens["viewer"],
                                        CAMERA_ID, incident=number)
            self.viewers.append(viewer)
            entries.append({"grant_id": grant_id, "incident_number": number, "viewer": viewer})
            time.sleep(self.args.start_gap_ms / 1000)

        # One deadline for the whole round, so that viewers that never get a
        # keyframe or never end cost the round 30 s or 15 s, not that much each.
        keyframe_end = time.monotonic() + 30
        for entry in entries:
            left_s = max(0.1, keyframe_end - time.monotonic())
            entry["keyframe"] = entry["viewer"].wait_keyframe(timeout_s=left_s) is not None
        time.sleep(0.5)  # let every stream settle into its steady frame rhythm

        frame_interval_s = 1.0 / self.args.fps
        random.shuffle(entries)
        for entry in entries:
            time.sleep(self.args.gap_ms / 1000 + random.uniform(0, frame_interval_s))
            status, body, sent_ms, done_ms = self.api("DELETE", f"/api/v1/grants/{entry['grant_id']}")
            entry.update(revoke_status=status, revoke_body=body,
                         revoke_sent_ms=sent_ms, revoke_done_ms=done_ms)

        result_end = time.monotonic() + 15
        for entry in entries:
            left_s = max(0.0, result_end - time.monotonic())
            entry["result"] = entry["viewer"].wait_result(timeout_s=left_s)
            entry["viewer"].stop()
            self.add_sample(entry)

    def add_sample(self, entry):
        result = entry["result"] or {}
        problems = []
        if not entry["keyframe"]:
            problems.append("no keyframe before the revocation")
        if entry["revoke_status"] != 200 or entry["revoke_body"].get("sessions_ended") != 1:
            problems.append(f"revoke returned {entry['revoke_status']} {entry['revoke_body']}")
        if result.get("ended_by") not in ENDED_BY_HUB:
            problems.append(f"the viewer ended by {result.get('ended_by')!r}, not by the hub")
        if not result.get("last_packet_unix_ms"):
            problems.append("the viewer reported no last packet")
        if problems:
            self.failures.append(f"{entry['incident_number']}: " + "; ".join(problems))
            return

        # NOTE: the viewer reports Unix times in whole ms, rounded down, so a
        # difference taken with one of its times can read up to 1 ms low.
        done_ms = entry["revoke_done_ms"]
        close_ms = result.get("close_notify_unix_ms")
        self.samples.append({
            "incident_number": entry["incident_number"],
            "revoke_call_ms": done_ms - entry["revoke_sent_ms"],
            "last_packet_after_response_ms": result["last_packet_unix_ms"] - done_ms,
            "last_packet_after_request_ms": result["last_packet_unix_ms"] - entry["revoke_sent_ms"],
            "close_notify_after_response_ms": close_ms - done_ms if close_ms else None,
            "ended_by": result["ended_by"],
        })

    def run(self):
        left = self.args.sessions
        round_index = 0
        while left > 0:
            count = min(left, self.args.batch)
            self.run_round(round_index, count)
            print(f"round {round_index}: {count} sessions, {len(self.samples)} samples so far, "
                  f"{len(self.failures)} failed", flush=True)
            left -= count
            round_index += 1

    def cleanup(self):
        for viewer in self.viewers:
            viewer.stop()
        if self.connection is not None:
            self.connection.close()
        self.processes.stop_all()
        if self.args.keep_temp:
            print(f"note: kept {self.temp}")
        else:
            shutil.rmtree(self.temp, ignore_errors=True)

    # ---- report ----------------------------------------------------------------

    def report(self):
        rows = [
            ("last packet - revoke response", "last_packet_after_response_ms"),
            ("last packet - revoke request sent", "last_packet_after_request_ms"),
            ("close_notify - revoke response", "close_notify_after_response_ms"),
            ("revoke call (request to response)", "revoke_call_ms"),
        ]
        print(f"\nRevocation to stop: {len(self.samples)} of {self.args.sessions} sessions measured, "
              f"camera 320x240 H.264 at {self.args.fps} fps (a frame every "
              f"{1000 / self.args.fps:.1f} ms), {self.args.batch} viewers per round")
        print("| measure (ms) | n | min | p50 | p99 | max |")
        print("|---|---|---|---|---|---|")
        for label, key in rows:
            values = [s[key] for s in self.samples if s[key] is not None]
            if not values:
                print(f"| {label} | 0 | | | | |")
                continue
            print(f"| {label} | {len(values)} | {min(values):.1f} | {percentile(values, 0.5):.1f} | "
                  f"{percentile(values, 0.99):.1f} | {max(values):.1f} |")

        after = [s["last_packet_after_response_ms"] for s in self.samples]
        n_after = sum(1 for v in after if v > 0)
        n_close = sum(1 for s in self.samples if s["ended_by"] == "close-notify")
        print(f"last packet after the revoke response: {n_after} of {len(after)} sessions; "
              f"ended by close_notify: {n_close}, by ICE failure: {len(self.samples) - n_close}")
        for failure in self.failures[:20]:
            print(f"failed: {failure}")
        if len(self.failures) > 20:
            print(f"failed: ... and {len(self.failures) - 20} more")

    def write_samples(self, path):
        with open(path, "w", newline="", encoding="utf-8") as out:
            writer = csv.DictWriter(out, fieldnames=list(self.samples[0]) if self.samples else ["incident_number"])
            writer.writeheader()
            writer.writerows(self.samples)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", default=os.path.join(BENCH_DIR, "..", "build"),
                        help="meson build directory that contains the binaries (default: build)")
    parser.add_argument("--cimshub", help="path of cimshub (default: BUILD/hub/cimshub)")
    parser.add_argument("--cimshubctl", help="path of cimshubctl (default: BUILD/hub/cimshubctl)")
    parser.add_argument("--camera-sim",
                        help="path of cimshub-camera-sim (default: BUILD/pipelines/cimshub-camera-sim)")
    parser.add_argument("--whep-viewer",
                        help="path of cimshub-whep-viewer (default: BUILD/bench/cimshub-whep-viewer)")
    parser.add_argument("--sessions", type=int, default=200,
                        help="sessions to start and revoke, one grant each (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=50,
                        help="viewer processes running at once, one round (default: %(default)s)")
    parser.add_argument("--fps", type=int, default=30,
                        help="camera frame rate; one frame interval is the packet-timing "
                             "resolution (default: %(default)s)")
    parser.add_argument("--gap-ms", type=float, default=30.0,
                        help="pause between revocations in ms, plus a random part of up to "
                             "one frame interval (default: %(default)s)")
    parser.add_argument("--start-gap-ms", type=float, default=20.0,
                        help="pause between viewer starts in ms (default: %(default)s)")
    parser.add_argument("--time-limit", type=float, default=280.0,
                        help="seconds after which the run is stopped as failed (default: %(default)s)")
    parser.add_argument("--samples", help="write every sample to this CSV file")
    parser.add_argument("--keep-temp", action="store_true",
                        help="keep the temporary directory with logs and config")
    args = parser.parse_args()

    defaults = {"cimshub": "hub/cimshub", "cimshubctl": "hub/cimshubctl",
                "camera_sim": "pipelines/cimshub-camera-sim",
                "whep_viewer": "bench/cimshub-whep-viewer"}
    for name, relative in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, os.path.join(args.build, relative))
        if not os.access(getattr(args, name), os.X_OK):
            parser.error(f"{getattr(args, name)} is not an executable file; build it or give "
                         f"--build or --{name.replace('_', '-')}")
    if args.sessions < 1 or args.batch < 1 or args.fps < 1:
        parser.error("--sessions, --batch and --fps must be at least 1")
    return args


def main():
    args = parse_args()
    bench = Bench(args)

    def abort():
        print(f"failed: still running {args.time_limit:.0f} s after the start; stopping", flush=True)
        bench.report()
        bench.cleanup()
        os._exit(1)

    # A timer, not only the per-wait limits, so that a hung call still ends the run.
    watchdog = threading.Timer(args.time_limit, abort)
    watchdog.daemon = True
    watchdog.start()
    try:
        bench.setup()
        bench.run()
    except (RuntimeError, OSError, subprocess.SubprocessError) as error:
        bench.failures.append(f"set-up: {error}")
    finally:
        watchdog.cancel()
        bench.report()
        if args.samples:
            bench.write_samples(args.samples)
        if bench.failures:
            for name in ("cimshub", "camera-sim"):
                path = os.path.join(bench.temp, name + ".stderr")
                if os.path.exists(path):
                    with open(path, errors="replace") as log:
                        print(f"----- {name}.stderr (last 30 lines) -----")
                        print("".join(log.readlines()[-30:]))
        bench.cleanup()

    return 0 if not bench.failures and len(bench.samples) == args.sessions else 1


if __name__ == "__main__":
    sys.exit(main())
