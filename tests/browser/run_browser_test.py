#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
# End-to-end test of the hub with headless Chromium as a WHEP viewer: it starts
# the camera simulator, the hub and the browser on 127.0.0.1 and checks relay,
# denials, a camera restart and a grant revoked during a cross-jurisdiction
# session. The page it drives is whep-viewer.html.
"""Run cimshub's browser end-to-end tests and print one PASS/FAIL line each.

Exit status is 0 only when every test passes. The last line is
"N passed, M failed".
"""

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cdp_pipe import CdpError, CdpPage

CAMERA_ID = "bos-0001"
UNKNOWN_CAMERA_ID = "bos-9999"
# An H.265 camera: Chromium here cannot receive H.265, so it gets H.264.
H265_CAMERA_ID = "bos-0265"
H265_CAMERA_SIZE = (640, 360)
# A camera that never sets the RTP marker bit, which Chromium needs at each
# frame's end; the hub sets it.
UNMARKED_CAMERA_ID = "bos-0003"
UNMARKED_CAMERA_SIZE = (320, 240)
PAGE_NAME = "whep-viewer.html"

# Flags for Debian's Chromium headless on loopback (checked with Chromium 156 on
# Debian 12). --use-fake-ui-for-media-stream grants the media permission without
# a prompt, and only with that permission does Chromium gather candidates on
# every interface. Without it, Chromium gathers on the default route's
# interface only, and in a namespace whose only interface is loopback it
# gathers no candidate at all, even with a default route on lo.
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--autoplay-policy=no-user-gesture-required",
    "--use-fake-ui-for-media-stream",
]

MIN_FRAMES_DECODED = 50
MIN_FRAMES_AFTER_RESTART = 30
CAMERA_DOWN_S = 2.0

# Revocation: the Chelsea viewer decodes this many frames under the grant,
# then the grant is revoked, and decoding must stop within FRAMES_STOP_S.
# The page posts stats every 500 ms, which is the resolution of that check.
# On close_notify Chromium 156 closes the DTLS transport at once but keeps
# connectionState "connected". Its iceConnectionState turns "disconnected"
# when its ICE consent checks go unanswered. In the runs that set
# CONNECTION_LEAVE_S, that came 5.2 to 5.8 s after the revocation.
REVOKE_INCIDENT = "BPD-2026-004712"
# The hub's own page, opened as a bookmarked wall tile under a grant.
PAGE_INCIDENT = "BPD-2026-004713"
PAGE_MIN_FRAMES = 25
PAGE_PLAY_S = 30
PAGE_END_S = 15
# Longer than the page's 3 s stall notice, which must not end the view.
PAGE_CAMERA_DOWN_S = 5.0
PAGE_RESUME_S = 30
MIN_FRAMES_BEFORE_REVOKE = 20
FRAMES_STOP_S = 2.0
FRAMES_STILL_S = 2.0
DTLS_CLOSE_S = 1.0
CONNECTION_LEAVE_S = 10.0


class Deadline:
    """Overall time budget: every wait takes the smaller of its own limit and
    what is left of this one."""

    def __init__(self, seconds):
        self.end = time.monotonic() + seconds

    def left(self, limit_s):
        return max(0.0, min(limit_s, self.end - time.monotonic()))


class Processes:
    """Child processes, each started in its own process group with its output
    in files, so that stop() can end the program and every child it made."""

    def __init__(self, log_dir):
        self.log_dir = log_dir
        self.children = {}

    def start(self, name, argv, env=None):
        stdout_path = os.path.join(self.log_dir, name + ".stdout")
        stderr_path = os.path.join(self.log_dir, name + ".stderr")
        with open(stdout_path, "ab") as stdout, open(stderr_path, "ab") as stderr:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout,
                                    stderr=stderr, start_new_session=True, env=env)
        self.children[name] = proc
        return proc

    def stop(self, name, grace_s=3.0):
        proc = self.children.pop(name, None)
        if proc is None:
            return
        signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
        # The group may outlive its leader (Chromium's zygote and renderers).
        signal_group(proc, signal.SIGKILL)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            print(f"note: {name} (pid {proc.pid}) did not exit after SIGKILL")

    def stop_all(self):
        for name in list(self.children):
            self.stop(name)

    def report_exits(self):
        """Prints which children ended on their own, with their exit status
        (a negative status is the signal that ended the process)."""
        for name, proc in self.children.items():
            status = proc.poll()
            if status is not None:
                print(f"note: {name} (pid {proc.pid}) exited early with status {status}")

    def log_paths(self, name):
        return [os.path.join(self.log_dir, name + suffix) for suffix in (".stdout", ".stderr")]


def signal_group(proc, signum):
    try:
        os.killpg(proc.pid, signum)
    except ProcessLookupError:
        pass


def free_tcp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def udp_range_is_free(first, count):
    sockets = []
    try:
        for port in range(first, first + count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sockets.append(sock)
            sock.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        for sock in sockets:
            sock.close()


def free_udp_range(count, attempts=50):
    for _ in range(attempts):
        first = random.randrange(40000, 60000 - count)
        if udp_range_is_free(first, count):
            return first, first + count - 1
    raise RuntimeError(f"no {count} consecutive free UDP ports found in {attempts} attempts")


def run_checked(argv, description):
    result = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                            text=True, timeout=20)
    if result.returncode != 0:
        raise RuntimeError(f"{description} failed with status {result.returncode}: "
                           f"{' '.join(argv)}\n{result.stderr.strip()}")
    return result.stdout


def make_key_pair(directory, name):
    private_path = os.path.join(directory, name + ".key.pem")
    public_path = os.path.join(directory, name + ".pub.pem")
    run_checked(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                 "ec_paramgen_curve:P-256", "-out", private_path], "openssl genpkey")
    run_checked(["openssl", "pkey", "-in", private_path, "-pubout", "-out", public_path],
                "openssl pkey -pubout")
    return private_path, public_path


def libconfig_string(value):
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_hub_config(path, settings):
    jurisdictions = ",\n".join(
        f"""  {{ id = {libconfig_string(j["id"])}; name = {libconfig_string(j["name"])};
    participates = true;
    token_issuer = {libconfig_string(j["issuer"])};
    token_key = {libconfig_string(j["public_key"])}; }}"""
        for j in settings["jurisdictions"])

    text = f"""# Written by run_browser_test.py for one test run.
hub: {{
  http_listen = "127.0.0.1:{settings["http_port"]}";
  ice_udp_ports = [{settings["ice_ports"][0]}, {settings["ice_ports"][1]}];
  public_addresses = ["127.0.0.1"];
  state_dir = {libconfig_string(settings["state_dir"])};
  idle_source_stop_s = 30;
  reconnect_backoff_ms = [200, 1000];
  cors_origins = ["*"];
}};
jurisdictions = (
{jurisdictions}
);
agencies = ();
cameras = (
  {{ id = {libconfig_string(CAMERA_ID)}; jurisdiction = "boston";
    location = "Test bench camera";
    brand_model = "cimshub-camera-sim"; installed = "2024-01-01";
    source = {libconfig_string(settings["camera_url"])};
    has_audio = true;
    shared_with = []; restricted = false; }},
  {{ id = {libconfig_string(H265_CAMERA_ID)}; jurisdiction = "boston";
    location = "Test bench H.265 camera";
    brand_model = "cimshub-camera-sim"; installed = "2024-01-01";
    source = {libconfig_string(settings["camera_url"].rsplit("/", 1)[0] + "/" + H265_CAMERA_ID)};
    shared_with = []; restricted = false; }},
  {{ id = {libconfig_string(UNMARKED_CAMERA_ID)}; jurisdiction = "boston";
    location = "Test bench camera without RTP marker bits";
    brand_model = "cimshub-camera-sim"; installed = "2024-01-01";
    source = {libconfig_string(settings["camera_url"].rsplit("/", 1)[0] + "/" + UNMARKED_CAMERA_ID)};
    shared_with = []; restricted = false; }}
);
viewer_profiles = (
  {{ name = "browser"; codecs = ["h264", "vp8"];
    max_width = 1920; max_height = 1080; max_fps = 30; max_kbps = 4000; }}
);
"""
    with open(path, "w", encoding="utf-8") as config_file:
        config_file.write(text)


def wait_for_output(proc, path, needle, timeout_s):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        with open(path, "r", encoding="utf-8", errors="replace") as output:
            if needle in output.read():
                return True
        if proc.poll() is not None:
            return False
        time.sleep(0.1)
    return False


def peak_rss_mib(pid):
    """Returns the peak resident set size (VmHWM) of process pid in MiB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/{pid}/status has no VmHWM line")


def run_steps(run, steps, time_limit_s, errors=()):
    """Calls each of steps in order. An exception of the usual kinds, or of
    errors, is recorded as the failed check "run" and skips the rest, and a
    watchdog ends everything after time_limit_s. run provides
    record(name, passed, detail), results (a list of (name, passed)),
    processes, print_logs() and cleanup(). Prints the last line
    "N passed, M failed" and returns the exit status: 0 only when some check
    ran and none failed."""
    watchdog = threading.Timer(time_limit_s, lambda: (print("FAIL: run: time limit", flush=True),
                                                      run.processes.stop_all(), os._exit(1)))
    watchdog.daemon = True
    watchdog.start()
    try:
        for step in steps:
            step()
    except (RuntimeError, OSError, KeyError, TypeError, ValueError, subprocess.TimeoutExpired) + errors as error:
        run.record("run", False, f"{type(error).__name__}: {error}")
    finally:
        if not all(ok for _, ok in run.results):
            run.print_logs()
        run.cleanup()
        watchdog.cancel()

    passed = sum(1 for _, ok in run.results if ok)
    failed = len(run.results) - passed
    print(f"{passed} passed, {failed} failed", flush=True)
    return 0 if failed == 0 and passed > 0 else 1


def http_get(url, timeout_s=2.0):
    """Returns (status, body text); status 0 when the request failed."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError):
        return 0, ""


def wait_for_healthz(proc, base_url, timeout_s):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            return False
        status, _ = http_get(base_url + "/healthz", timeout_s=1.0)
        if status == 200:
            return True
        time.sleep(0.2)
    return False


def api_request(base_url, method, path, token, body=None, timeout_s=10.0):
    """Sends one admin-API request with a Bearer token. Returns (status,
    parsed JSON body); status 0 when the request failed."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base_url + path, data=data, method=method)
    request.add_header("Authorization", "Bearer " + token)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            text = response.read().decode("utf-8", "replace")
            status = response.status
    except urllib.error.HTTPError as error:
        text = error.read().decode("utf-8", "replace")
        status = error.code
    except (urllib.error.URLError, OSError) as error:
        return 0, {"error": str(error)}
    try:
        return status, json.loads(text) if text else {}
    except ValueError:
        return status, {"unparsedBody": text}


def read_metric_sum(base_url, name):
    """Sums every sample of metric @name on /metrics, or returns None when the
    page or the metric is missing."""
    status, body = http_get(base_url + "/metrics")
    if status != 200:
        return None
    total = None
    for line in body.splitlines():
        if line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) < 2:
            continue
        if fields[0] == name or fields[0].startswith(name + "{"):
            total = (total or 0.0) + float(fields[1])
    return total


class ResultStore:
    """Progress reports from the page, kept per test id."""

    def __init__(self):
        self.condition = threading.Condition()
        self.reports = {}

    def add(self, report):
        with self.condition:
            self.reports.setdefault(str(report.get("test")), []).append(report)
            self.condition.notify_all()

    def latest(self, test):
        with self.condition:
            reports = self.reports.get(test)
            return reports[-1] if reports else None

    def all(self, test):
        with self.condition:
            return list(self.reports.get(test, []))

    def wait(self, test, predicate, timeout_s):
        """Waits until the latest report of @test satisfies @predicate.
        Returns that report, or the latest one (maybe None) on timeout."""
        end = time.monotonic() + timeout_s
        with self.condition:
            while True:
                reports = self.reports.get(test)
                latest = reports[-1] if reports else None
                if latest is not None and predicate(latest):
                    return latest
                remaining = end - time.monotonic()
                if remaining <= 0:
                    return latest
                self.condition.wait(remaining)


def make_page_server(page_path, store):
    with open(page_path, "rb") as page_file:
        page = page_file.read()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format, *args):
            pass

        def do_GET(self):
            if urllib.parse.urlsplit(self.path).path != "/" + PAGE_NAME:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(page)

        def do_POST(self):
            if self.path != "/result":
                self.send_error(404)
                return
            length = int(self.headers.get("Content-Length", "0"))
            try:
                store.add(json.loads(self.rfile.read(length)))
            except (ValueError, TypeError):
                self.send_error(400)
                return
            self.send_response(204)
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    return server


class Run:
    """One test run: the temporary directory, the processes and the results."""

    def __init__(self, args):
        self.args = args
        self.deadline = Deadline(args.time_limit)
        self.temp_dir = tempfile.mkdtemp(prefix="cimshub-browser-")
        self.processes = Processes(self.temp_dir)
        self.store = ResultStore()
        self.results = []
        self.page_server = None
        self.hub_url = None
        self.page_url = None
        self.sim_port = None
        self.tokens = {}
        self.keys = {}
        self.browser_count = 0
        self.footage = args.footage if args.footage and os.path.isfile(args.footage) else None
        if self.footage:
            self.expected_size = (768, 576)
        else:
            self.expected_size = (640, 480)

    def record(self, name, passed, detail):
        self.results.append((name, passed))
        print(f"{'PASS' if passed else 'FAIL'}: {name}: {detail}", flush=True)

    def camera_spec(self):
        if self.footage:
            return (f"path={CAMERA_ID},codec=h264,width=768,height=576,fps=10,keyint=20,"
                    "audio=pcma,source=file")
        return (f"path={CAMERA_ID},codec=h264,width=640,height=480,fps=25,keyint=20,"
                "audio=pcma,source=pattern")

    def start_camera(self):
        argv = [self.args.camera_sim, "--address", "127.0.0.1", "--port", str(self.sim_port),
                "--camera", self.camera_spec(),
                "--camera", f"path={H265_CAMERA_ID},codec=h265,width={H265_CAMERA_SIZE[0]},"
                            f"height={H265_CAMERA_SIZE[1]},fps=15,keyint=15",
                "--camera", f"path={UNMARKED_CAMERA_ID},codec=h264,width={UNMARKED_CAMERA_SIZE[0]},"
                            f"height={UNMARKED_CAMERA_SIZE[1]},fps=15,keyint=15,fault=no-marker"]
        if self.footage:
            argv += ["--footage", self.footage]
        proc = self.processes.start("camera-sim", argv)
        stdout_path = self.processes.log_paths("camera-sim")[0]
        if not wait_for_output(proc, stdout_path, "cimshub-camera-sim: serving",
                               self.deadline.left(15)):
            raise RuntimeError("the camera simulator did not print its serving line")

    def setup(self):
        keys = self.keys
        for name in ("boston", "chelsea"):
            keys[name] = make_key_pair(self.temp_dir, name)

        self.sim_port = free_tcp_port()
        http_port = free_tcp_port()
        self.hub_url = f"http://127.0.0.1:{http_port}"
        state_dir = os.path.join(self.temp_dir, "state")
        os.mkdir(state_dir)
        settings = {
            "http_port": http_port,
            "ice_ports": free_udp_range(10),
            "state_dir": state_dir,
            "camera_url": f"rtsp://127.0.0.1:{self.sim_port}/{CAMERA_ID}",
            "jurisdictions": [
                {"id": name, "name": name.capitalize(),
                 "issuer": f"https://idp.{name}.test", "public_key": keys[name][1]}
                for name in ("boston", "chelsea")
            ],
        }
        config_path = os.path.join(self.temp_dir, "hub.conf")
        write_hub_config(config_path, settings)

        for name in ("boston", "chelsea"):
            self.tokens[name] = self.mint_token(keys[name][0], name)

        self.start_camera()

        hub = self.processes.start("cimshub", [self.args.cimshub, "--config", config_path])
        if not wait_for_healthz(hub, self.hub_url, self.deadline.left(20)):
            raise RuntimeError(f"the hub did not answer 200 on {self.hub_url}/healthz")

        self.page_server = make_page_server(self.args.page, self.store)
        threading.Thread(target=self.page_server.serve_forever, daemon=True).start()
        self.page_url = f"http://127.0.0.1:{self.page_server.server_address[1]}/{PAGE_NAME}"

    def mint_token(self, private_key, jurisdiction, subject="viewer-1", role="viewer"):
        title = subject.replace("-", " ").title()
        output = run_checked([self.args.cimshubctl, "token", "mint", "--key", private_key,
                              "--issuer", f"https://idp.{jurisdiction}.test",
                              "--subject", f"{jurisdiction}-{subject}",
                              "--name", f"{jurisdiction.capitalize()} Test {title}",
                              "--jurisdiction", jurisdiction, "--permissions", "view",
                              "--roles", role, "--ttl", "900"],
                             "cimshubctl token mint")
        token = output.strip().splitlines()[-1].strip() if output.strip() else ""
        if token.count(".") != 2:
            raise RuntimeError(f"cimshubctl token mint printed no JWT: {output!r}")
        return token

    def open_page(self, test, **query):
        query = {"hub": self.hub_url, "test": test, **query}
        url = self.page_url + "?" + urllib.parse.urlencode(query)
        self.browser_count += 1
        name = f"chromium-{self.browser_count}-{test}"
        profile_dir = os.path.join(self.temp_dir, name + "-profile")
        os.mkdir(profile_dir)
        # Chromium puts its singleton socket in a folder of TMPDIR and leaves
        # it there when it is killed, so that folder goes in the test's own.
        self.processes.start(name, [self.args.chromium, *CHROMIUM_FLAGS,
                                    f"--user-data-dir={profile_dir}", url],
                             env={**os.environ, "TMPDIR": self.temp_dir})
        return name

    def test_relay(self):
        self.open_page("relay", camera=CAMERA_ID,
                                            token=self.tokens["boston"])
        report = self.store.wait(
            "relay",
            lambda r: r.get("phase") in ("whep-failed", "exception", "bad-parameters")
            or (r.get("video") or {}).get("framesDecoded", 0) >= MIN_FRAMES_DECODED,
            self.deadline.left(45))

        problems = relay_problems(report, self.expected_size)
        if report is not None:
            video = report.get("video") or {}
            detail = (f"whep={report.get('whepStatus')} frames={video.get('framesDecoded')} "
                      f"size={video.get('frameWidth')}x{video.get('frameHeight')} "
                      f"codec={video.get('codec')} lost={video.get('packetsLost')} "
                      f"tracks={report.get('tracksByKind')} audio={report.get('audio')} "
                      f"answer_audio={report.get('answerAudio')}")
        else:
            detail = "no report from the page"
        if problems:
            detail += "; " + "; ".join(problems)
        self.record("relay", not problems, detail)
        return not problems

    def decode_case(self, test, camera, expected_codec, expected_size, **query):
        """Plays @camera in a page and checks that it decodes enough frames of
        @expected_codec at @expected_size."""
        self.open_page(test, camera=camera, token=self.tokens["boston"], **query)
        report = self.store.wait(
            test,
            lambda r: r.get("phase") in ("whep-failed", "exception", "bad-parameters")
            or (r.get("video") or {}).get("framesDecoded", 0) >= MIN_FRAMES_DECODED,
            self.deadline.left(45))
        video = (report or {}).get("video") or {}
        size = (video.get("frameWidth"), video.get("frameHeight"))
        codec = (video.get("codec") or "").lower()
        problems = []
        if report is None or report.get("whepStatus") != 201:
            problems.append(f"WHEP POST returned {(report or {}).get('whepStatus')} "
                            f"{json.dumps((report or {}).get('whepError'))}")
        if video.get("framesDecoded", 0) < MIN_FRAMES_DECODED:
            problems.append(f"expected at least {MIN_FRAMES_DECODED} decoded frames")
        if codec != expected_codec:
            problems.append(f"expected codec {expected_codec}")
        if expected_size is not None and size != expected_size:
            problems.append(f"expected {expected_size[0]}x{expected_size[1]}")
        detail = f"frames={video.get('framesDecoded')} size={size[0]}x{size[1]} codec={codec}"
        self.record(test, not problems, detail + ("; " + "; ".join(problems) if problems else ""))

    def test_transcodes(self):
        """A VP8-only Chromium gets VP8; an H.265 camera reaches it as H.264."""
        self.decode_case("vp8-only-browser", CAMERA_ID, "video/vp8", self.expected_size, codecs="vp8")
        self.decode_case("h265-camera-as-h264", H265_CAMERA_ID, "video/h264", H265_CAMERA_SIZE)

    def test_unmarked_camera(self):
        """A camera that sets no RTP marker bit plays: the hub marks frame ends."""
        self.decode_case("unmarked-camera", UNMARKED_CAMERA_ID, "video/h264", UNMARKED_CAMERA_SIZE)

    def run_probe(self, test, camera, token):
        query = {"camera": camera, "mode": "probe"}
        if token is not None:
            query["token"] = token
        name = self.open_page(test, **query)
        report = self.store.wait(test, lambda r: r.get("phase") in
                                 ("done", "exception", "bad-parameters"),
                                 self.deadline.left(20))
        self.processes.stop(name)
        return report

    def test_denials(self):
        cases = [
            ("deny-other-jurisdiction", CAMERA_ID, self.tokens["chelsea"], 403, True),
            ("deny-no-token", CAMERA_ID, None, 401, False),
            ("deny-unknown-camera", UNKNOWN_CAMERA_ID, self.tokens["boston"], 404, False),
        ]
        for test, camera, token, expected_status, needs_reason in cases:
            report = self.run_probe(test, camera, token)
            if report is None:
                self.record(test, False, "no report from the page")
                continue
            status = report.get("whepStatus")
            error = report.get("whepError") or {}
            problems = []
            if status != expected_status:
                problems.append(f"expected status {expected_status}")
            if "error" not in error:
                problems.append("the body is not JSON with an \"error\" member")
            if needs_reason and not error.get("reason"):
                problems.append("the JSON body has no \"reason\"")
            detail = f"status={status} body={json.dumps(error)}"
            if report.get("error"):
                detail += f" page_error={report['error']}"
            if problems:
                detail += "; " + "; ".join(problems)
            self.record(test, not problems, detail)

    def test_camera_restart(self, relay_ok):
        if not relay_ok:
            self.record("camera-restart", False, "skipped: the relay test failed")
            return

        before = self.store.latest("relay")
        posts_before = before.get("whepPosts")
        metric_before = read_metric_sum(self.hub_url, "cimshub_whep_requests_total")

        self.processes.stop("camera-sim")
        time.sleep(CAMERA_DOWN_S)
        self.start_camera()

        restarted = self.store.latest("relay")
        frames_at_restart = (restarted.get("video") or {}).get("framesDecoded", 0)
        target = frames_at_restart + MIN_FRAMES_AFTER_RESTART
        report = self.store.wait(
            "relay",
            lambda r: (r.get("video") or {}).get("framesDecoded", 0) >= target,
            self.deadline.left(40))
        frames_after = (report.get("video") or {}).get("framesDecoded", 0)
        metric_after = read_metric_sum(self.hub_url, "cimshub_whep_requests_total")

        problems = []
        if frames_after < target:
            problems.append(f"expected at least {MIN_FRAMES_AFTER_RESTART} more frames")
        if report.get("whepPosts") != posts_before:
            problems.append("the page sent another WHEP POST")
        if metric_before is not None and metric_after != metric_before:
            problems.append("cimshub_whep_requests_total changed")
        detail = (f"frames {frames_at_restart} -> {frames_after}, "
                  f"page_posts {posts_before} -> {report.get('whepPosts')}, "
                  f"whep_requests_total {metric_before} -> {metric_after}, "
                  f"ice={report.get('iceConnectionState')}")
        if problems:
            detail += "; " + "; ".join(problems)
        self.record("camera-restart", not problems, detail)

    def list_chelsea_sessions(self, admin_token, incident=REVOKE_INCIDENT):
        """Returns the hub's sessions of Chelsea viewers under @incident, or
        None when GET /api/v1/sessions failed."""
        status, body = api_request(self.hub_url, "GET", "/api/v1/sessions", admin_token)
        if status != 200:
            return None
        return [s for s in body.get("sessions", [])
                if s.get("viewer_jurisdiction") == "chelsea"
                and s.get("incident_number") == incident]

    def play_under_grant(self, test, authority_token):
        """Creates Boston's grant to Chelsea and opens Chelsea's page under it.
        Returns (grant id, browser name, latest report), or None after
        recording the failure."""
        status, body = api_request(self.hub_url, "POST", "/api/v1/grants", authority_token, {
            "grantee": "chelsea", "cameras": [CAMERA_ID], "purpose": "Browser revocation test",
            "incident_number": REVOKE_INCIDENT})
        if status != 201:
            self.record(test, False, f"POST /api/v1/grants returned {status} {json.dumps(body)}")
            return None

        name = self.open_page(test, camera=CAMERA_ID, token=self.tokens["chelsea"],
                              incident=REVOKE_INCIDENT)
        report = self.store.wait(
            test,
            lambda r: r.get("phase") in ("whep-failed", "exception", "bad-parameters")
            or frames_decoded(r) >= MIN_FRAMES_BEFORE_REVOKE,
            self.deadline.left(45))
        if frames_decoded(report) < MIN_FRAMES_BEFORE_REVOKE:
            detail = "no report from the page" if report is None else (
                f"phase={report.get('phase')} whep={report.get('whepStatus')} "
                f"error={json.dumps(report.get('whepError'))} frames={frames_decoded(report)}")
            self.record(test, False, f"expected {MIN_FRAMES_BEFORE_REVOKE} decoded frames "
                                     f"under the grant: {detail}")
            self.processes.stop(name)
            return None
        return body["grant"]["id"], name, report

    def test_revoke(self):
        """Revokes Boston's grant while Chelsea's page plays under it, and
        checks that decoding stops, the peer connection leaves "connected"
        and the hub no longer lists the session."""
        test = "revoke-ends-browser-session"
        boston_key = self.keys["boston"][0]
        authority = self.mint_token(boston_key, "boston", "chief", "grant-authority")
        admin = self.mint_token(boston_key, "boston", "admin", "system-administrator")
        playing = self.play_under_grant(test, authority)
        if playing is None:
            return
        grant_id, name, _ = playing
        listed_before = self.list_chelsea_sessions(admin)

        before = self.store.latest(test)
        sent_ms = time.time() * 1000
        status, body = api_request(self.hub_url, "DELETE", f"/api/v1/grants/{grant_id}", authority)
        revoked_ms = time.time() * 1000

        watch_ms = revoked_ms + (FRAMES_STOP_S + FRAMES_STILL_S) * 1000
        self.store.wait(test, lambda r: r.get("unixMs", 0) >= watch_ms and left_connected(r),
                        self.deadline.left(max(FRAMES_STOP_S + FRAMES_STILL_S, CONNECTION_LEAVE_S) + 2))
        listed_after = self.list_chelsea_sessions(admin)
        self.processes.stop(name)

        after = [r for r in self.store.all(test) if r.get("unixMs", 0) > revoked_ms]
        problems = []
        if status != 200 or body.get("sessions_ended") != 1:
            problems.append(f"DELETE /api/v1/grants/{grant_id} returned {status} {json.dumps(body)}")
        problems += revoke_frame_problems(frames_decoded(before), after, revoked_ms)
        latest = after[-1] if after else before
        problems += revoke_state_problems(latest, sent_ms, revoked_ms)
        problems += revoke_listing_problems(before, listed_before, listed_after)

        timeline = [f"{c['unixMs'] - revoked_ms:+.0f} ms ice={c['iceConnectionState']} "
                    f"pc={c['connectionState']} dtls={c['dtlsState']}"
                    for c in latest.get("stateChanges", [])
                    if c["unixMs"] >= sent_ms]
        detail = (f"frames {frames_decoded(before)} at the revocation, "
                  f"{frames_decoded(latest)} at the end; "
                  f"revoke call {revoked_ms - sent_ms:.1f} ms; state changes since the request, "
                  f"in ms from the response: {'; '.join(timeline) or 'none'}")
        if problems:
            detail += "; " + "; ".join(problems)
        self.record(test, not problems, detail)

    def restart_camera(self, down_s):
        self.processes.stop("camera-sim")
        time.sleep(down_s)
        self.start_camera()

    def test_hub_page(self):
        """Opens the hub's own page as Chelsea, with the grant's incident
        number in the link, and checks that it plays. Then revokes the grant
        and checks that the page shows why the view ended."""
        test = "hub-page-grant-and-end"
        authority = self.mint_token(self.keys["boston"][0], "boston", "chief", "grant-authority")
        admin = self.mint_token(self.keys["boston"][0], "boston", "admin", "system-administrator")
        status, body = api_request(self.hub_url, "POST", "/api/v1/grants", authority, {
            "grantee": "chelsea", "cameras": [CAMERA_ID], "purpose": "Browser page test",
            "incident_number": PAGE_INCIDENT})
        if status != 201:
            self.record(test, False, f"POST /api/v1/grants returned {status} {json.dumps(body)}")
            return

        fragment = urllib.parse.urlencode({"token": self.tokens["chelsea"], "incident": PAGE_INCIDENT,
                                           "camera": CAMERA_ID})
        profile_dir = os.path.join(self.temp_dir, "hub-page-profile")
        os.mkdir(profile_dir)
        page = None
        try:
            page = CdpPage([self.args.chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}"],
                           f"{self.hub_url}/#{fragment}", *self.processes.log_paths("hub-page"),
                           env={**os.environ, "TMPDIR": self.temp_dir})
            problems = hub_page_problems(page, self.hub_url, authority, body["grant"]["id"],
                                         self.restart_camera,
                                         lambda: self.list_chelsea_sessions(admin, PAGE_INCIDENT))
        except (CdpError, OSError) as error:
            problems = ["the page could not be read", f"DevTools: {error}"]
        finally:
            if page is not None:
                page.close()
        self.record(test, not problems[1:], "; ".join(problems))

    def print_logs(self):
        for name in sorted(os.listdir(self.temp_dir)):
            if not name.endswith((".stdout", ".stderr")):
                continue
            path = os.path.join(self.temp_dir, name)
            with open(path, "r", encoding="utf-8", errors="replace") as log:
                lines = [line for line in log.read().splitlines()
                         if "dbus" not in line]  # Chromium's D-Bus noise on a bare machine
            if not lines:
                continue
            print(f"----- {name} (last 60 lines) -----")
            print("\n".join(lines[-60:]))

    def abort(self):
        print(f"FAIL: run: still running {self.args.time_limit + 30:.0f} s after the start",
              flush=True)
        self.processes.stop_all()
        print("0 passed, 1 failed", flush=True)
        os._exit(1)

    def cleanup(self):
        self.processes.stop_all()
        if self.page_server is not None:
            self.page_server.shutdown()
            self.page_server.server_close()
        if self.args.keep_temp:
            print(f"note: kept {self.temp_dir}")
        else:
            shutil.rmtree(self.temp_dir, ignore_errors=True)


def page_text(page, element_id):
    # Before the page has loaded, the element is not there yet.
    return page.evaluate(f"(document.getElementById({json.dumps(element_id)}) || {{}}).textContent") or ""


def wait_page(page, predicate, timeout_s):
    """Polls the page's status and error lines until @predicate(status,
    error) holds. Returns the last (status, error)."""
    deadline = time.monotonic() + timeout_s
    while True:
        texts = page_text(page, "status"), page_text(page, "error")
        if predicate(*texts) or time.monotonic() > deadline:
            return texts
        time.sleep(0.25)


def frames_in_status(status):
    """The decoded-frame count in the page's status line, or 0."""
    words = status.split(" frames decoded")[0].split()
    return int(words[-1]) if " frames decoded" in status and words[-1].isdigit() else 0


def hub_page_problems(page, hub_url, authority, grant_id, restart_camera, list_sessions):
    """Plays the grant's camera on the hub's page, clicks it twice at once,
    restarts the camera, then revokes the grant, reading the page at each
    step. Returns [summary, problem, ...]."""
    status, error = wait_page(page, lambda s, e: frames_in_status(s) >= PAGE_MIN_FRAMES or e, PAGE_PLAY_S)
    frames = frames_in_status(status)
    summary = f"playing: {status!r}, error {error!r}"
    if frames < PAGE_MIN_FRAMES:
        return [summary, f"expected {PAGE_MIN_FRAMES} decoded frames under the grant and incident number"]
    problems = [summary]
    address = page.evaluate("location.href") or ""
    if "token=" in address or "incident=" in address:
        problems.append(f"the token or incident number stayed in the address bar: {address}")

    # A reload, as a video wall does after a restart, plays again from the
    # tab's own storage.
    page.evaluate("window.beforeReload = true; location.reload()")
    deadline = time.monotonic() + PAGE_PLAY_S
    while page.evaluate("window.beforeReload === true") and time.monotonic() < deadline:
        time.sleep(0.1)
    status, error = wait_page(page, lambda s, e: frames_in_status(s) >= PAGE_MIN_FRAMES or e, PAGE_PLAY_S)
    problems[0] += f"; after a reload: {status!r}, error {error!r}"
    frames = frames_in_status(status)
    if frames < PAGE_MIN_FRAMES:
        problems.append("the page did not play again after a reload")

    # Two clicks before the first view is set up, as on a busy video wall,
    # leave one view and one hub session, not a hidden second one.
    page.evaluate(f"(() => {{ const item = document.querySelector('#cameras li[data-camera=\"{CAMERA_ID}\"]');"
                  " item.click(); item.click(); })()")
    status, error = wait_page(page, lambda s, e: frames_in_status(s) >= PAGE_MIN_FRAMES or e, PAGE_PLAY_S)
    sessions = list_sessions()
    problems[0] += f"; after a double click: {status!r}, error {error!r}, sessions {sessions!r}"
    frames = frames_in_status(status)
    if frames < PAGE_MIN_FRAMES:
        problems.append("the page did not play after a double click")
    if sessions is None or len(sessions) != 1:
        problems.append("a double click did not leave exactly one hub session")

    # The hub keeps the view while the camera reconnects, and so must the page.
    restart_camera(PAGE_CAMERA_DOWN_S)
    status, error = wait_page(page, lambda s, e: frames_in_status(s) >= frames + PAGE_MIN_FRAMES or e, PAGE_RESUME_S)
    problems[0] += f"; after a camera restart: {status!r}, error {error!r}"
    if error or frames_in_status(status) < frames + PAGE_MIN_FRAMES:
        problems.append("the view did not resume after the camera restarted")

    revoke_status, _ = api_request(hub_url, "DELETE", f"/api/v1/grants/{grant_id}", authority)
    status, error = wait_page(page, lambda s, e: "ended" in e, PAGE_END_S)
    problems[0] += f"; after the revocation: error {error!r}"
    if revoke_status != 200:
        problems.append(f"the revocation returned {revoke_status}")
    if not error.startswith(f"The view of {CAMERA_ID} ended: ") or "requires a grant" not in error:
        problems.append("the page did not give the hub's reason for the end")
    return problems


def frames_decoded(report):
    if report is None:
        return 0
    return (report.get("video") or {}).get("framesDecoded") or 0


def left_connected(report):
    """True when the page's peer connection is no longer connected."""
    return (report.get("connectionState") in ("closed", "failed")
            or report.get("iceConnectionState") in ("disconnected", "failed", "closed"))


def first_change(report, since_ms, predicate):
    """The first state change at or after @since_ms (Unix ms) that satisfies
    @predicate, or None."""
    for change in report.get("stateChanges", []):
        if change["unixMs"] >= since_ms and predicate(change):
            return change
    return None


def revoke_frame_problems(frames_before, reports, revoked_ms):
    """Checks the reports posted after the revocation: framesDecoded reaches
    its last value within FRAMES_STOP_S and stays there for FRAMES_STILL_S."""
    if not reports or reports[-1].get("video") is None:
        return ["the page reported no video stats after the revocation"]
    final = frames_decoded(reports[-1])
    stopped = next(r for r in reports if frames_decoded(r) == final)
    problems = []
    if stopped["unixMs"] - revoked_ms > FRAMES_STOP_S * 1000:
        problems.append(f"framesDecoded grew until {stopped['unixMs'] - revoked_ms:.0f} ms after "
                        f"the revocation ({frames_before} -> {final})")
    if reports[-1]["unixMs"] - stopped["unixMs"] < FRAMES_STILL_S * 1000:
        problems.append(f"framesDecoded was seen unchanged for only "
                        f"{reports[-1]['unixMs'] - stopped['unixMs']:.0f} ms")
    return problems


def revoke_state_problems(report, sent_ms, revoked_ms):
    """Checks the page's state changes since the revocation request: the DTLS
    transport closed within DTLS_CLOSE_S and the peer connection left
    "connected" within CONNECTION_LEAVE_S of the response."""
    problems = []
    closed = first_change(report, sent_ms, lambda c: c.get("dtlsState") == "closed")
    if closed is None or closed["unixMs"] - revoked_ms > DTLS_CLOSE_S * 1000:
        problems.append(f"the DTLS transport was not closed within {DTLS_CLOSE_S:.0f} s "
                        f"of the revocation")
    leave = first_change(report, sent_ms, left_connected)
    if leave is None or leave["unixMs"] - revoked_ms > CONNECTION_LEAVE_S * 1000:
        problems.append(f"the peer connection did not leave \"connected\" within "
                        f"{CONNECTION_LEAVE_S:.0f} s of the revocation")
    return problems


def revoke_listing_problems(report, listed_before, listed_after):
    """Checks that /api/v1/sessions listed the page's session before the
    revocation and not after it."""
    location = report.get("location") or ""
    session_id = location.rsplit("/", 1)[-1]
    if listed_before is None or listed_after is None:
        return ["GET /api/v1/sessions as Boston's system administrator failed"]
    problems = []
    if [s.get("id") for s in listed_before] != [session_id]:
        problems.append(f"before the revocation the hub listed {json.dumps(listed_before)}, "
                        f"expected session {session_id!r}")
    if listed_after:
        problems.append(f"after the revocation the hub still lists {json.dumps(listed_after)}")
    return problems


def relay_problems(report, expected_size):
    if report is None:
        return ["the page sent no report"]
    problems = []
    if report.get("whepStatus") != 201:
        problems.append(f"WHEP POST returned {report.get('whepStatus')} "
                        f"{json.dumps(report.get('whepError'))}")
    if report.get("error"):
        problems.append(f"page error: {report['error']}")
    video = report.get("video") or {}
    if video.get("framesDecoded", 0) < MIN_FRAMES_DECODED:
        problems.append(f"expected at least {MIN_FRAMES_DECODED} decoded frames")
    if (video.get("frameWidth"), video.get("frameHeight")) != expected_size:
        problems.append(f"expected {expected_size[0]}x{expected_size[1]}")
    if (video.get("codec") or "").lower() != "video/h264":
        problems.append("expected codec video/H264")
    if not report.get("offerHasAudio"):
        problems.append("the offer had no audio m-line, so audio rejection is untested")
    if (report.get("tracksByKind") or {}).get("audio", 0) != 0:
        problems.append("the page received an audio track")
    audio = report.get("audio")
    if audio is not None and audio.get("packetsReceived", 0) != 0:
        problems.append("audio RTP packets arrived")
    answer_audio = report.get("answerAudio") or {}
    if answer_audio.get("port") != 0 and answer_audio.get("direction") != "inactive":
        problems.append(f"the answer does not reject audio: {json.dumps(answer_audio)}")
    return problems


def report_results(results):
    """Prints how many (name, passed) pairs of @results passed and returns the
    exit status: 0 when at least one ran and none failed."""
    passed = sum(1 for _, ok in results if ok)
    failed = len(results) - passed
    print(f"{passed} passed, {failed} failed", flush=True)
    return 0 if failed == 0 and passed > 0 else 1


def parse_args():
    script_dir = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cimshub", required=True, help="path of the cimshub binary")
    parser.add_argument("--cimshubctl", required=True, help="path of the cimshubctl binary")
    parser.add_argument("--camera-sim", required=True,
                        help="path of the cimshub-camera-sim binary")
    parser.add_argument("--footage",
                        help="768x576 10 fps video file for the simulator; the "
                             "CIMS_TEST_FOOTAGE environment variable overrides it; "
                             "without either, the simulator sends a 640x480 pattern")
    parser.add_argument("--chromium", default="/usr/bin/chromium",
                        help="path of the Chromium binary (default: %(default)s)")
    parser.add_argument("--page", default=os.path.join(script_dir, PAGE_NAME),
                        help="viewer page to serve (default: %(default)s)")
    parser.add_argument("--time-limit", type=float, default=120.0,
                        help="seconds the whole run may take (default: %(default)s)")
    parser.add_argument("--keep-temp", action="store_true",
                        help="keep the temporary directory with logs and config")
    args = parser.parse_args()
    if os.environ.get("CIMS_TEST_FOOTAGE"):
        args.footage = os.environ["CIMS_TEST_FOOTAGE"]
    return args


def main():
    args = parse_args()
    run = Run(args)
    if run.footage:
        print(f"note: camera plays {run.footage}")
    else:
        print(f"note: no footage file at {args.footage!r}; camera sends a 640x480 pattern")

    # A timer, not only the per-wait limits, so that a hung call still ends the run.
    watchdog = threading.Timer(args.time_limit + 30, run.abort)
    watchdog.daemon = True
    watchdog.start()

    setup_error = None
    try:
        try:
            run.setup()
        except (RuntimeError, OSError, subprocess.SubprocessError) as error:
            setup_error = error
            run.record("setup", False, str(error))
        if setup_error is None:
            relay_ok = run.test_relay()
            run.test_denials()
            run.test_camera_restart(relay_ok)
            run.test_revoke()
            run.test_hub_page()
            run.test_transcodes()
            run.test_unmarked_camera()
        if not all(passed for _, passed in run.results):
            run.processes.report_exits()
            run.print_logs()
    finally:
        run.cleanup()
        watchdog.cancel()

    return report_results(run.results)


if __name__ == "__main__":
    sys.exit(main())
