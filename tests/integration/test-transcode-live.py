#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
# Relay or transcode per viewer, end to end: real WHEP sessions (the C
# viewer) against the hub and simulated H.264 and H.265 cameras, checked
# through what each viewer decodes and the hub's transcoder metrics.
"""Run the transcoding integration tests; print one PASS/FAIL line each and
a last line "N passed, M failed". Exit status 0 only when all pass."""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "browser"))
from run_browser_test import (  # noqa: E402  (the path is set just above)
    Processes, free_tcp_port, free_udp_range, http_get, libconfig_string, make_key_pair,
    run_checked, wait_for_healthz, wait_for_output)

H264_CAMERA = ("bos-0001", "codec=h264,width=1280,height=720,fps=25,keyint=25")
H265_CAMERA = ("bos-0002", "codec=h265,width=640,height=480,fps=15,keyint=15")
# Switches between 640x360 and 480x270 every few seconds (a new SPS).
RESIZING_CAMERA = ("bos-0003", "codec=h264,width=640,height=360,fps=15,keyint=15,fault=resize")


def metric_samples(base_url, name):
    """Returns {labels text: value} for every sample of metric @name."""
    status, body = http_get(base_url + "/metrics")
    samples = {}
    if status != 200:
        return samples
    for line in body.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            key, _, value = line.rpartition(" ")
            samples[key[len(name):]] = float(value)
    return samples


def metric_total(base_url, name):
    return sum(metric_samples(base_url, name).values())


class Rig:
    def __init__(self, args):
        self.args = args
        self.temp = tempfile.mkdtemp(prefix="cimshub-transcode-")
        self.processes = Processes(self.temp)
        self.results = []

    def setup(self):
        self.keys = make_key_pair(self.temp, "boston")
        self.http_port = free_tcp_port()
        self.sim_port = free_tcp_port()
        ice = free_udp_range(40)
        self.base_url = f"http://127.0.0.1:{self.http_port}"
        cameras = ",\n".join(
            f"""  {{ id = "{camera}"; jurisdiction = "boston"; location = "Bench {camera}";
    brand_model = "cimshub-camera-sim"; installed = "2024-01-01";
    source = "rtsp://127.0.0.1:{self.sim_port}/{camera}"; shared_with = []; restricted = false; }}"""
            for camera, _ in (H264_CAMERA, H265_CAMERA, RESIZING_CAMERA))
        config = f"""hub: {{
  http_listen = "127.0.0.1:{self.http_port}";
  ice_udp_ports = [{ice[0]}, {ice[1]}];
  public_addresses = ["127.0.0.1"];
  state_dir = {libconfig_string(os.path.join(self.temp, "state"))};
  default_profile = "browser";
  whep_rate_per_client = 100;
}};
jurisdictions = (
  {{ id = "boston"; name = "Boston"; participates = true;
    token_issuer = "https://idp.boston.test"; token_key = {libconfig_string(self.keys[1])}; }}
);
cameras = (
{cameras}
);
viewer_profiles = (
  {{ name = "browser"; codecs = ["h264", "vp8"]; max_width = 1920; max_height = 1080; max_fps = 30; max_kbps = 4000; }},
  {{ name = "legacy-640"; codecs = ["h264"]; max_width = 640; max_height = 360; max_fps = 15; max_kbps = 800; }},
  {{ name = "legacy-320"; codecs = ["h264"]; max_width = 320; max_height = 180; max_fps = 15; max_kbps = 300; }}
);
"""
        self.config_path = os.path.join(self.temp, "hub.conf")
        with open(self.config_path, "w", encoding="utf-8") as config_file:
            config_file.write(config)

        argv = [self.args.camera_sim, "--address", "127.0.0.1", "--port", str(self.sim_port)]
        for camera, spec in (H264_CAMERA, H265_CAMERA, RESIZING_CAMERA):
            argv += ["--camera", f"path={camera},{spec}"]
        sim = self.processes.start("camera-sim", argv)
        if not wait_for_output(sim, os.path.join(self.temp, "camera-sim.stdout"), RESIZING_CAMERA[0], 15):
            raise RuntimeError("the camera simulator did not start")
        hub = self.processes.start("cimshub", [self.args.cimshub, "--config", self.config_path])
        if not wait_for_healthz(hub, self.base_url, 15):
            raise RuntimeError("the hub did not become healthy")
        self.token = run_checked([self.args.cimshubctl, "token", "mint", "--key", self.keys[0],
                                  "--issuer", "https://idp.boston.test", "--subject", "bos-wall",
                                  "--name", "Wall Decoder", "--jurisdiction", "boston",
                                  "--permissions", "view"], "token mint").strip()

    def viewer(self, camera, *extra, duration_s=4, viewers=1, wait=True):
        argv = [self.args.whep_viewer, "--url", self.base_url, "--camera", camera, "--token", self.token,
                "--viewers", str(viewers), "--duration", str(duration_s), "--json"] + list(extra)
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        if not wait:
            return proc
        return self.collect(proc)

    @staticmethod
    def collect(proc, timeout_s=40):
        try:
            out, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        results = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        return proc.returncode, [r for r in results if "session_url" in r], err

    def record(self, name, passed, detail):
        self.results.append(passed)
        print(f"{'PASS' if passed else 'FAIL'}: {name}: {detail}", flush=True)

    def cleanup(self):
        self.processes.stop_all()
        if self.args.keep_temp:
            print(f"note: kept {self.temp}")
        else:
            shutil.rmtree(self.temp, ignore_errors=True)


def decoded(result, codec, width, height):
    return (result.get("first_keyframe_ms") is not None and result.get("codec") == codec
            and result.get("width") == width and result.get("height") == height
            and result.get("packets", 0) > 20)


# Seconds a shared transcoder may take to stop after its viewers leave.
TRANSCODER_STOP_LIMIT_S = 15


def wait_transcoders(rig, expected, timeout_s):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if metric_total(rig.base_url, "cimshub_transcoders_running") == expected:
            return True
        time.sleep(0.2)
    return False


def test_relay_when_matching(rig):
    before = metric_total(rig.base_url, "cimshub_transcoders_running")
    status, results, err = rig.viewer(H264_CAMERA[0])
    during = metric_total(rig.base_url, "cimshub_transcoders_running")
    ok = status == 0 and results and decoded(results[0], "H264", 1280, 720) and before == 0 and during == 0
    rig.record("relay-when-matching", ok, f"viewer {results[0] if results else err.strip()[-300:]}, "
               f"transcoders running {before} -> {during}")


def test_legacy_profile(rig):
    proc = rig.viewer(H264_CAMERA[0], "--client", "legacy-640", wait=False)
    running = wait_transcoders(rig, 1, 10)
    status, results, err = rig.collect(proc)
    ok = running and status == 0 and results and decoded(results[0], "H264", 640, 360)
    rig.record("legacy-profile-640x360", ok, f"transcoder seen: {running}; viewer "
               f"{results[0] if results else err.strip()[-300:]}")


def test_shared_transcoder(rig):
    proc = rig.viewer(H264_CAMERA[0], "--client", "legacy-640", viewers=2, duration_s=5, wait=False)
    time.sleep(3)
    running = metric_total(rig.base_url, "cimshub_transcoders_running")
    viewers = metric_samples(rig.base_url, "cimshub_transcoder_viewers")
    status, results, err = rig.collect(proc)
    # The transcoder normally stops about a second after its last viewer
    # leaves. The longer wait leaves room for a loaded sanitizer run.
    stopped = wait_transcoders(rig, 0, TRANSCODER_STOP_LIMIT_S)
    ok = (status == 0 and len(results) == 2 and all(decoded(r, "H264", 640, 360) for r in results)
          and running == 1 and list(viewers.values()) == [2.0] and stopped)
    rig.record("shared-transcoder", ok, f"running {running}, viewers {viewers}, stopped after they left: "
               f"{stopped}, viewers ok: {[decoded(r, 'H264', 640, 360) for r in results]}")


def test_vp8_only(rig):
    status, results, err = rig.viewer(H264_CAMERA[0], "--vp8", "--no-h264")
    ok = status == 0 and results and decoded(results[0], "VP8", 1280, 720)
    rig.record("vp8-only-offer", ok, f"{results[0] if results else err.strip()[-300:]}")


def test_h265_to_h264(rig):
    status, results, err = rig.viewer(H265_CAMERA[0])
    ok = status == 0 and results and decoded(results[0], "H264", 640, 480)
    rig.record("h265-camera-to-h264", ok, f"{results[0] if results else err.strip()[-300:]}")


def test_resize_mid_stream(rig):
    relayed = rig.viewer(RESIZING_CAMERA[0], duration_s=10, wait=False)
    transcoded = rig.viewer(RESIZING_CAMERA[0], "--client", "legacy-320", duration_s=10, wait=False)
    problems = []
    for name, proc, sizes_wanted in (("relayed", relayed, {"640x360", "480x270"}),
                                     ("transcoded", transcoded, {"320x180"})):
        status, results, err = rig.collect(proc)
        result = results[0] if results else {}
        sizes = set(result.get("sizes") or [])
        gap_ms = (result.get("ended_unix_ms") or 0) - (result.get("last_packet_unix_ms") or 0)
        if status != 0 or not sizes_wanted <= sizes or (result.get("keyframes") or 0) < 3:
            problems.append(f"{name}: status {status}, sizes {sorted(sizes)}, "
                            f"keyframes {result.get('keyframes')}, {err.strip()[-200:]}")
        elif result.get("lost", 0) != 0 or gap_ms > 1000:
            problems.append(f"{name}: lost {result.get('lost')}, media stopped {gap_ms} ms before the end")
    rig.record("resize-mid-stream", not problems, "; ".join(problems) or
               "the relayed viewer followed both sizes, the transcoded one kept 320x180")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("cimshub", "cimshubctl", "camera-sim", "whep-viewer"):
        parser.add_argument("--" + name, required=True)
    parser.add_argument("--keep-temp", action="store_true")
    rig = Rig(parser.parse_args())
    try:
        rig.setup()
        test_relay_when_matching(rig)
        test_legacy_profile(rig)
        test_shared_transcoder(rig)
        test_vp8_only(rig)
        test_h265_to_h264(rig)
        test_resize_mid_stream(rig)
    except Exception as error:  # a set-up failure is a failed case
        rig.record("setup", False, f"{type(error).__name__}: {error}")
    finally:
        if not all(rig.results):
            path = os.path.join(rig.temp, "cimshub.stderr")
            if os.path.exists(path):
                with open(path, errors="replace") as log:
                    print("----- cimshub.stderr (last 40 lines) -----\n" + "".join(log.readlines()[-40:]))
        rig.cleanup()
    passed = sum(1 for r in rig.results if r)
    print(f"{passed} passed, {len(rig.results) - passed} failed")
    return 0 if rig.results and all(rig.results) else 1


if __name__ == "__main__":
    sys.exit(main())
