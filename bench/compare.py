#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
# Compares cimshub with the Janus streaming plugin and with the relay floor in
# one run on one machine: same sources, same viewers, same SRTP build, the
# server pinned to its own core. Prints a Markdown table and appends it to
# bench/RESULTS.md.
"""Compare cimshub, Janus's streaming plugin and the relay floor.

Run as root from the top of the tree, after building the bench directory:

    bench/compare.py --sources 2 --viewers 50,100,200,400 --duration 20

Two network namespaces joined by a veth pair carry all traffic
(10.99.0.1/30 for the server under test, 10.99.0.2/30 for the load side);
both are removed at the end. The server runs in the first, pinned to the last
CPU; cimshub-source-gen and cimshub-whep-viewer run in the second, pinned to
CPU 0. Janus's streaming plugin gets plain RTP on its mountpoint ports;
cimshub pulls the same streams over RTSP.

For each server the viewer count steps up through --viewers. A step passes
when every viewer got a keyframe and under 0.1% of packets were lost, and
the steps stop at the first failure. Server CPU is read from
/proc/PID/stat (user plus system, all threads) over a steady window after
every viewer has joined; RSS from /proc/PID/status. After the window, 20
more viewers join one at a time while the step's viewers still watch. Their
first-frame times are reported apart from the step's join ramp. A step
fails when one of them gets no keyframe.

Latency runs from the send time that the source generator writes into each
frame to the viewer process reading the packet. With --socket-timestamps it
also runs to the kernel's receive timestamp in the viewer's socket
(SIOCGSTAMPNS), which leaves out the load generator's own queueing on its
shared core. cimshub's own relay-delay histogram on /metrics gives the
latency the hub adds, from a camera packet's arrival to its send.
"""

import argparse
import http.client
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
TOP_DIR = os.path.dirname(BENCH_DIR)
sys.path.insert(0, os.path.join(TOP_DIR, "tests", "browser"))
from run_browser_test import Processes, libconfig_string, make_key_pair, run_checked  # noqa: E402

SERVER_NS = "cims-cmp-server"
LOAD_NS = "cims-cmp-load"
SERVER_ADDRESS = "10.99.0.1"
LOAD_ADDRESS = "10.99.0.2"
PREFIX_LENGTH = 30
VETH_SERVER = "vcmp-server"
VETH_LOAD = "vcmp-load"
RTSP_PORT = 18554
# Heading of the results-file section that each run is added to.
RESULTS_SECTION = "## cimshub, Janus and the floor"
HUB_HTTP_PORT = 18080
HUB_ICE_PORTS = (40000, 44999)
JANUS_HTTP_PORT = 18088
JANUS_RTP_PORTS = "45000-49999"
JANUS_SOURCE_PORT = 20000
JANUS_HTTP_CONNECTION_LIMIT = 16384
LOSS_LIMIT = 0.001
# DTLS-SRTP profile the viewers offer, and the floor's suite, per --srtp.
SRTP_SUITES = {"cm": ("SRTP_AES128_CM_SHA1_80", "cm"), "gcm": ("SRTP_AEAD_AES_128_GCM", "gcm")}
JANUS_LIB_DIR = "/usr/lib/x86_64-linux-gnu/janus"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


# ---- namespaces (outer process) ------------------------------------------------------

def ip(*argv, check=True):
    return subprocess.run(["ip", *argv], check=check, capture_output=True, text=True)


def namespaces_remove():
    for name in (SERVER_NS, LOAD_NS):
        ip("netns", "del", name, check=False)


def namespaces_create():
    """Makes the two namespaces and the veth pair between them. The
    addresses exist only inside these namespaces."""
    namespaces_remove()
    ip("netns", "add", SERVER_NS)
    ip("netns", "add", LOAD_NS)
    ip("link", "add", VETH_SERVER, "netns", SERVER_NS, "type", "veth", "peer", "name", VETH_LOAD,
       "netns", LOAD_NS)
    for name, veth, address in ((SERVER_NS, VETH_SERVER, SERVER_ADDRESS), (LOAD_NS, VETH_LOAD, LOAD_ADDRESS)):
        ip("-n", name, "link", "set", "lo", "up")
        ip("-n", name, "addr", "add", f"{address}/{PREFIX_LENGTH}", "dev", veth)
        ip("-n", name, "link", "set", veth, "up")


def in_server_ns(argv):
    """nsenter execs the command itself, so the child's pid is the server's."""
    return ["nsenter", f"--net=/run/netns/{SERVER_NS}", *argv]


# ---- /proc ---------------------------------------------------------------------------

def cpu_seconds(pid):
    """User plus system time of every thread of @pid, in seconds."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat_file:
        fields = stat_file.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_kib(pid):
    with open(f"/proc/{pid}/statm", encoding="ascii") as statm_file:
        return int(statm_file.read().split()[1]) * PAGE_KIB


def percentile(values, fraction):
    """Nearest-rank percentile; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(fraction * len(ordered) + 0.999999)))
    return ordered[rank - 1]


# The whep-viewer histograms: latency to the viewer process reading each
# frame's first packet and last packet, and the same to the kernel's
# receive time in the viewer's socket.
# Viewers that join one at a time while a step's viewers watch, and how far
# apart they join (the processes of all sources together).
PROBE_VIEWERS = 20
PROBE_RAMP_MS = 250
PROBE_DURATION_S = 2

HISTOGRAMS = ("latency", "frame_latency", "socket_latency", "socket_frame_latency")


def relay_delay_histogram(metrics_url):
    """Returns cimshub's cimshub_relay_delay_seconds as {upper bound in ms:
    cumulative count}, or None without a URL or a histogram."""
    if metrics_url is None:
        return None
    try:
        with urllib.request.urlopen(metrics_url, timeout=5) as response:
            body = response.read().decode("utf-8", "replace")
    except (OSError, http.client.HTTPException) as error:
        print(f"note: GET {metrics_url} failed: {error}", flush=True)
        return None
    histogram = {}
    for match in re.finditer(r'^cimshub_relay_delay_seconds_bucket\{le="([^"]+)"\} (\d+)$', body, re.M):
        bound_ms = float("inf") if match.group(1) == "+Inf" else float(match.group(1)) * 1000
        histogram[bound_ms] = int(match.group(2))
    return histogram or None


def relay_delay_percentiles(before, after):
    """Returns the p50 and p99 of the relay delays counted between two
    readings, as the upper bounds of their buckets in ms."""
    if not before or not after:
        return {}
    bounds = sorted(after)
    counts = [after[bound] - before.get(bound, 0) for bound in bounds]
    if counts[-1] <= 0:
        return {}
    figures = {"relay_delay_samples": counts[-1]}
    for label, fraction in (("p50", 0.5), ("p99", 0.99)):
        rank = fraction * counts[-1]
        figures[f"relay_delay_{label}_ms"] = next(b for b, c in zip(bounds, counts) if c >= rank)
    return figures


def probe_figures(probes):
    """First-frame times of the viewers that joined the loaded server one at
    a time: how many got a keyframe, the median and the slowest."""
    if probes is None:
        return {"probes": 0, "probes_with_keyframe": 0, "probe_first_frame_p50_ms": None,
                "probe_first_frame_max_ms": None}
    first_frames = [v["first_keyframe_ms"] for v in probes if v.get("first_keyframe_ms") is not None]
    return {"probes": len(probes), "probes_with_keyframe": len(first_frames),
            "probe_first_frame_p50_ms": percentile(first_frames, 0.5),
            "probe_first_frame_max_ms": max(first_frames) if first_frames else None}


def latency_percentiles(viewers):
    """{name_p50_ms, name_p99_ms} for every merged histogram."""
    figures = {}
    for name in HISTOGRAMS:
        for label, fraction in (("p50", 0.5), ("p99", 0.99)):
            figures[f"{name}_{label}_ms"] = histogram_percentile(viewers["histograms"][name],
                                                                 viewers["bucket_us"], fraction)
    return figures


def histogram_percentile(histogram, bucket_us, fraction):
    """Nearest-rank percentile in ms of merged {bucket: count}, at the
    bucket's upper edge."""
    total = sum(histogram.values())
    if total == 0:
        return None
    rank = max(1, int(fraction * total + 0.999999))
    seen = 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= rank:
            return (bucket + 1) * bucket_us / 1000.0
    return None


# ---- one server under test ----------------------------------------------------------------

class Bench:
    """Runs the viewer steps against one server whose process is @pid."""

    def __init__(self, args, processes, temp_dir, server_cpu, load_cpu):
        self.args = args
        self.processes = processes
        self.temp_dir = temp_dir
        self.server_cpu = server_cpu
        self.load_cpu = load_cpu
        self.n_runs = 0

    def viewer_argv(self, server, source_index, n_viewers, ramp_ms, duration_s, latency_after_ms,
                    idle_timeout_ms=4000):
        argv = ["taskset", "-c", str(self.load_cpu), self.args.whep_viewer,
                "--viewers", str(n_viewers), "--ramp-ms", str(ramp_ms), "--duration", str(duration_s),
                "--idle-timeout", str(idle_timeout_ms), "--srtp-profiles", SRTP_SUITES[self.args.srtp][0], "--json",
                "--local-address", LOAD_ADDRESS, "--latency-after-ms", str(latency_after_ms)]
        if self.args.socket_timestamps:
            argv.append("--socket-timestamps")
        if server["kind"] == "janus":
            return argv + ["--janus", "--url", server["url"], "--camera", str(source_index + 1)]
        return argv + ["--url", server["url"], "--camera", f"src-{source_index}",
                       "--token-file", server["token_path"]]

    def start_viewers(self, server, per_source, ramp_ms, duration_s, latency_after_ms, stagger_s=0.0,
                      idle_timeout_ms=4000):
        """Starts one viewer process per source with viewers, @stagger_s
        apart; returns [(result path, process)]."""
        procs = []
        for index, count in enumerate(per_source):
            if count == 0:
                continue
            if procs:
                time.sleep(stagger_s)
            self.n_runs += 1
            path = os.path.join(self.temp_dir, f"viewer-{self.n_runs}.json")
            with open(path, "wb") as out, open(path + ".stderr", "wb") as err:
                procs.append((path, subprocess.Popen(
                    self.viewer_argv(server, index, count, ramp_ms, duration_s, latency_after_ms,
                                     idle_timeout_ms),
                    stdin=subprocess.DEVNULL, stdout=out, stderr=err)))
        return procs

    @staticmethod
    def wait_viewers(procs, timeout_s):
        for _, proc in procs:
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def run_viewers(self, server, n_viewers, duration_s, window=None, idle_timeout_ms=4000):
        """Runs @n_viewers spread over the sources, one viewer process per
        source. @window(start_s, end_s) is called with the steady window's
        bounds relative to now, and its result returned with the viewers'.
        With a window, PROBE_VIEWERS more viewers join one by one once it
        ends, while the others still watch; their results come back apart
        as "probes"."""
        n_sources = self.args.sources
        per_source = [n_viewers // n_sources + (1 if i < n_viewers % n_sources else 0) for i in range(n_sources)]
        ramp_ms = max(5, min(50, 4000 // max(per_source)))
        join_s = max(per_source) * ramp_ms / 1000.0
        latency_after_ms = int(join_s * 1000) + 2000
        probe_span_s = PROBE_VIEWERS * PROBE_RAMP_MS / 1000.0 + PROBE_DURATION_S + 2.0
        watch_s = duration_s + (int(join_s + probe_span_s) + 1 if window is not None else 0)
        started = time.monotonic()
        procs = self.start_viewers(server, per_source, ramp_ms, watch_s, latency_after_ms,
                                   idle_timeout_ms=idle_timeout_ms)

        measured, probes = None, None
        if window is not None:
            measured = window(started, join_s + 2.0, join_s + duration_s - 1.0, [p.pid for _, p in procs])
            probe_per_source = [PROBE_VIEWERS // n_sources + (1 if i < PROBE_VIEWERS % n_sources else 0)
                                for i in range(n_sources)]
            probe_procs = self.start_viewers(server, probe_per_source, PROBE_RAMP_MS * n_sources,
                                             PROBE_DURATION_S, 0, stagger_s=PROBE_RAMP_MS / 1000.0)
            self.wait_viewers(probe_procs, probe_span_s + 40)
            probes = self.viewer_results([path for path, _ in probe_procs])["viewers"]
        self.wait_viewers(procs, join_s + watch_s + 40)
        viewers = self.viewer_results([path for path, _ in procs])
        viewers["probes"] = probes
        return viewers, measured

    @staticmethod
    def viewer_results(paths):
        """Reads the per-viewer lines and merges the processes' latency
        histograms, one {bucket: count} per HISTOGRAMS name."""
        viewers, histograms, bucket_us = [], {name: {} for name in HISTOGRAMS}, 100
        for path in paths:
            with open(path, encoding="utf-8") as result_file:
                for line in result_file:
                    try:
                        obj = json.loads(line)
                    except ValueError:
                        continue
                    if obj.get("summary"):
                        bucket_us = obj.get("latency_bucket_us", bucket_us)
                        for name, merged in histograms.items():
                            for bucket, count in obj.get(f"{name}_histogram", []):
                                merged[bucket] = merged.get(bucket, 0) + count
                    elif "viewer" in obj:
                        viewers.append(obj)
        return {"viewers": viewers, "histograms": histograms, "bucket_us": bucket_us}

    def steady_window(self, server):
        """Returns a window callback measuring the server's CPU and RSS, the
        load side's CPU and, for cimshub, its relay-delay histogram between
        two times after the start."""
        pid = server["pid"]
        metrics_url = server["url"] + "/metrics" if server["kind"] == "cimshub" else None

        def measure(started, start_s, end_s, viewer_pids):
            time.sleep(max(0.0, started + start_s - time.monotonic()))
            t0 = time.monotonic()
            cpu0 = cpu_seconds(pid)
            load0 = sum(cpu_seconds(p) for p in viewer_pids if os.path.exists(f"/proc/{p}"))
            delay0 = relay_delay_histogram(metrics_url)
            time.sleep(max(1.0, started + end_s - time.monotonic()))
            elapsed = time.monotonic() - t0
            cpu1 = cpu_seconds(pid)
            load1 = sum(cpu_seconds(p) for p in viewer_pids if os.path.exists(f"/proc/{p}"))
            delay1 = relay_delay_histogram(metrics_url)
            return {"server_cores": (cpu1 - cpu0) / elapsed, "viewer_cores": (load1 - load0) / elapsed,
                    "rss_kib": rss_kib(pid), "seconds": elapsed, **relay_delay_percentiles(delay0, delay1)}
        return measure

    def idle_cores(self, pid, seconds=3.0):
        cpu0 = cpu_seconds(pid)
        time.sleep(seconds)
        return (cpu_seconds(pid) - cpu0) / seconds

    def measure(self, server):
        """Warm-up, baseline, then the viewer steps. Returns a dict of results."""
        pid = server["pid"]
        result = {"kind": server["kind"], "rss_idle_kib": server["rss_idle_kib"], "steps": []}

        # One viewer per source starts cimshub's ingest and fills both servers' keyframe stores,
        # which takes until each source's next keyframe: up to one keyframe interval, which the
        # viewer waits out without media.
        warm_s = max(3, -(-self.args.keyint // self.args.fps) + 1)
        warm, _ = self.run_viewers(server, self.args.sources, warm_s, idle_timeout_ms=(warm_s + 2) * 1000)
        result["warmup_keyframes"] = sum(1 for v in warm["viewers"] if v.get("first_keyframe_ms") is not None)
        time.sleep(1.0)
        result["rss_sources_kib"] = rss_kib(pid)
        result["idle_cores"] = self.idle_cores(pid)

        for n_viewers in self.args.viewer_steps:
            viewers, window = self.run_viewers(server, n_viewers, self.args.duration, self.steady_window(server))
            step = self.step_summary(n_viewers, viewers, window, result["rss_sources_kib"])
            result["steps"].append(step)
            print(f"{server['kind']}: {n_viewers} viewers: loss {step['loss'] * 100:.3f}%, "
                  f"{step['with_keyframe']} with keyframe, server {step['server_cores']:.2f} cores, "
                  f"viewers {step['viewer_cores']:.2f} cores, latency p50 {step['latency_p50_ms']} ms, "
                  f"first frame p50 {step['first_frame_p50_ms']} ms, p99 {step['first_frame_p99_ms']} ms "
                  f"(answer p99 {step['answer_p99_ms']} ms, DTLS done p99 {step['dtls_connected_p99_ms']} ms)",
                  flush=True)
            if not step["passed"]:
                break
        return result

    @staticmethod
    def step_summary(n_viewers, viewers, window, rss_sources_kib):
        rows = viewers["viewers"]
        packets = sum(v.get("packets", 0) for v in rows)
        lost = sum(v.get("lost", 0) for v in rows)
        first_frames = [v["first_keyframe_ms"] for v in rows if v.get("first_keyframe_ms") is not None]
        answers = [v["answer_ms"] for v in rows if v.get("answer_ms") is not None]
        dtls_connected = [v["dtls_connected_ms"] for v in rows if v.get("dtls_connected_ms") is not None]
        profiles = sorted({v.get("srtp_profile") for v in rows if v.get("srtp_profile")})
        errors = sorted({v.get("error") for v in rows if v.get("error")})[:3]
        loss = lost / (packets + lost) if packets + lost else 1.0
        return {
            "viewers": n_viewers, "reported": len(rows), "with_keyframe": len(first_frames),
            "packets": packets, "lost": lost, "loss": loss,
            "passed": (len(first_frames) == n_viewers and loss < LOSS_LIMIT
                       and all(v.get("first_keyframe_ms") is not None for v in viewers.get("probes") or [])),
            "server_cores": window["server_cores"], "viewer_cores": window["viewer_cores"],
            "rss_kib": window["rss_kib"],
            "rss_per_viewer_kib": (window["rss_kib"] - rss_sources_kib) / n_viewers,
            "first_frame_p50_ms": percentile(first_frames, 0.5),
            "first_frame_p99_ms": percentile(first_frames, 0.99),
            "answer_p99_ms": percentile(answers, 0.99),
            "dtls_connected_p99_ms": percentile(dtls_connected, 0.99),
            "latency_samples": sum(viewers["histograms"]["latency"].values()),
            "relay_delay_p50_ms": window.get("relay_delay_p50_ms"),
            "relay_delay_p99_ms": window.get("relay_delay_p99_ms"),
            **probe_figures(viewers.get("probes")),
            **latency_percentiles(viewers),
            "srtp_profiles": profiles, "errors": errors,
        }


# ---- starting the servers ------------------------------------------------------------------

def wait_http(url, proc, timeout_s):
    """Polls @url with curl until it returns HTTP 200."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        status = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "1", url],
                                capture_output=True, text=True, check=False).stdout
        if status == "200":
            return True
        time.sleep(0.2)
    return False


def wait_line(path, needle, proc, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if os.path.exists(path):
            with open(path, encoding="utf-8", errors="replace") as log:
                if needle in log.read():
                    return True
        time.sleep(0.2)
    return False


def generator_start(args, processes, name, mode_argv, load_cpu, duration_s):
    argv = ["taskset", "-c", str(load_cpu), args.source_gen, "--clip", args.clip, "--sources", str(args.sources),
            "--duration", str(duration_s), "--added-delay-ms", str(args.added_delay_ms),
            "--fps", str(args.fps), "--kbps", str(args.kbps), "--keyint", str(args.keyint), *mode_argv]
    proc = processes.start(name, argv)
    stdout_path = processes.log_paths(name)[0]
    if not wait_line(stdout_path, "cimshub-source-gen: s", proc, 120):
        raise RuntimeError(f"{name} did not start; see {processes.log_paths(name)[1]}")
    with open(stdout_path, encoding="utf-8") as log:
        text = log.read()
        match = re.search(r"(\d+) frames, \d+ keyframes, (\d+) packets, (\d+) kbit/s", text)
    largest = re.search(r"largest frame (\d+) packets", text)
    return {"frames": int(match.group(1)), "packets": int(match.group(2)), "kbps": int(match.group(3)),
            "largest_frame_packets": int(largest.group(1)) if largest else None}


def write_hub_config(path, args, temp_dir, public_key):
    cameras = ",\n".join(
        f"""  {{ id = "src-{i}"; jurisdiction = "boston"; location = "Bench source {i}";
    brand_model = "cimshub-source-gen"; installed = "2024-01-01";
    source = "rtsp://{LOAD_ADDRESS}:{RTSP_PORT}/src-{i}"; shared_with = []; restricted = false; }}"""
        for i in range(args.sources))
    state_dir = os.path.join(temp_dir, "hub-state")
    os.makedirs(state_dir, exist_ok=True)
    text = f"""# Written by bench/compare.py for one run.
hub: {{
  http_listen = "{SERVER_ADDRESS}:{HUB_HTTP_PORT}";
  ice_udp_ports = [{HUB_ICE_PORTS[0]}, {HUB_ICE_PORTS[1]}];
  public_addresses = ["{SERVER_ADDRESS}"];
  state_dir = {libconfig_string(state_dir)};
  idle_source_stop_s = 3600;
  whep_rate_per_client = 100000;
  whep_rate_total = 100000;
  max_sessions_per_user = 100000;
  max_sessions_per_camera = 100000;
}};
jurisdictions = (
  {{ id = "boston"; name = "Boston"; participates = true; token_issuer = "https://idp.boston.test";
    token_key = {libconfig_string(public_key)}; }}
);
agencies = ();
cameras = (
{cameras}
);
viewer_profiles = (
  {{ name = "browser"; codecs = ["h264"]; max_width = 1920; max_height = 1080; max_fps = 30; max_kbps = 8000; }}
);
"""
    with open(path, "w", encoding="utf-8") as config_file:
        config_file.write(text)


def hub_start(args, processes, temp_dir, server_cpu):
    private_key, public_key = make_key_pair(temp_dir, "boston")
    config_path = os.path.join(temp_dir, "hub.conf")
    write_hub_config(config_path, args, temp_dir, public_key)
    output = run_checked([args.cimshubctl, "token", "mint", "--key", private_key,
                          "--issuer", "https://idp.boston.test", "--subject", "bench-viewer",
                          "--name", "Bench Viewer", "--jurisdiction", "boston", "--permissions", "view",
                          "--roles", "viewer", "--ttl", "7200"], "cimshubctl token mint")
    token_path = os.path.join(temp_dir, "boston.token")
    with open(token_path, "w", encoding="utf-8") as token_file:
        token_file.write(output.strip().splitlines()[-1] + "\n")

    proc = processes.start("cimshub", in_server_ns(["taskset", "-c", str(server_cpu), args.cimshub,
                                                    "--config", config_path]))
    url = f"http://{SERVER_ADDRESS}:{HUB_HTTP_PORT}"
    if not wait_http(url + "/healthz", proc, 20):
        raise RuntimeError(f"cimshub did not return 200 on {url}/healthz; see {processes.log_paths('cimshub')[1]}")
    time.sleep(1.0)
    return {"kind": "cimshub", "pid": proc.pid, "url": url, "token_path": token_path,
            "rss_idle_kib": rss_kib(proc.pid)}


def janus_configure(args, temp_dir):
    """Writes a Janus configuration folder with only the streaming plugin
    and the HTTP transport, one H.264 RTP mountpoint per source."""
    folder = os.path.join(temp_dir, "janus")
    for sub, keep in (("plugins", "libjanus_streaming.so"), ("transports", "libjanus_http.so"),
                      ("events", None), ("loggers", None)):
        os.makedirs(os.path.join(folder, sub), exist_ok=True)
        if keep:
            os.symlink(os.path.join(JANUS_LIB_DIR, sub, keep), os.path.join(folder, sub, keep))
    with open(os.path.join(folder, "janus.jcfg"), "w", encoding="utf-8") as config:
        config.write(f"""general: {{
  configs_folder = "{folder}"
  plugins_folder = "{folder}/plugins"
  transports_folder = "{folder}/transports"
  events_folder = "{folder}/events"
  loggers_folder = "{folder}/loggers"
  debug_level = 3
  session_timeout = 0
  event_loops = {args.janus_event_loops}
}}
media: {{ rtp_port_range = "{JANUS_RTP_PORTS}" }}
nat: {{ ice_enforce_list = "{SERVER_ADDRESS}" ignore_mdns = true }}
""")
    # libmicrohttpd's default limit of 1,020 open connections stopped Janus
    # near 250 viewers: the load generator keeps idle keep-alive connections
    # open, about four per viewer after a fast ramp, and Janus closes them
    # only after 120 s idle. An operator serving that many clients raises
    # the limit.
    with open(os.path.join(folder, "janus.transport.http.jcfg"), "w", encoding="utf-8") as config:
        config.write(f"""general: {{ json = "compact" base_path = "/janus" http = true port = {JANUS_HTTP_PORT}
  ip = "{SERVER_ADDRESS}" https = false mhd_connection_limit = {JANUS_HTTP_CONNECTION_LIMIT} }}
admin: {{ admin_http = false }}
""")
    mountpoints = "".join(
        f"""src-{i}: {{ type = "rtp" id = {i + 1} description = "src-{i}" audio = false video = true
  videoport = {JANUS_SOURCE_PORT + 2 * i} videopt = 96 videocodec = "h264"
  videofmtp = "packetization-mode=1" videobufferkf = true videoiface = "{SERVER_ADDRESS}" }}
""" for i in range(args.sources))
    with open(os.path.join(folder, "janus.plugin.streaming.jcfg"), "w", encoding="utf-8") as config:
        config.write("general: { }\n" + mountpoints)
    return folder


def janus_start(args, processes, temp_dir, server_cpu):
    folder = janus_configure(args, temp_dir)
    env_argv = ["env", f"LD_LIBRARY_PATH={os.path.join(args.libsrtp_openssl, 'lib')}"]
    proc = processes.start("janus", in_server_ns(["taskset", "-c", str(server_cpu), *env_argv, args.janus,
                                                  "-F", folder, "-C", os.path.join(folder, "janus.jcfg")]))
    url = f"http://{SERVER_ADDRESS}:{JANUS_HTTP_PORT}/janus"
    if not wait_http(url + "/info", proc, 30):
        raise RuntimeError(f"Janus did not return 200 on {url}/info; see {processes.log_paths('janus')[0]}")
    time.sleep(1.0)
    with open(f"/proc/{proc.pid}/maps", encoding="utf-8") as maps:
        srtp_paths = sorted({line.split()[-1] for line in maps if "libsrtp2" in line})
    return {"kind": "janus", "pid": proc.pid, "url": url, "rss_idle_kib": rss_kib(proc.pid),
            "srtp_library": ", ".join(srtp_paths)}


def floor_run(args, clip, n_viewers, server_cpu):
    """The relay floor for the clip's mean packet size and bitrate."""
    packet_size = int(clip["kbps"] * 1000 / 8 * (clip["frames"] / args.fps) / clip["packets"]) + 12
    argv = ["taskset", "-c", f"{server_cpu},0", args.floor, "--viewers", str(n_viewers),
            "--suite", SRTP_SUITES[args.srtp][1],
            "--key-value", "--cpu", str(server_cpu), "--max-seconds", "10", "--deliveries", "1000000",
            "--packet-size", str(packet_size), "--stream-bps", str(clip["kbps"] * 1000)]
    output = subprocess.run(in_server_ns(argv), capture_output=True, text=True, check=False).stdout
    match = re.search(r"viewers_per_core=(\d+)", output)
    pps = re.search(r"packets_per_cpu_s=(\d+)", output)
    return {"viewers": n_viewers, "packet_size": packet_size,
            "viewers_per_core": int(match.group(1)) if match else None,
            "packets_per_cpu_s": int(pps.group(1)) if pps else None, "output": output.strip()}


# ---- the run (inside the load namespace) ----------------------------------------------------

def server_run(args, name, start, generator_argv, server_cpu, load_cpu, temp_dir):
    processes = Processes(temp_dir)
    bench = Bench(args, processes, temp_dir, server_cpu, load_cpu)
    try:
        server = start(args, processes, temp_dir, server_cpu)
        clip = generator_start(args, processes, f"source-gen-{name}", generator_argv, load_cpu, 590)
        result = bench.measure(server)
        result["clip"] = clip
        result["srtp_library"] = server.get("srtp_library")
        return result
    finally:
        processes.stop_all()


def inner_main(args):
    n_cpus = os.cpu_count() or 1
    server_cpu, load_cpu = (n_cpus - 1, 0) if n_cpus > 1 else (0, 0)
    temp_dir = tempfile.mkdtemp(prefix="cimshub-compare-")
    results = {"server_cpu": server_cpu, "load_cpu": load_cpu, "servers": {}}
    started = time.monotonic()

    if "cimshub" in args.servers:
        results["servers"]["cimshub"] = server_run(
            args, "cimshub", hub_start, ["--rtsp-address", LOAD_ADDRESS, "--rtsp-port", str(RTSP_PORT)],
            server_cpu, load_cpu, temp_dir)
    if "janus" in args.servers:
        results["servers"]["janus"] = server_run(
            args, "janus", janus_start, ["--rtp-host", SERVER_ADDRESS, "--rtp-port", str(JANUS_SOURCE_PORT)],
            server_cpu, load_cpu, temp_dir)

    passed = [s["viewers"] for r in results["servers"].values() for s in r["steps"] if s["passed"]]
    clip = next(iter(results["servers"].values()))["clip"]
    if args.floor_viewers or passed:
        results["floor"] = floor_run(args, clip, args.floor_viewers or max(passed), server_cpu)
    results["seconds"] = time.monotonic() - started
    with open(args.result_path, "w", encoding="utf-8") as out:
        json.dump(results, out, indent=1)
    if not args.keep_temp:
        shutil.rmtree(temp_dir, ignore_errors=True)
    else:
        print(f"note: kept {temp_dir}")


# ---- the table (outer process) ----------------------------------------------------------------

def best_step(result):
    passed = [s for s in result["steps"] if s["passed"]]
    return passed[-1] if passed else None


def half_load_step(result, step):
    """Returns the largest passing step with at most half of @step's viewers."""
    half = [s for s in result["steps"] if s["passed"] and s["viewers"] * 2 <= step["viewers"]]
    return half[-1] if half else None


def server_figures(result):
    """The headline numbers of one server, from its largest passing step;
    latency also at half that load."""
    step = best_step(result)
    if step is None:
        return None
    half = half_load_step(result, step) or {}
    per_viewer_cores = (step["server_cores"] - result["idle_cores"]) / step["viewers"]
    figures = {
        "viewers": step["viewers"],
        "viewers_per_core": step["viewers"] / step["server_cores"] if step["server_cores"] > 0 else None,
        "cpu_per_1000_pct": per_viewer_cores * 1000 * 100,
        "rss_per_viewer_kib": step["rss_per_viewer_kib"],
        "rss_per_source_kib": (result["rss_sources_kib"] - result["rss_idle_kib"]) / max(1, len_sources(result)),
        "half_viewers": half.get("viewers"),
    }
    for key in ("first_frame_p50_ms", "first_frame_p99_ms", "probe_first_frame_p50_ms",
                "probe_first_frame_max_ms"):
        figures[key] = step.get(key)
    for name in HISTOGRAMS + ("relay_delay",):
        for label in ("p50", "p99"):
            figures[f"{name}_{label}_ms"] = step.get(f"{name}_{label}_ms")
            figures[f"half_{name}_{label}_ms"] = half.get(f"{name}_{label}_ms")
    return figures


def len_sources(result):
    return result.get("n_sources", 1)


def fmt(value, digits=0, suffix=""):
    if value is None:
        return "–"
    if value == float("inf"):
        return "> 1,000"  # the relay-delay histogram's last bucket
    return f"{value:,.{digits}f}{suffix}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "–"
    return f"{a / b:.2f}"


def table_lines(results, revocation):
    hub = server_figures(results["servers"]["cimshub"]) if "cimshub" in results["servers"] else None
    janus = server_figures(results["servers"]["janus"]) if "janus" in results["servers"] else None
    floor = results.get("floor", {}).get("viewers_per_core")
    get = (lambda f, key: f.get(key) if f else None)
    rows = [
        ("viewers per core at <0.1% loss", "viewers_per_core", 0, True),
        ("largest step passed (viewers)", "viewers", 0, False),
        ("CPU per 1,000 viewers (% of a core)", "cpu_per_1000_pct", 1, False),
        ("first frame p50 (ms)", "first_frame_p50_ms", 0, False),
        ("first frame p99 (ms)", "first_frame_p99_ms", 0, False),
        (f"first frame, {PROBE_VIEWERS} viewers joining the loaded server one by one, p50 (ms)",
         "probe_first_frame_p50_ms", 0, False),
        (f"first frame, {PROBE_VIEWERS} viewers joining the loaded server one by one, slowest (ms)",
         "probe_first_frame_max_ms", 0, False),
        ("source-to-viewer latency p50 (ms)", "latency_p50_ms", 1, False),
        ("source-to-viewer latency p99 (ms)", "latency_p99_ms", 1, False),
        ("source-to-viewer frame latency p50 (ms)", "frame_latency_p50_ms", 1, False),
        ("source-to-viewer frame latency p99 (ms)", "frame_latency_p99_ms", 1, False),
        ("source-to-socket frame latency p50 (ms)", "socket_frame_latency_p50_ms", 1, False),
        ("source-to-socket frame latency p99 (ms)", "socket_frame_latency_p99_ms", 1, False),
        ("hub-added latency p50, hub's clock, bucket bound (ms)", "relay_delay_p50_ms", 2, False),
        ("hub-added latency p99, hub's clock, bucket bound (ms)", "relay_delay_p99_ms", 2, False),
        ("half load: viewers", "half_viewers", 0, False),
        ("half load: hub-added latency p50, bucket bound (ms)", "half_relay_delay_p50_ms", 2, False),
        ("half load: hub-added latency p99, bucket bound (ms)", "half_relay_delay_p99_ms", 2, False),
        ("half load: source-to-socket latency p50 (ms)", "half_socket_latency_p50_ms", 1, False),
        ("half load: source-to-socket latency p99 (ms)", "half_socket_latency_p99_ms", 1, False),
        ("half load: source-to-socket frame latency p50 (ms)", "half_socket_frame_latency_p50_ms", 1, False),
        ("half load: source-to-socket frame latency p99 (ms)", "half_socket_frame_latency_p99_ms", 1, False),
        ("memory per viewer (KiB RSS)", "rss_per_viewer_kib", 0, False),
        ("memory per source (KiB RSS)", "rss_per_source_kib", 0, False),
    ]
    lines = ["| measure | cimshub | Janus | cimshub/Janus | floor | cimshub/floor |",
             "|---|---|---|---|---|---|"]
    for label, key, digits, with_floor in rows:
        a, b = get(hub, key), get(janus, key)
        if "socket" in key and a is None and b is None:
            continue  # a run without --socket-timestamps
        lines.append(f"| {label} | {fmt(a, digits)} | {fmt(b, digits)} | {ratio(a, b)} | "
                     f"{fmt(floor, 0) if with_floor else ''} | {ratio(a, floor) if with_floor else ''} |")
    if revocation:
        for label, p50, p99 in revocation:
            lines.append(f"| revocation to stop, {label}, p50 / p99 (ms) | {p50} / {p99} | – | | | |")
    return lines


def step_lines(results):
    lines = ["| server | viewers | loss % | with keyframe | server cores | viewer-side cores | RSS MiB "
             "| first frame p50/p99 ms | joining one by one p50/slowest ms | latency p50/p99 ms "
             "| frame latency p50/p99 ms | to socket p50/p99 ms | frame to socket p50/p99 ms "
             "| hub-added p50/p99 ms | latency samples | SRTP |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    pair = (lambda s, name, digits=1:
            f"{fmt(s.get(name + '_p50_ms'), digits)}/{fmt(s.get(name + '_p99_ms'), digits)}")
    for name, result in results["servers"].items():
        for s in result["steps"]:
            lines.append(
                f"| {name} | {s['viewers']} | {s['loss'] * 100:.3f} | {s['with_keyframe']} | "
                f"{s['server_cores']:.2f} | {s['viewer_cores']:.2f} | {s['rss_kib'] / 1024:.0f} | "
                f"{fmt(s['first_frame_p50_ms'])}/{fmt(s['first_frame_p99_ms'])} | "
                f"{fmt(s.get('probe_first_frame_p50_ms'))}/{fmt(s.get('probe_first_frame_max_ms'))} "
                f"({s.get('probes_with_keyframe', 0)} of {s.get('probes', 0)}) | "
                f"{pair(s, 'latency')} | {pair(s, 'frame_latency')} | {pair(s, 'socket_latency')} | "
                f"{pair(s, 'socket_frame_latency')} | {pair(s, 'relay_delay', 2)} | {s['latency_samples']} | "
                f"{', '.join(s['srtp_profiles'])} |")
    return lines


def revocation_run(args):
    """Runs bench/revocation.py when it exists; returns [(label, p50, p99)]."""
    script = os.path.join(BENCH_DIR, "revocation.py")
    if args.skip_revocation or not os.path.exists(script):
        return []
    argv = ["/usr/bin/python3", script, "--build", args.build, "--sessions", str(args.revocation_sessions),
            "--batch", str(min(25, args.revocation_sessions))]
    result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=300)
    rows = []
    for line in result.stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[1].isdigit() and cells[3]:
            rows.append((cells[0], cells[3], cells[4]))
    if not rows:
        print(f"note: bench/revocation.py gave no table (exit {result.returncode}): "
              f"{result.stdout[-500:]}{result.stderr[-500:]}")
    return rows


def machine_line():
    model = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} CPUs, `{model}`, Linux {platform.release()} {platform.machine()}"


def commit_line():
    head = subprocess.run(["git", "-C", TOP_DIR, "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=False).stdout.strip()
    dirty = subprocess.run(["git", "-C", TOP_DIR, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, check=False).stdout.strip()
    return head + (" (with uncommitted changes)" if dirty else "")


def report(args, results, revocation, command):
    for result in results["servers"].values():
        result["n_sources"] = args.sources
    clip = next(iter(results["servers"].values()))["clip"]
    lines = [f"### Run of {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", "",
             "```", command, "```", "",
             f"- Commit: {commit_line()}.",
             f"- Machine: {machine_line()}. Server on CPU {results['server_cpu']}; "
             f"source generator and viewers on CPU {results['load_cpu']}.",
             f"- Sources: {args.sources} × {clip['kbps']} kbit/s H.264 1080p25 ({clip['packets']} packets "
             f"in {clip['frames']} frames), viewers stepped through {args.viewers}, {args.duration} s each; "
             f"SRTP {SRTP_SUITES[args.srtp][0]} offered to both servers.",
             f"- Janus libsrtp: {results['servers'].get('janus', {}).get('srtp_library') or 'not run'}.",
             f"- Floor: {results.get('floor', {}).get('output', 'not run')}", "",
             *fan_out_lines(args, results, clip), "",
             *table_lines(results, revocation), "", *step_lines(results), ""]
    return lines


def fan_out_lines(args, results, clip):
    """Estimates how long the floor, at its measured packets per CPU-second,
    takes to send one frame to every viewer of a source at cimshub's
    half-load step. One core serves viewer after viewer, so the last viewer
    of a frame waits that long even with no other cost."""
    floor_pps = results.get("floor", {}).get("packets_per_cpu_s")
    hub = results["servers"].get("cimshub")
    step = best_step(hub) if hub else None
    half = half_load_step(hub, step) if step else None
    if not floor_pps or half is None:
        return []
    per_source = half["viewers"] / args.sources
    mean_ms = per_source * clip["packets"] / clip["frames"] / floor_pps * 1000
    line = (f"- Fan-out at the floor's speed ({floor_pps:,} packets per CPU-second): sending one frame to all "
            f"{per_source:.0f} viewers of a source at the half-load step takes {mean_ms:.1f} ms for a frame of "
            f"the clip's mean size ({clip['packets'] / clip['frames']:.1f} packets)")
    if clip.get("largest_frame_packets"):
        largest_ms = per_source * clip["largest_frame_packets"] / floor_pps * 1000
        line += f" and {largest_ms:.1f} ms for its largest frame ({clip['largest_frame_packets']} packets)"
    return [line + "."]


def outer_main(args, argv):
    if os.geteuid() != 0:
        print("compare.py needs root for its network namespaces", file=sys.stderr)
        return 77
    for tool in ("ip", "nsenter", "taskset", "curl"):
        if shutil.which(tool) is None:
            print(f"compare.py needs {tool}", file=sys.stderr)
            return 77
    if "janus" in args.servers and not os.path.exists(args.janus):
        print("installing Debian's janus package for the baseline", flush=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "janus"], check=True,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))

    result_path = tempfile.mktemp(prefix="cimshub-compare-", suffix=".json")

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        namespaces_create()
        inner = subprocess.run(["ip", "netns", "exec", LOAD_NS, "/usr/bin/python3", os.path.abspath(__file__),
                                "--inner", "--result-path", result_path, *argv], check=False)
    finally:
        namespaces_remove()
    if inner.returncode != 0 or not os.path.exists(result_path):
        print(f"compare.py: the run failed (exit {inner.returncode})", file=sys.stderr)
        return 1

    with open(result_path, encoding="utf-8") as result_file:
        results = json.load(result_file)
    os.unlink(result_path)
    revocation = revocation_run(args)
    lines = report(args, results, revocation, "bench/compare.py " + " ".join(argv))
    print("\n".join(lines))
    if args.results_file:
        results_add(args.results_file, lines)
    return 0 if all(best_step(r) for r in results["servers"].values()) else 1


def results_add(path, lines):
    """Inserts the run at the end of the comparison's section of the results
    file, or at the end of the file when it has no such section."""
    text = open(path, encoding="utf-8").read() if os.path.exists(path) else ""
    run = "\n".join(lines).rstrip("\n") + "\n"
    section = text.find(RESULTS_SECTION)
    next_section = text.find("\n## ", section + 1) if section >= 0 else -1
    if next_section < 0:
        text = text.rstrip("\n") + "\n\n" + run
    else:
        text = text[:next_section].rstrip("\n") + "\n\n" + run + text[next_section:]
    with open(path, "w", encoding="utf-8") as results_md:
        results_md.write(text)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    build = os.path.join(TOP_DIR, "build-bench")
    parser.add_argument("--sources", type=int, default=2, help="camera streams (default 2)")
    parser.add_argument("--viewers", default="50,100,200,400",
                        help="comma-separated viewer counts to step through (default 50,100,200,400)")
    parser.add_argument("--duration", type=int, default=20, help="seconds each step watches (default 20)")
    parser.add_argument("--servers", default="cimshub,janus", help="which servers to run (default cimshub,janus)")
    parser.add_argument("--fps", type=int, default=25, help="frame rate of the clip (default 25)")
    parser.add_argument("--keyint", type=int, default=50,
                        help="frames from one keyframe to the next in the clip (default 50)")
    parser.add_argument("--kbps", type=int, default=2000,
                        help="bitrate the clip is encoded at, in kbit/s (default 2000)")
    parser.add_argument("--added-delay-ms", type=int, default=0,
                        help="source-gen --added-delay-ms, to check the latency measurement (default 0)")
    parser.add_argument("--janus-event-loops", type=int, default=1,
                        help="Janus event_loops: handles share this many loop threads (default 1)")
    parser.add_argument("--floor-viewers", type=int, default=0,
                        help="viewers for the floor run (default: the largest step passed)")
    parser.add_argument("--build", default=build, help="meson build directory (default build-bench)")
    parser.add_argument("--libsrtp-openssl", default=os.path.join(TOP_DIR, "build-libsrtp-openssl"),
                        help="prefix of libsrtp2 built on OpenSSL, given to Janus by LD_LIBRARY_PATH")
    parser.add_argument("--janus", default="/usr/bin/janus", help="Janus binary (default /usr/bin/janus)")
    parser.add_argument("--results-file", default=os.path.join(BENCH_DIR, "RESULTS.md"),
                        help="Markdown file the table is appended to; empty for none")
    parser.add_argument("--skip-revocation", action="store_true", help="do not run bench/revocation.py")
    parser.add_argument("--socket-timestamps", action="store_true",
                        help="also measure latency to the kernel's receive time in the viewers' sockets; the "
                             "kernel then timestamps every packet on the server's core (about 6%% more CPU "
                             "per viewer for cimshub here)")
    parser.add_argument("--revocation-sessions", type=int, default=50,
                        help="sessions for bench/revocation.py (default 50)")
    parser.add_argument("--srtp", choices=sorted(SRTP_SUITES), default="cm",
                        help="SRTP suite the viewers offer and the floor uses: cm (AES_CM_128_HMAC_SHA1_80, what "
                             "Chromium negotiates; default) or gcm (AEAD_AES_128_GCM)")
    parser.add_argument("--keep-temp", action="store_true", help="keep the logs and configurations")
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--result-path", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    args.viewer_steps = [int(v) for v in args.viewers.split(",") if v.strip()]
    args.servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    if not args.viewer_steps or min(args.viewer_steps) < 1 or len(args.viewer_steps) > 8:
        parser.error("--viewers takes 1 to 8 positive counts")
    if not 1 <= args.sources <= 64 or not 3 <= args.duration <= 120:
        parser.error("--sources must be 1 to 64 and --duration 3 to 120")
    if set(args.servers) - {"cimshub", "janus"} or not args.servers:
        parser.error("--servers lists cimshub and/or janus")
    args.cimshub = os.path.join(args.build, "hub", "cimshub")
    args.cimshubctl = os.path.join(args.build, "hub", "cimshubctl")
    args.whep_viewer = os.path.join(args.build, "bench", "cimshub-whep-viewer")
    args.source_gen = os.path.join(args.build, "bench", "cimshub-source-gen")
    args.floor = os.path.join(args.build, "bench", "cimshub-floor-openssl")
    if not os.path.exists(args.floor):
        args.floor = os.path.join(args.build, "bench", "cimshub-floor")
    args.clip = os.path.join(args.build, "bench", f"clip-1080p{args.fps}-{args.kbps}k-kf{args.keyint}.h264")
    return args


def main():
    argv = sys.argv[1:]
    args = parse_args(argv)
    if args.inner:
        inner_main(args)
        return 0
    # Bound the whole comparison: every step is bounded, this catches the rest.
    signal.alarm(900)
    return outer_main(args, argv)


if __name__ == "__main__":
    sys.exit(main())
