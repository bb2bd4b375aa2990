#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
# Live authorization and audit, end to end: real WHEP sessions (the C viewer)
# against the hub and the camera simulator on 127.0.0.1, driven through the
# admin API, then the audit log read back from the hub's SQLite file.
"""Run the live-access and audit integration tests; print one PASS/FAIL line
each and a last line "N passed, M failed". Exit status 0 only when all pass."""

import argparse
import datetime
import http.client
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "browser"))
from run_browser_test import (  # noqa: E402  (the path is set just above)
    Processes, free_tcp_port, free_udp_range, http_get, libconfig_string, make_key_pair,
    read_metric_sum, run_checked, wait_for_healthz, wait_for_output)

JURISDICTIONS = ("boston", "chelsea", "everett")
CAMERAS = ("bos-0001", "bos-0002")
INCIDENT = "BOS-MI-2026-77"
GRANT_INCIDENT = "BPD-2026-004711"
ROTATION_INCIDENT = "BPD-2026-004712"
RENAME_INCIDENT = "BPD-2026-004714"
ALLOWANCE_INCIDENT = "BPD-2026-004715"
SLOW_INCIDENT = "BPD-2026-004713"
# The camera behind a proxy that keeps each RTSP connection waiting this
# long before passing it on, so that a viewer's request waits for the
# camera to connect.
SLOW_CAMERA = "bos-slow"
SLOW_CONNECT_S = 3.0
# The hub rewrites its heartbeat file every 2 s.
HEARTBEAT_WAIT_S = 2.5
RESTART_WARNING = "takes effect only when the hub restarts"


def iso_in(seconds):
    moment = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Viewer:
    """One cimshub-whep-viewer process with its --events lines read as they come."""

    def __init__(self, rig, name, token, camera, incident=None, duration_s=0, expect_status=None):
        self.name = name
        self.events = []
        self.lock = threading.Lock()
        argv = [rig.args.whep_viewer, "--url", rig.base_url, "--camera", camera, "--token", token,
                "--viewers", "1", "--duration", str(duration_s), "--idle-timeout", "4000",
                "--events", "--json"]
        if incident:
            argv += ["--incident-number", incident]
        if expect_status:
            argv += ["--expect-status", str(expect_status)]
        self.stderr = open(os.path.join(rig.temp, name + ".stderr"), "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self.stderr, start_new_session=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            with self.lock:
                self.events.append(event)

    def find(self, predicate):
        with self.lock:
            for event in self.events:
                if predicate(event):
                    return event
        return None

    def wait_for(self, predicate, timeout_s):
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            event = self.find(predicate)
            if event is not None:
                return event
            time.sleep(0.05)
        return None

    def wait_keyframe(self, timeout_s=10):
        return self.wait_for(lambda e: e.get("event") == "first-keyframe"
                             or e.get("first_keyframe_ms") is not None, timeout_s)

    def wait_result(self, timeout_s=15):
        """The per-viewer result object printed when the viewer ends."""
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None
        self.reader.join(timeout=2)
        return self.find(lambda e: "session_url" in e)

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.stderr.close()


class Rig:
    def __init__(self, args):
        self.args = args
        self.temp = tempfile.mkdtemp(prefix="cimshub-access-")
        self.processes = Processes(self.temp)
        self.results = []
        self.viewers = []
        self.keys = {}
        self.state_dir = os.path.join(self.temp, "state")
        self.db_path = os.path.join(self.state_dir, "cimshub.db")

    # ---- set-up -------------------------------------------------------------

    def setup(self):
        for name in JURISDICTIONS:
            self.keys[name] = make_key_pair(self.temp, name)
        self.http_port = free_tcp_port()
        self.sim_port = free_tcp_port()
        self.start_slow_proxy()
        self.ice_ports = free_udp_range(40)
        self.base_url = f"http://127.0.0.1:{self.http_port}"
        self.config_path = os.path.join(self.temp, "hub.conf")
        self.write_config()
        self.start_camera()
        self.start_hub()

    def write_config(self, restricted=False):
        jurisdictions = ",\n".join(
            f"""  {{ id = "{name}"; name = "{name.capitalize()}"; participates = true;
    token_issuer = "https://idp.{name}.test"; token_key = {libconfig_string(self.keys[name][1])}; }}"""
            for name in JURISDICTIONS)
        cameras = ",\n".join(
            f"""  {{ id = "{camera}"; jurisdiction = "boston"; location = "Plaza camera {camera}";
    brand_model = "cimshub-camera-sim"; installed = "2024-01-01";
    source = "rtsp://127.0.0.1:{self.sim_port}/{camera}";
    shared_with = []; restricted = {"true" if restricted and camera == "bos-0002" else "false"}; }}"""
            for camera in CAMERAS)
        cameras += f""",
  {{ id = "{SLOW_CAMERA}"; jurisdiction = "boston"; location = "Harbor camera behind a slow link";
    brand_model = "cimshub-camera-sim"; installed = "2024-01-01";
    source = "rtsp://127.0.0.1:{self.slow_port}/bos-0001"; shared_with = []; restricted = false; }}"""
        text = f"""hub: {{
  http_listen = "127.0.0.1:{self.http_port}";
  ice_udp_ports = [{self.ice_ports[0]}, {self.ice_ports[1]}];
  public_addresses = ["127.0.0.1"];
  trusted_proxies = ["127.0.0.1"];
  state_dir = {libconfig_string(self.state_dir)};
  idle_source_stop_s = 30;
  reconnect_backoff_ms = [200, 1000];
  whep_rate_per_client = 100;
}};
jurisdictions = (
{jurisdictions}
);
agencies = ();
cameras = (
{cameras}
);
viewer_profiles = (
  {{ name = "browser"; codecs = ["h264"]; max_width = 1920; max_height = 1080; max_fps = 30; max_kbps = 4000; }}
);
"""
        with open(self.config_path, "w", encoding="utf-8") as config_file:
            config_file.write(text)

    def start_slow_proxy(self):
        """Listens on self.slow_port and relays each connection to the camera
        simulator SLOW_CONNECT_S after accepting it."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        self.slow_port = listener.getsockname()[1]

        def pipe(source, target):
            try:
                while True:
                    data = source.recv(65536)
                    if not data:
                        break
                    target.sendall(data)
            except OSError:
                pass
            finally:
                for sock in (source, target):
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        def serve():
            while True:
                try:
                    client, _ = listener.accept()
                except OSError:
                    return
                time.sleep(SLOW_CONNECT_S)
                try:
                    upstream = socket.create_connection(("127.0.0.1", self.sim_port), timeout=5)
                except OSError:
                    client.close()
                    continue
                upstream.settimeout(None)
                threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
                threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()

        threading.Thread(target=serve, daemon=True).start()

    def start_camera(self):
        argv = [self.args.camera_sim, "--address", "127.0.0.1", "--port", str(self.sim_port)]
        for camera in CAMERAS:
            argv += ["--camera", f"path={camera},codec=h264,width=320,height=240,fps=15,keyint=15"]
        proc = self.processes.start("camera-sim", argv)
        if not wait_for_output(proc, os.path.join(self.temp, "camera-sim.stdout"), "serving", 15):
            raise RuntimeError("the camera simulator did not start")

    def start_hub(self):
        proc = self.processes.start("cimshub", [self.args.cimshub, "--config", self.config_path])
        if not wait_for_healthz(proc, self.base_url, 15):
            raise RuntimeError("the hub did not become healthy")
        self.hub_proc = proc

    def token(self, jurisdiction, subject, roles=(), permissions=("view",), ttl=3600):
        argv = [self.args.cimshubctl, "token", "mint", "--key", self.keys[jurisdiction][0],
                "--issuer", f"https://idp.{jurisdiction}.test", "--subject", subject,
                "--name", subject.replace("-", " ").title(), "--jurisdiction", jurisdiction,
                "--ttl", str(ttl)]
        if roles:
            argv += ["--roles", ",".join(roles)]
        if permissions:
            argv += ["--permissions", ",".join(permissions)]
        return run_checked(argv, "cimshubctl token mint").strip()

    def api(self, method, path, token, body=None, headers=None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("Authorization", "Bearer " + token)
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                text = response.read().decode()
                return response.status, json.loads(text) if text else {}
        except urllib.error.HTTPError as error:
            text = error.read().decode()
            try:
                return error.code, json.loads(text)
            except ValueError:
                return error.code, {"raw": text}

    def viewer(self, *args, **kwargs):
        viewer = Viewer(self, *args, **kwargs)
        self.viewers.append(viewer)
        return viewer

    def record(self, name, passed, detail):
        self.results.append(passed)
        print(f"{'PASS' if passed else 'FAIL'}: {name}: {detail}", flush=True)

    def cleanup(self):
        for viewer in self.viewers:
            viewer.stop()
        self.processes.stop_all()
        if not self.args.keep_temp:
            shutil.rmtree(self.temp, ignore_errors=True)
        else:
            print(f"note: kept {self.temp}")


def ended_by_hub(result):
    return result is not None and result.get("ended_by") in ("close-notify", "ice-failed")


# ---- the cases -------------------------------------------------------------


def camera_listing(reply, camera_id):
    """The "viewable" and "rule" members of @camera_id in a GET
    /api/v1/cameras reply, or the reply itself when the camera is not in it."""
    status, body = reply
    for camera in body.get("cameras", []) if status == 200 else []:
        if camera.get("id") == camera_id:
            return camera.get("viewable"), camera.get("rule")
    return reply


def test_grant_revoked(rig, tokens):
    status, body = rig.api("POST", "/api/v1/grants", tokens["boston-authority"], {
        "grantee": "chelsea", "cameras": ["bos-0001"], "purpose": "Mutual aid, parade",
        "incident_number": GRANT_INCIDENT})
    if status != 201:
        rig.record("grant-revoked", False, f"grant create returned {status} {body}")
        return None
    grant_id = body["grant"]["id"]

    missing = rig.viewer("chelsea-no-number", tokens["chelsea-viewer"], "bos-0001", expect_status=403)
    missing_result = missing.wait_result()
    # The camera list reports that a number is needed and ignores one sent to
    # it, so that numbers can be tried only by audited, rate-limited requests.
    listed = {number: camera_listing(rig.api("GET", "/api/v1/cameras", tokens["chelsea-viewer"],
                                             headers={"X-Incident-Number": number} if number else None),
                                     "bos-0001")
              for number in (None, GRANT_INCIDENT)}

    viewer = rig.viewer("chelsea-granted", tokens["chelsea-viewer"], "bos-0001", incident=GRANT_INCIDENT)
    keyframe = viewer.wait_keyframe()
    revoke_status, revoke_body = rig.api("DELETE", f"/api/v1/grants/{grant_id}", tokens["boston-authority"])
    revoked_at_ms = time.time() * 1000
    result = viewer.wait_result()
    problems = []
    if missing_result is None or missing.proc.returncode != 0:
        problems.append(f"a request without X-Incident-Number was not refused 403: {missing_result}")
    if keyframe is None:
        problems.append("the granted viewer got no keyframe")
    needs_number = (False, "incident-number-missing")
    if listed != {None: needs_number, GRANT_INCIDENT: needs_number}:
        problems.append(f"/api/v1/cameras listed bos-0001 as {listed} without and with the incident number")
    if revoke_status != 200 or revoke_body.get("sessions_ended") != 1:
        problems.append(f"revoke returned {revoke_status} {revoke_body}")
    if not ended_by_hub(result):
        problems.append(f"the viewer was not ended by the hub: {result}")
    stop_ms = None
    if result and result.get("last_packet_unix_ms"):
        stop_ms = result["last_packet_unix_ms"] - revoked_at_ms
    rig.record("grant-revoked", not problems,
               "; ".join(problems) or f"last media packet {stop_ms:.0f} ms after the revoke response"
               if stop_ms is not None else "; ".join(problems) or "ended")
    return result


def test_revoked_while_camera_connects(rig, tokens):
    # The grant is revoked while the viewer's request waits for the camera:
    # the request must be refused, not become a session under the old grant.
    status, body = rig.api("POST", "/api/v1/grants", tokens["boston-authority"], {
        "grantee": "chelsea", "cameras": [SLOW_CAMERA], "purpose": "Harbor patrol",
        "incident_number": SLOW_INCIDENT})
    if status != 201:
        rig.record("revoked-while-camera-connects", False, f"grant create returned {status} {body}")
        return
    viewer = rig.viewer("chelsea-slow", tokens["chelsea-viewer"], SLOW_CAMERA, incident=SLOW_INCIDENT,
                        expect_status=403)
    time.sleep(SLOW_CONNECT_S / 3)
    revoke_status, revoke_body = rig.api("DELETE", f"/api/v1/grants/{body['grant']['id']}",
                                         tokens["boston-authority"])
    result = viewer.wait_result(timeout_s=SLOW_CONNECT_S + 15)
    ok = (revoke_status == 200 and revoke_body.get("sessions_ended") == 0 and result is not None
          and result.get("status") == 403 and viewer.proc.returncode == 0)
    rig.record("revoked-while-camera-connects", ok,
               f"revoke {revoke_status} {revoke_body}; viewer status {result and result.get('status')}, "
               f"packets {result and result.get('packets')}")


def test_grant_expires(rig, tokens):
    ends_at = iso_in(4)
    status, body = rig.api("POST", "/api/v1/grants", tokens["boston-authority"], {
        "grantee": "chelsea", "cameras": ["bos-0002"], "purpose": "Four-second look",
        "ends_at": ends_at})
    if status != 201:
        rig.record("grant-expires", False, f"grant create returned {status} {body}")
        return
    end_ms = datetime.datetime.fromisoformat(ends_at.replace("Z", "+00:00")).timestamp() * 1000
    viewer = rig.viewer("chelsea-timed", tokens["chelsea-viewer"], "bos-0002", incident="CPD-2026-1")
    keyframe = viewer.wait_keyframe()
    result = viewer.wait_result(timeout_s=20)
    problems = []
    if keyframe is None:
        problems.append("no keyframe before the grant ended")
    if not ended_by_hub(result):
        problems.append(f"not ended by the hub: {result}")
    elif result.get("last_packet_unix_ms", 0) > end_ms + 1000:
        problems.append(f"media went on {result['last_packet_unix_ms'] - end_ms:.0f} ms after the grant's end")
    elif result.get("close_notify_unix_ms") and result["close_notify_unix_ms"] < end_ms - 50:
        problems.append("the session ended before the grant's end time")
    rig.record("grant-expires", not problems, "; ".join(problems) or
               f"ended {result.get('close_notify_unix_ms', end_ms) - end_ms:.0f} ms after the grant's end")


def test_incident_end(rig, tokens):
    status, body = rig.api("POST", "/api/v1/incidents", tokens["boston-commander"], {
        "incident_number": INCIDENT, "duration_s": 600, "description": "Storm response"})
    grant_status, _ = rig.api("POST", "/api/v1/grants", tokens["boston-authority"], {
        "grantee": "everett", "cameras": ["bos-0001"], "purpose": "Storm response",
        "incident_number": INCIDENT})
    if status != 201 or grant_status != 201:
        rig.record("incident-end", False, f"incident {status} {body}, grant {grant_status}")
        return
    incident_id = body["incident"]["id"]
    by_incident = rig.viewer("chelsea-incident", tokens["chelsea-viewer"], "bos-0001", incident=INCIDENT)
    by_both = rig.viewer("everett-both", tokens["everett-viewer"], "bos-0001", incident=INCIDENT, duration_s=10)
    got_both = by_incident.wait_keyframe() is not None and by_both.wait_keyframe() is not None

    end_status, end_body = rig.api("DELETE", f"/api/v1/incidents/{incident_id}", tokens["boston-commander"])
    incident_result = by_incident.wait_result()
    time.sleep(1.5)
    _, sessions = rig.api("GET", "/api/v1/sessions", tokens["boston-admin"])
    everett = [s for s in sessions.get("sessions", []) if s.get("viewer_jurisdiction") == "everett"]
    both_result = by_both.wait_result(timeout_s=20)

    problems = []
    if not got_both:
        problems.append("a viewer got no keyframe")
    if end_status != 200 or end_body.get("sessions_ended") != 1:
        problems.append(f"ending the incident returned {end_status} {end_body}")
    if not ended_by_hub(incident_result):
        problems.append(f"the incident-only viewer kept running: {incident_result}")
    if len(everett) != 1 or everett[0].get("allowed_by") != "grant":
        problems.append(f"the viewer also covered by a grant did not survive under it: {everett}")
    if both_result is None or both_result.get("ended_by") != "duration":
        problems.append(f"the grant-covered viewer did not run to its own end: {both_result}")
    rig.record("incident-end", not problems, "; ".join(problems) or
               "incident-only session ended, grant-covered session kept")


def test_cross_authority(rig, tokens):
    incident_status, incident_body = rig.api("POST", "/api/v1/incidents", tokens["chelsea-commander"], {
        "incident_number": "CPD-MI-1", "cameras": ["bos-0001"], "duration_s": 600})
    grant_status, grant_body = rig.api("POST", "/api/v1/grants", tokens["chelsea-authority"], {
        "grantee": "everett", "cameras": ["bos-0001"], "purpose": "Not ours to give"})
    viewer_grant_status, _ = rig.api("POST", "/api/v1/grants", tokens["chelsea-viewer"], {
        "grantee": "everett", "purpose": "No role"})
    problems = []
    if incident_status != 403 or incident_body.get("rule") != "not-owner":
        problems.append(f"Chelsea's commander over Boston's camera got {incident_status} {incident_body}")
    if grant_status != 403 or grant_body.get("rule") != "not-owner":
        problems.append(f"Chelsea's grant authority over Boston's camera got {grant_status} {grant_body}")
    if viewer_grant_status != 403:
        problems.append(f"a viewer without grant-authority created a grant: {viewer_grant_status}")
    rig.record("cross-authority", not problems, "; ".join(problems) or "both refused with rule not-owner")


def test_denied_leaves_nothing(rig, tokens):
    before = read_metric_sum(rig.base_url, "cimshub_sessions_started_total")
    viewer = rig.viewer("chelsea-denied", tokens["chelsea-viewer"], "bos-0002", incident="CPD-2026-2",
                        expect_status=403)
    result = viewer.wait_result()
    after = read_metric_sum(rig.base_url, "cimshub_sessions_started_total")
    _, sessions = rig.api("GET", "/api/v1/sessions", tokens["boston-admin"])
    chelsea = [s for s in sessions.get("sessions", []) if s.get("viewer_jurisdiction") == "chelsea"]
    problems = []
    if viewer.proc.returncode != 0:
        problems.append(f"the request was not refused with 403: {result}")
    if result is not None and result.get("packets", 0) != 0:
        problems.append(f"media reached a denied viewer: {result.get('packets')} packets")
    if before != after:
        problems.append(f"sessions started went from {before} to {after}")
    if chelsea:
        problems.append(f"a Chelsea session is listed: {chelsea}")
    rig.record("denied-leaves-nothing", not problems, "; ".join(problems) or "403, no session, no media")


def post_denied(rig, token, forwarded, source_address):
    """POSTs a WHEP request that policy denies, from @source_address with
    X-Forwarded-For @forwarded. Returns the HTTP status."""
    connection = http.client.HTTPConnection("127.0.0.1", rig.http_port, timeout=10,
                                            source_address=(source_address, 0))
    try:
        connection.request("POST", "/whep/cameras/bos-0002", body="v=0\r\n",
                           headers={"Content-Type": "application/sdp", "Authorization": "Bearer " + token,
                                    "X-Forwarded-For": forwarded})
        return connection.getresponse().status
    finally:
        connection.close()


def test_forwarded_address(rig, tokens):
    """The audit log names the viewer that a trusted proxy (127.0.0.1 here)
    puts in X-Forwarded-For, and not an address the viewer wrote there
    itself. From a peer that is not a trusted proxy (127.0.0.2), the header
    is ignored."""
    statuses = [post_denied(rig, tokens["chelsea-viewer"], "10.9.9.9, 198.51.100.7", "127.0.0.1"),
                post_denied(rig, tokens["chelsea-viewer"], "198.51.100.8", "127.0.0.2"),
                post_denied(rig, tokens["chelsea-viewer"], "2001:DB8::0001", "127.0.0.1"),
                post_denied(rig, tokens["chelsea-viewer"], "fe80::1%<b>evil", "127.0.0.1"),
                post_denied(rig, tokens["chelsea-viewer"], "198.51.100.9, ::ffff:127.0.0.1", "127.0.0.1")]
    status, body = rig.api("GET", "/api/v1/audit?event=request-denied&person=chelsea-viewer",
                           tokens["boston-auditor"])
    addresses = [r.get("viewer_address") for r in body.get("records", [])] if status == 200 else []
    problems = []
    if statuses != [403] * 5:
        problems.append(f"the requests returned {statuses}, expected 403 each")
    if not {"198.51.100.7", "127.0.0.2", "2001:db8::1", "198.51.100.9"} <= set(addresses):
        problems.append("the audit log lacks the forwarded viewer 198.51.100.7, the direct peer 127.0.0.2, "
                        "the forwarded 2001:db8::1 in its usual form, or 198.51.100.9 behind a proxy hop "
                        "written as ::ffff:127.0.0.1")
    if {"10.9.9.9", "198.51.100.8"} & set(addresses) or any("evil" in (a or "") for a in addresses):
        problems.append("the audit log took an address from an untrusted or malformed X-Forwarded-For entry")
    rig.record("forwarded-address", not problems, "; ".join(problems) or f"audited addresses {addresses}")


def test_token_just_expired(rig):
    """A token past its expiry but inside the 30 s clock-skew allowance of
    token checks gets a 401 at once, not a session that ends before the POST
    gets its response."""
    token = rig.token("boston", "boston-late", ttl=1)
    time.sleep(2.5)
    started = time.monotonic()
    viewer = rig.viewer("boston-late", token, "bos-0002", expect_status=401)
    viewer.wait_result(timeout_s=10)
    elapsed = time.monotonic() - started
    answered = viewer.proc.returncode == 0
    rig.record("token-just-expired", answered and elapsed < 8,
               f"401 after {elapsed:.1f} s" if answered else
               f"no 401 within {elapsed:.1f} s (viewer exit {viewer.proc.returncode})")


def hub_log_text(rig):
    with open(os.path.join(rig.temp, "cimshub.stderr"), errors="replace") as log:
        return log.read()


def wait_for_log_count(rig, needle, count, timeout_s=10):
    """Wait until the hub's log contains `needle` at least `count` times, and return whether it did."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if hub_log_text(rig).count(needle) >= count:
            return True
        time.sleep(0.1)
    return False


def test_reload_reports_key_errors(rig):
    """A reload whose new file names two unreadable token keys is refused,
    and the log gives each key error once as FILE:LINE: message, with the
    file named once. The good file is then reloaded again."""
    with open(rig.config_path, encoding="utf-8") as config_file:
        good_text = config_file.read()
    lines = good_text.splitlines()
    entry_lines = {name: 1 + next(i for i, line in enumerate(lines) if f'{{ id = "{name}"' in line)
                   for name in ("chelsea", "everett")}
    bad_text = good_text
    for name in entry_lines:
        bad_text = bad_text.replace(libconfig_string(rig.keys[name][1]),
                                    libconfig_string(os.path.join(rig.temp, f"absent-{name}.pub.pem")))
    n_refused = hub_log_text(rig).count("configuration not reloaded")
    n_reloaded = hub_log_text(rig).count("reloaded: cameras")

    with open(rig.config_path, "w", encoding="utf-8") as config_file:
        config_file.write(bad_text)
    os.kill(rig.hub_proc.pid, signal.SIGHUP)
    refused = wait_for_log_count(rig, "configuration not reloaded", n_refused + 1)
    with open(rig.config_path, "w", encoding="utf-8") as config_file:
        config_file.write(good_text)
    os.kill(rig.hub_proc.pid, signal.SIGHUP)
    restored = wait_for_log_count(rig, "reloaded: cameras", n_reloaded + 1)

    log_lines = hub_log_text(rig).splitlines()
    problems = []
    if not refused or not restored:
        problems.append(f"reload refused: {refused}, good file reloaded again: {restored}")
    for name, line in entry_lines.items():
        reported = [entry for entry in log_lines
                    if entry.startswith(f"{rig.config_path}:{line}: ") and f"absent-{name}.pub.pem" in entry]
        if len(reported) != 1:
            problems.append(f"{name}'s key error at line {line} was logged {len(reported)} times")
    if f"{rig.config_path}: {rig.config_path}:" in "\n".join(log_lines):
        problems.append("a key error names the configuration file twice")
    with sqlite3.connect(f"file:{rig.db_path}?mode=ro", uri=True) as db:
        rejected = db.execute("SELECT reason FROM audit_log WHERE event = 'config-rejected'").fetchall()
    if len(rejected) != 1 or "absent-" not in rejected[0][0]:
        problems.append(f"config-rejected records {rejected}, expected one naming a missing key")
    rig.record("reload-reports-key-errors", not problems, "; ".join(problems) or
               "both key errors logged as FILE:LINE: message, running configuration kept, rejection audited")


def test_reload_start_only_settings(rig):
    """A reload that moves state_dir and http_listen warns that each takes
    effect only at the next start, and the hub keeps writing its heartbeat
    beside the store it opened. A reload back to the values the hub runs
    with warns about nothing."""
    with open(rig.config_path, encoding="utf-8") as config_file:
        good_text = config_file.read()
    moved_dir = os.path.join(rig.temp, "moved-state")
    moved_text = good_text.replace(f"state_dir = {libconfig_string(rig.state_dir)};",
                                   f"state_dir = {libconfig_string(moved_dir)};")
    moved_text = moved_text.replace(f'http_listen = "127.0.0.1:{rig.http_port}";',
                                    f'http_listen = "127.0.0.1:{rig.http_port + 1}";')
    n_reloaded = hub_log_text(rig).count("reloaded: cameras")
    heartbeat = os.path.join(rig.state_dir, "heartbeat")

    with open(rig.config_path, "w", encoding="utf-8") as config_file:
        config_file.write(moved_text)
    os.kill(rig.hub_proc.pid, signal.SIGHUP)
    reloaded = wait_for_log_count(rig, "reloaded: cameras", n_reloaded + 1)
    written_after_reload = time.time()
    time.sleep(HEARTBEAT_WAIT_S)
    heartbeat_age_s = time.time() - os.path.getmtime(heartbeat)
    n_warnings = hub_log_text(rig).count(RESTART_WARNING)
    with open(rig.config_path, "w", encoding="utf-8") as config_file:
        config_file.write(good_text)
    os.kill(rig.hub_proc.pid, signal.SIGHUP)
    restored = wait_for_log_count(rig, "reloaded: cameras", n_reloaded + 2)

    log = hub_log_text(rig)
    problems = []
    if moved_text == good_text or not reloaded or not restored:
        problems.append(f"changed file: {moved_text != good_text}, reloaded: {reloaded}, restored: {restored}")
    for name in ("state_dir", "http_listen"):
        if f"hub.{name} changed from" not in log:
            problems.append(f"no warning that hub.{name} needs a restart")
    if n_warnings != 2 or log.count(RESTART_WARNING) != n_warnings:
        problems.append(f"{n_warnings} restart warnings after the move, {log.count(RESTART_WARNING)} after "
                        "the reload back, expected 2 and 2")
    if os.path.getmtime(heartbeat) < written_after_reload or os.path.exists(os.path.join(moved_dir, "heartbeat")):
        problems.append(f"the heartbeat left the open store's folder (age {heartbeat_age_s:.1f} s)")
    rig.record("reload-start-only-settings", not problems, "; ".join(problems) or
               "both changes warned about, heartbeat kept beside the open store")


def session_id_of(result):
    if result is None or not result.get("session_url"):
        return None
    return result["session_url"].rsplit("/", 1)[-1]


def test_key_rotation(rig, tokens):
    """Boston's token_key file gets a new key and the hub a SIGHUP, with the
    configuration text unchanged. The session whose token the old key
    verified must end with stop reason token-key-removed and one log line
    naming it. An Everett session under a grant must go on. The old token
    must get 401, and a token signed with the new key must be accepted.
    Afterwards Boston's key files contain the new key, so the caller must
    mint Boston's tokens again."""
    grant_status, grant_body = rig.api("POST", "/api/v1/grants", tokens["boston-authority"], {
        "grantee": "everett", "cameras": ["bos-0002"], "purpose": "Key rotation check",
        "incident_number": ROTATION_INCIDENT})
    if grant_status != 201:
        rig.record("key-rotation", False, f"grant create returned {grant_status} {grant_body}")
        return
    old_key = rig.viewer("boston-old-key", tokens["boston-viewer"], "bos-0001")
    kept_key = rig.viewer("everett-kept-key", tokens["everett-viewer"], "bos-0002",
                          incident=ROTATION_INCIDENT, duration_s=10)
    got_both = old_key.wait_keyframe() is not None and kept_key.wait_keyframe() is not None

    private_path, public_path = rig.keys["boston"]
    new_private, new_public = make_key_pair(rig.temp, "boston-rotated")
    shutil.copyfile(new_private, private_path)
    shutil.copyfile(new_public, public_path)
    os.kill(rig.hub_proc.pid, signal.SIGHUP)
    old_result = old_key.wait_result()
    old_session = session_id_of(old_result)

    refused = rig.viewer("boston-old-token", tokens["boston-viewer"], "bos-0001", expect_status=401)
    refused_result = refused.wait_result()
    new_status, _ = rig.api("GET", "/api/v1/cameras", rig.token("boston", "boston-viewer"))
    kept_result = kept_key.wait_result(timeout_s=20)

    with sqlite3.connect(f"file:{rig.db_path}?mode=ro", uri=True) as db:
        reasons = [reason for (reason,) in db.execute(
            "SELECT reason FROM audit_log WHERE event = 'session-stop' AND session_id = ?", (old_session,))]
    log_lines = [line for line in hub_log_text(rig).splitlines()
                 if "refuses the viewer's token" in line and "key was replaced" in line]
    named = [line for line in log_lines
             if f"session={old_session} camera=bos-0001 jurisdiction=boston:" in line]

    problems = []
    if not got_both:
        problems.append("a viewer got no keyframe before the rotation")
    if not ended_by_hub(old_result):
        problems.append(f"the session of the old key kept running: {old_result}")
    if reasons != ["token-key-removed"]:
        problems.append(f"session {old_session} stop reasons {reasons}, expected one token-key-removed")
    if len(log_lines) != 1 or len(named) != 1:
        problems.append(f"expected one log line naming session {old_session}: {log_lines}")
    if refused.proc.returncode != 0:
        problems.append(f"the old token was not refused with 401: {refused_result}")
    if new_status != 200:
        problems.append(f"a token of the new key got {new_status} from /api/v1/cameras")
    if kept_result is None or kept_result.get("ended_by") != "duration":
        problems.append(f"the Everett session did not run to its own end: {kept_result}")
    rig.record("key-rotation", not problems, "; ".join(problems) or
               "old-key session ended (token-key-removed), old token 401, other session kept")


def last_audit_sequence(rig):
    with sqlite3.connect(f"file:{rig.db_path}?mode=ro", uri=True) as db:
        return db.execute("SELECT MAX(sequence) FROM audit_log").fetchone()[0]


def stop_reasons(rig, session_id):
    with sqlite3.connect(f"file:{rig.db_path}?mode=ro", uri=True) as db:
        return [reason for (reason,) in db.execute(
            "SELECT reason FROM audit_log WHERE event = 'session-stop' AND session_id = ?", (session_id,))]


def test_reload_ends_sessions(rig, tokens):
    """One reload gives Chelsea the id "chelsea-city", with the same issuer
    and key, and takes Everett out of the network. A Chelsea session under
    a grant must end with stop reason token-key-removed: its token names
    jurisdiction "chelsea", which a new request would now get 401 for. An
    Everett session under a major incident open to every participating
    jurisdiction must end with config-changed, not incident-ended, since
    the incident goes on. The configuration is then restored."""
    grant_status, grant_body = rig.api("POST", "/api/v1/grants", tokens["boston-authority"], {
        "grantee": "chelsea", "cameras": ["bos-0002"], "purpose": "Rename check",
        "incident_number": RENAME_INCIDENT})
    incident_status, incident_body = rig.api("POST", "/api/v1/incidents", tokens["boston-commander"], {
        "incident_number": RENAME_INCIDENT, "duration_s": 600, "description": "Reload check"})
    if grant_status != 201 or incident_status != 201:
        rig.record("reload-ends-sessions", False,
                   f"grant {grant_status} {grant_body}, incident {incident_status} {incident_body}")
        return
    renamed = rig.viewer("chelsea-renamed", tokens["chelsea-viewer"], "bos-0002", incident=RENAME_INCIDENT,
                         duration_s=10)
    left_out = rig.viewer("everett-left-out", tokens["everett-viewer"], "bos-0001", incident=RENAME_INCIDENT,
                          duration_s=10)
    got_keyframes = renamed.wait_keyframe() is not None and left_out.wait_keyframe() is not None

    with open(rig.config_path, encoding="utf-8") as config_file:
        original = config_file.read()
    changed = original.replace('id = "chelsea";', 'id = "chelsea-city";').replace(
        'id = "everett"; name = "Everett"; participates = true;',
        'id = "everett"; name = "Everett"; participates = false;').replace(
        'location = "Plaza camera bos-0002";', 'location = "Plaza camera bos-0002, moved";')
    with open(rig.config_path, "w", encoding="utf-8") as config_file:
        config_file.write(changed)
    sequence_before = last_audit_sequence(rig)
    os.kill(rig.hub_proc.pid, signal.SIGHUP)
    renamed_result = renamed.wait_result()
    left_out_result = left_out.wait_result()
    with sqlite3.connect(f"file:{rig.db_path}?mode=ro", uri=True) as db:
        loaded = [json.loads(details) for (details,) in db.execute(
            "SELECT details FROM audit_log WHERE event = 'config-loaded' AND sequence > ? ORDER BY sequence",
            (sequence_before,))]
    with open(rig.config_path, "w", encoding="utf-8") as config_file:
        config_file.write(original)
    os.kill(rig.hub_proc.pid, signal.SIGHUP)
    rig.api("DELETE", f"/api/v1/incidents/{incident_body['incident']['id']}", tokens["boston-commander"])

    for name, result, expected in (("jurisdiction-renamed", renamed_result, "token-key-removed"),
                                   ("reload-withdraws-incident-access", left_out_result, "config-changed")):
        session_id = session_id_of(result)
        reasons = stop_reasons(rig, session_id)
        problems = []
        if not got_keyframes:
            problems.append("a viewer got no keyframe before the reload")
        if not ended_by_hub(result):
            problems.append(f"the session went on after the reload: {result}")
        if reasons != [expected]:
            problems.append(f"session {session_id} stop reasons {reasons}, expected one {expected}")
        rig.record(name, not problems, "; ".join(problems) or f"session ended ({expected})")

    expected_changes = {"added": ["jurisdiction chelsea-city"], "removed": ["jurisdiction chelsea"],
                        "changed": ["jurisdiction everett: participates", "camera bos-0002: location"]}
    found = {key: loaded[0].get(key) for key in expected_changes} if loaded else None
    rig.record("reload-records-changes", found == expected_changes,
               f"config-loaded changes {found}, expected {expected_changes}")


def test_allowance_changed(rig, tokens):
    """An Everett session starts under grant B. Grant C covers it too, and B
    is revoked: the session goes on under C, and the audit log gets one
    session-allowance-changed record naming C, with B as the previous
    grant, so the session's records explain why it outlived B."""
    grants = []
    for purpose in ("First grant", "Second grant"):
        status, body = rig.api("POST", "/api/v1/grants", tokens["boston-authority"], {
            "grantee": "everett", "cameras": ["bos-0002"], "purpose": purpose,
            "incident_number": ALLOWANCE_INCIDENT})
        if status != 201:
            rig.record("allowance-changed", False, f"grant create returned {status} {body}")
            return
        grants.append(body["grant"]["id"])
        if len(grants) == 1:
            viewer = rig.viewer("everett-allowance", tokens["everett-viewer"], "bos-0002",
                                incident=ALLOWANCE_INCIDENT, duration_s=6)
            got_keyframe = viewer.wait_keyframe() is not None

    revoke_status, revoke_body = rig.api("DELETE", f"/api/v1/grants/{grants[0]}", tokens["boston-authority"])
    result = viewer.wait_result()
    session_id = session_id_of(result)
    with sqlite3.connect(f"file:{rig.db_path}?mode=ro", uri=True) as db:
        records = db.execute("SELECT event, grant_id, details FROM audit_log WHERE session_id = ? "
                             "ORDER BY sequence", (session_id,)).fetchall()
    changes = [(grant_id, json.loads(details)) for event, grant_id, details in records
               if event == "session-allowance-changed"]

    problems = []
    if not got_keyframe:
        problems.append("the viewer got no keyframe")
    if revoke_status != 200 or revoke_body.get("sessions_ended") != 0:
        problems.append(f"revoking the first grant returned {revoke_status} {revoke_body}")
    if result is None or result.get("ended_by") != "duration":
        problems.append(f"the session did not run to its own end under the second grant: {result}")
    if [event for event, _, _ in records] != ["session-start", "session-allowance-changed", "session-stop"]:
        problems.append(f"session records {[event for event, _, _ in records]}")
    if len(changes) != 1 or changes[0][0] != grants[1] or changes[0][1].get("previous_grant_id") != grants[0]:
        problems.append(f"allowance changes {changes}, expected one from {grants[0]} to {grants[1]}")
    rig.record("allowance-changed", not problems, "; ".join(problems) or
               f"session moved from grant {grants[0]} to {grants[1]} and the log says so")


def test_audit_before_media(rig, tokens, revoked_result):
    if revoked_result is None or not revoked_result.get("session_url"):
        rig.record("audit-start-before-media", False, "no session from the revocation case to check")
        return
    session_id = revoked_result["session_url"].rsplit("/", 1)[-1]
    status, body = rig.api("GET", f"/api/v1/audit?event=session-start&person=chelsea-viewer",
                           tokens["boston-auditor"])
    records = [r for r in body.get("records", []) if r.get("session_id") == session_id] if status == 200 else []
    first_packet = revoked_result.get("first_packet_unix_ms") or 0
    problems = []
    if len(records) != 1:
        problems.append(f"GET /api/v1/audit returned {status} with {len(records)} start records for the session")
    elif not first_packet or records[0]["time_ms"] > first_packet:
        problems.append(f"start record at {records[0]['time_ms']}, first packet at {first_packet:.0f}")
    rig.record("audit-start-before-media", not problems, "; ".join(problems) or
               "the start record precedes the first media packet")


def health_status(rig):
    status, body = http_get(rig.base_url + "/healthz")
    try:
        return json.loads(body).get("status") if status == 200 else f"HTTP {status}"
    except ValueError:
        return f"not JSON: {body!r}"


def test_read_only_log(rig, tokens):
    running = rig.viewer("boston-running", tokens["boston-viewer"], "bos-0001", duration_s=12)
    if running.wait_keyframe() is None:
        rig.record("read-only-log", False, "the running viewer got no keyframe")
        return
    # The -shm index stays writable: SQLite maps it into memory, and a write
    # fault there is a SIGBUS, not an error the store could report.
    files = [path for path in (rig.db_path, rig.db_path + "-wal") if os.path.exists(path)]
    locked = subprocess.run(["chattr", "+i"] + files, capture_output=True, text=True)
    if locked.returncode != 0:
        rig.record("read-only-log", True, f"skipped: chattr +i is not permitted here ({locked.stderr.strip()})")
        running.stop()
        return
    try:
        refused = rig.viewer("boston-refused", tokens["boston-viewer"], "bos-0002", expect_status=503)
        refused_result = refused.wait_result()
        failures = read_metric_sum(rig.base_url, "cimshub_sessions_refused_audit_total")
        health_locked = health_status(rig)
        result = running.wait_result(timeout_s=20)
    finally:
        subprocess.run(["chattr", "-i"] + files, capture_output=True)
    health_after = None
    for _ in range(20):
        health_after = health_status(rig)
        if health_after == "ok":
            break
        time.sleep(0.5)
    problems = []
    if health_locked != "degraded":
        problems.append(f"/healthz said {health_locked!r} while the log was read-only")
    if health_after != "ok":
        problems.append(f"/healthz said {health_after!r} 10 s after the log was writable again")
    if refused.proc.returncode != 0:
        problems.append(f"a new session was not refused with 503: {refused_result}")
    if not failures:
        problems.append("cimshub_sessions_refused_audit_total did not count it")
    if result is None or result.get("ended_by") != "duration" or result.get("packets", 0) < 50:
        problems.append(f"the running session did not continue: {result}")
    rig.record("read-only-log", not problems, "; ".join(problems) or
               "new session refused 503, running session continued")


def test_crash_recovery(rig, tokens):
    viewers = [rig.viewer(f"boston-crash-{i}", tokens["boston-viewer"], "bos-0001") for i in range(2)]
    if any(v.wait_keyframe() is None for v in viewers):
        rig.record("crash-recovery", False, "a viewer got no keyframe before the crash")
        return
    results = []
    os.killpg(rig.hub_proc.pid, signal.SIGKILL)
    rig.hub_proc.wait(timeout=5)
    rig.processes.children.pop("cimshub", None)
    for viewer in viewers:
        results.append(viewer.wait_result(timeout_s=20))
    rig.start_hub()
    session_ids = [r["session_url"].rsplit("/", 1)[-1] for r in results if r and r.get("session_url")]
    with sqlite3.connect(f"file:{rig.db_path}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT session_id, reason FROM audit_log WHERE event = 'session-stop'").fetchall()
    reasons = {session: reason for session, reason in rows}
    problems = []
    if len(session_ids) != 2:
        problems.append(f"viewers did not report their sessions: {results}")
    for session in session_ids:
        if reasons.get(session) != "hub-crash-recovered":
            problems.append(f"session {session} stop reason {reasons.get(session)}")
    rig.record("crash-recovery", not problems, "; ".join(problems) or
               "both killed sessions got a hub-crash-recovered stop")


def hub_recovery_walks(rig):
    """(records read, checkpoint) of each start's crash recovery, in order."""
    text = ""
    for path in rig.processes.log_paths("cimshub"):
        if os.path.exists(path):
            with open(path, encoding="utf-8", errors="replace") as log:
                text += log.read()
    return [(int(read), int(after)) for read, after in
            re.findall(r"crash recovery read (\d+) session records after sequence (\d+)", text)]


def test_clean_stop_checkpoint(rig, tokens):
    """A session still open at a clean stop gets its hub-shutdown stop before
    the hub moves the recovery checkpoint to its hub-stopped record, so the
    next start reads no session record and recovers nothing."""
    viewer = rig.viewer("boston-clean-stop", tokens["boston-viewer"], "bos-0001")
    if viewer.wait_keyframe() is None:
        rig.record("clean-stop-checkpoint", False, "the viewer got no keyframe before the stop")
        return

    rig.processes.stop("cimshub")
    result = viewer.wait_result(timeout_s=20)
    n_starts = len(hub_recovery_walks(rig))
    rig.start_hub()

    session = result["session_url"].rsplit("/", 1)[-1] if result and result.get("session_url") else None
    with sqlite3.connect(f"file:{rig.db_path}?mode=ro", uri=True) as db:
        reasons = [reason for (reason,) in db.execute(
            "SELECT reason FROM audit_log WHERE event = 'session-stop' AND session_id = ?", (session,))]
        stopped = db.execute("SELECT MAX(sequence) FROM audit_log WHERE event = 'hub-stopped'").fetchone()[0]
    with open(os.path.join(rig.state_dir, "recovery-checkpoint"), encoding="ascii") as checkpoint_file:
        checkpoint = int(checkpoint_file.read().split()[0])
    walks = hub_recovery_walks(rig)
    walk = walks[n_starts] if len(walks) > n_starts else None

    problems = []
    if session is None:
        problems.append(f"the viewer did not report its session: {result}")
    if reasons != ["hub-shutdown"]:
        problems.append(f"session {session} stop reasons {reasons}, expected one hub-shutdown")
    if checkpoint != stopped:
        problems.append(f"checkpoint {checkpoint}, hub-stopped record {stopped}")
    if walk != (0, stopped):
        problems.append(f"the next start's recovery read {walk}, expected 0 records after {stopped}")
    rig.record("clean-stop-checkpoint", not problems, "; ".join(problems) or
               f"one hub-shutdown stop, checkpoint at hub-stopped record {stopped}, next start read nothing")


def test_audit_accounting(rig):
    rig.processes.stop("cimshub")
    with sqlite3.connect(f"file:{rig.db_path}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT event, session_id FROM audit_log "
                          "WHERE event IN ('session-start', 'session-stop')").fetchall()
    counts = {}
    for event, session in rows:
        counts.setdefault(session, {"session-start": 0, "session-stop": 0})[event] += 1
    bad = {s: c for s, c in counts.items() if c["session-start"] != 1 or c["session-stop"] != 1}
    verify = subprocess.run([rig.args.cimshubctl, "audit", "verify", "--db", rig.db_path],
                            capture_output=True, text=True, timeout=30)
    problems = []
    if not counts:
        problems.append("no session records at all")
    if bad:
        problems.append(f"sessions without exactly one start and one stop: {bad}")
    if verify.returncode != 0:
        problems.append(f"audit verify exited {verify.returncode}: {verify.stdout.strip()} {verify.stderr.strip()}")
    rig.record("audit-accounting", not problems, "; ".join(problems) or
               f"{len(counts)} sessions, each one start and one stop; chain intact")
    check_tables_altered(rig)


def check_tables_altered(rig):
    """The grants and incidents tables must match the audit records that
    carry each grant and incident: on a copy of the log, a grant whose end
    was moved and a deleted incident row make audit verify fail and name
    both."""
    copy_path = os.path.join(rig.temp, "tables-altered.db")
    with sqlite3.connect(f"file:{rig.db_path}?mode=ro", uri=True) as source, sqlite3.connect(copy_path) as copy:
        source.backup(copy)
    # Closing the last connection folds the edits into the file itself.
    db = sqlite3.connect(copy_path)
    try:
        # An ongoing grant's end is the largest integer, so move a timed one.
        grant_id = db.execute("SELECT id FROM grants WHERE ends_at_us < 4000000000000000 "
                              "ORDER BY id LIMIT 1").fetchone()[0]
        incident_id = db.execute("SELECT id FROM incidents ORDER BY id LIMIT 1").fetchone()[0]
        db.execute("UPDATE grants SET ends_at_us = ends_at_us + 3600000000 WHERE id = ?", (grant_id,))
        db.execute("DELETE FROM incidents WHERE id = ?", (incident_id,))
        db.commit()
    finally:
        db.close()

    verify = subprocess.run([rig.args.cimshubctl, "audit", "verify", "--db", copy_path],
                            capture_output=True, text=True, timeout=30)
    lines = [line for line in verify.stdout.splitlines() if line.startswith("state tables altered: ")]
    problems = []
    if verify.returncode != 1:
        problems.append(f"audit verify exited {verify.returncode}")
    if not any(f'grant {grant_id}: "ends_at" is ' in line for line in lines):
        problems.append(f"no line names the moved end of grant {grant_id}")
    if not any(f"names incident {incident_id}, which the incidents table does not have" in line for line in lines):
        problems.append(f"no line names the deleted incident {incident_id}")
    rig.record("audit-tables-altered", not problems, "; ".join(problems + lines))
    check_hub_rejects_altered_grant(rig, copy_path, grant_id)


def check_hub_rejects_altered_grant(rig, copy_path, grant_id):
    """A hub started on the altered copy must not honour the grant whose
    end was moved behind it: it lists it as disputed and inactive, says so
    in one audit record, and lets an authority revoke it, which records the
    row as it is, so that the next start finds nothing to dispute. A
    start that finds the same differences as the last record adds none."""
    state_dir = os.path.join(rig.temp, "altered-state")
    os.mkdir(state_dir, 0o700)
    os.rename(copy_path, os.path.join(state_dir, "cimshub.db"))
    config_path = os.path.join(rig.temp, "altered.conf")
    with open(rig.config_path, encoding="utf-8") as config_file:
        text = config_file.read()
    with open(config_path, "w", encoding="utf-8") as config_file:
        config_file.write(text.replace(f"state_dir = {libconfig_string(rig.state_dir)};",
                                       f"state_dir = {libconfig_string(state_dir)};"))
    authority = rig.token("boston", "boston-chief", roles=("grant-authority",))
    problems = []
    for start in (1, 2, 3):
        proc = rig.processes.start(f"cimshub-altered-{start}", [rig.args.cimshub, "--config", config_path])
        if not wait_for_healthz(proc, rig.base_url, 15):
            problems.append(f"start {start}: the hub did not start on the altered copy")
            break
        status, body = rig.api("GET", f"/api/v1/grants/{grant_id}", authority)
        grant = body.get("grant", {}) if status == 200 else {}
        if start == 1 and (grant.get("disputed") is not True or grant.get("active") is not False):
            problems.append(f"start 1: grant {grant_id} is {status} {grant}, expected disputed and inactive")
        if start == 1:
            revoke_status, _ = rig.api("DELETE", f"/api/v1/grants/{grant_id}", authority)
            if revoke_status != 200:
                problems.append(f"revoking the disputed grant returned {revoke_status}")
        if start > 1 and grant.get("disputed") is not False:
            problems.append(f"start 2: grant {grant_id} after its revocation: {status} {grant}")
        rig.processes.stop(f"cimshub-altered-{start}")
    with sqlite3.connect(f"file:{os.path.join(state_dir, 'cimshub.db')}?mode=ro", uri=True) as db:
        records = [json.loads(details) for (details,) in db.execute(
            "SELECT details FROM audit_log WHERE event = 'audit-log-mismatch' AND reason = 'state-tables-differ'")]
    # The deleted incident row is still a difference at the second start,
    # which gets a record of its own without the revoked grant. The third
    # start finds the same difference and adds no record.
    named = [grant_id in record.get("disputed_grants", []) for record in records]
    if named != [True, False]:
        problems.append(f"state-tables-differ records {records}, expected one naming {grant_id}, then one not")
    rig.record("hub-rejects-altered-grant", not problems, "; ".join(problems) or
               f"grant {grant_id} disputed until revoked, and the log says so")


def mint_tokens(rig):
    return {
        "boston-viewer": rig.token("boston", "boston-viewer"),
        "boston-authority": rig.token("boston", "boston-chief", roles=("grant-authority",)),
        "boston-commander": rig.token("boston", "boston-commander", roles=("commander",)),
        "boston-admin": rig.token("boston", "boston-admin", roles=("system-administrator",)),
        "boston-auditor": rig.token("boston", "boston-auditor", roles=("auditor",)),
        "chelsea-viewer": rig.token("chelsea", "chelsea-viewer"),
        "chelsea-commander": rig.token("chelsea", "chelsea-commander", roles=("commander",)),
        "chelsea-authority": rig.token("chelsea", "chelsea-chief", roles=("grant-authority",)),
        "everett-viewer": rig.token("everett", "everett-viewer"),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("cimshub", "cimshubctl", "camera-sim", "whep-viewer"):
        parser.add_argument("--" + name, required=True)
    parser.add_argument("--keep-temp", action="store_true")
    args = parser.parse_args()

    rig = Rig(args)
    try:
        rig.setup()
        tokens = mint_tokens(rig)
        revoked = test_grant_revoked(rig, tokens)
        test_revoked_while_camera_connects(rig, tokens)
        test_grant_expires(rig, tokens)
        test_incident_end(rig, tokens)
        test_cross_authority(rig, tokens)
        test_denied_leaves_nothing(rig, tokens)
        test_forwarded_address(rig, tokens)
        test_token_just_expired(rig)
        test_reload_reports_key_errors(rig)
        test_reload_start_only_settings(rig)
        test_key_rotation(rig, tokens)
        tokens = mint_tokens(rig)
        test_reload_ends_sessions(rig, tokens)
        test_allowance_changed(rig, tokens)
        test_audit_before_media(rig, tokens, revoked)
        test_read_only_log(rig, tokens)
        test_crash_recovery(rig, tokens)
        test_clean_stop_checkpoint(rig, tokens)
        test_audit_accounting(rig)
    except Exception as error:  # report set-up failures as a failed case
        rig.record("setup", False, f"{type(error).__name__}: {error}")
    finally:
        if not all(rig.results):
            for name in ("cimshub", "camera-sim"):
                path = os.path.join(rig.temp, name + ".stderr")
                if os.path.exists(path):
                    print(f"----- {name}.stderr (last 40 lines) -----")
                    with open(path, errors="replace") as log:
                        print("".join(log.readlines()[-40:]))
        rig.cleanup()

    passed = sum(1 for r in rig.results if r)
    print(f"{passed} passed, {len(rig.results) - passed} failed")
    return 0 if rig.results and all(rig.results) else 1


if __name__ == "__main__":
    sys.exit(main())
