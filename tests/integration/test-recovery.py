#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
# Crash recovery at hub start-up over a large audit log. The script starts
# cimshub on 127.0.0.1 with a configuration it writes, adds sessions with
# audit-fill (some left open, as a crash leaves them), kills the hub with
# SIGKILL and reads the log back from the hub's SQLite file. No camera is
# needed.
"""Run the crash-recovery tests and print one PASS/FAIL line each.

Exit status is 0 only when every test passes. The last line is
"N passed, M failed".
"""

import argparse
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "browser"))
import run_browser_test as harness  # noqa: E402

TIME_LIMIT_S = 120
SANITIZED = "ASAN_OPTIONS" in os.environ
# Sessions audit-fill adds before the first crash, two records each, and
# how many of them it leaves open.
FILL_SESSIONS = 10000 if SANITIZED else 100000
FILL_OPEN = 5
# Sessions added before the second crash, after the first recovery.
LATER_SESSIONS = 10
LATER_OPEN = 2
# Bound on how much more the hub's peak resident set size (VmHWM) grows at a
# start over the large log than at a start over an empty one, in MiB.
# Measured by this test on a 2-core VM over 199,995 records: 120 MiB when
# recovery loaded every session record, 2 MiB when it streams them.
START_PEAK_RSS_GROWTH_LIMIT_MIB = 30
RECOVERY_LINE = re.compile(r"crash recovery read (\d+) session records after sequence (\d+): "
                           r"(\d+) sessions were open, (\d+) of them got a hub-crash-recovered stop")


class Run:
    """One test run: the hub's configuration and state, and the results."""

    def __init__(self, args):
        self.args = args
        self.temp_dir = tempfile.mkdtemp(prefix="cimshub-recovery-")
        # audit-fill commits each record with a sync, which costs nothing on
        # the memory file system.
        self.state_dir = tempfile.mkdtemp(prefix="cimshub-recovery-state-",
                                          dir="/dev/shm" if os.access("/dev/shm", os.W_OK) else None)
        self.db_path = os.path.join(self.state_dir, "cimshub.db")
        self.checkpoint_path = os.path.join(self.state_dir, "recovery-checkpoint")
        self.processes = harness.Processes(self.temp_dir)
        self.config_path = os.path.join(self.temp_dir, "hub.conf")
        self.base_url = None
        self.n_starts = 0
        self.results = []

    def record(self, name, passed, detail=""):
        self.results.append((name, passed))
        print(f"{'PASS' if passed else 'FAIL'}: {name}{': ' + detail if detail else ''}", flush=True)

    def check(self, name, condition, detail=""):
        self.record(name, bool(condition), detail)
        return bool(condition)

    def setup(self):
        _, public_key = harness.make_key_pair(self.temp_dir, "boston")
        http_port = harness.free_tcp_port()
        self.base_url = f"http://127.0.0.1:{http_port}"
        harness.write_hub_config(self.config_path, {
            "jurisdictions": [{"id": "boston", "name": "Boston", "issuer": "https://idp.boston.test",
                               "public_key": public_key}],
            "http_port": http_port,
            "ice_ports": harness.free_udp_range(10),
            "state_dir": self.state_dir,
            "camera_url": "rtsp://127.0.0.1:9/bos-0001",
        })

    # ---- the hub ------------------------------------------------------------

    def start_hub(self, before_healthz=None):
        """Starts the hub under a name of its own, so each start has its own
        log, and calls before_healthz (if given) before waiting for it.
        Returns (process, seconds to the first 200 on /healthz)."""
        self.n_starts += 1
        name = f"cimshub-{self.n_starts}"
        started = time.monotonic()
        hub = self.processes.start(name, [self.args.cimshub, "--config", self.config_path])
        if before_healthz is not None:
            before_healthz()
        if not harness.wait_for_healthz(hub, self.base_url, 30):
            raise RuntimeError(f"start {self.n_starts}: the hub did not answer 200 on {self.base_url}/healthz")
        return hub, time.monotonic() - started

    def wait_for_log(self, needle, timeout_s):
        deadline = time.monotonic() + timeout_s
        while needle not in self.hub_log():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True

    def crash_hub(self):
        hub = self.processes.children.pop(f"cimshub-{self.n_starts}")
        hub.send_signal(signal.SIGKILL)
        hub.wait(timeout=10)

    def stop_hub(self):
        """Stops the hub with SIGTERM. Returns its exit status, or None when
        it did not exit within 20 s (it is then killed)."""
        hub = self.processes.children[f"cimshub-{self.n_starts}"]
        hub.send_signal(signal.SIGTERM)
        try:
            return hub.wait(timeout=20)
        except subprocess.TimeoutExpired:
            return None
        finally:
            self.processes.stop(f"cimshub-{self.n_starts}")

    def hub_log(self):
        """The text the latest hub start has logged so far."""
        text = ""
        for path in self.processes.log_paths(f"cimshub-{self.n_starts}"):
            if os.path.exists(path):
                with open(path, encoding="utf-8", errors="replace") as log:
                    text += log.read()
        return text

    def recovery_walk(self):
        """(records read, checkpoint) from the latest start's log, or None."""
        match = RECOVERY_LINE.search(self.hub_log())
        return (int(match.group(1)), int(match.group(2))) if match else None

    # ---- the log ------------------------------------------------------------

    def fill(self, n_sessions, n_open):
        year = time.gmtime().tm_year
        env = dict(os.environ)
        if SANITIZED:
            # The filler is not under test: the fast unwinder saves it minutes.
            env["ASAN_OPTIONS"] = env["ASAN_OPTIONS"].replace("fast_unwind_on_malloc=0", "fast_unwind_on_malloc=1")
        fill = subprocess.run([self.args.audit_fill, self.db_path, str(year), str(n_sessions), str(n_open)],
                              capture_output=True, text=True, timeout=60, check=False, env=env)
        if fill.returncode != 0:
            raise RuntimeError(f"audit-fill failed: {fill.stderr.strip()[-300:]}")

    def query(self, sql):
        with sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True) as db:
            return db.execute(sql).fetchall()

    def open_sessions(self):
        """Ids of the sessions with more starts than stops in the log."""
        rows = self.query("SELECT session_id, SUM(event = 'session-start') - SUM(event = 'session-stop') "
                          "FROM audit_log WHERE event IN ('session-start', 'session-stop') "
                          "GROUP BY session_id")
        return {session for session, balance in rows if balance > 0}

    def recovered_counts(self):
        """Session id -> number of hub-crash-recovered stops."""
        return dict(self.query("SELECT session_id, COUNT(*) FROM audit_log WHERE event = 'session-stop' "
                               "AND reason = 'hub-crash-recovered' GROUP BY session_id"))

    def check_recovered(self, name, expected_open, counts_before):
        """Checks that each session in expected_open got one recovery stop
        at this start, and no other session got one."""
        counts = self.recovered_counts()
        new = {session: n - counts_before.get(session, 0) for session, n in counts.items()
               if n != counts_before.get(session, 0)}
        missing = sorted(expected_open - set(new))
        repeated = sorted(session for session, n in new.items() if n != 1)
        unexpected = sorted(set(new) - expected_open)
        self.check(name, expected_open and not missing and not repeated and not unexpected
                   and not self.open_sessions(),
                   f"{len(expected_open)} open, {len(new)} recovered; missing {missing[:3]}, "
                   f"more than once {repeated[:3]}, not open {unexpected[:3]}")

    def last_sequence(self, event=None):
        where = f" WHERE event = '{event}'" if event else ""
        return self.query(f"SELECT MAX(sequence) FROM audit_log{where}")[0][0]

    def checkpoint_sequence(self):
        """The sequence the checkpoint file names, or None without a file."""
        try:
            with open(self.checkpoint_path, encoding="ascii") as checkpoint:
                return int(checkpoint.read().split()[0])
        except FileNotFoundError:
            return None

    # ---- tests --------------------------------------------------------------

    def test_crash_recovery(self):
        """A hub killed with sessions open in a large log: the next start
        records one hub-crash-recovered stop for each open session and none
        for the closed ones, with the hub's peak memory nearly flat."""
        hub, _ = self.start_hub()
        empty_log_peak_mib = harness.peak_rss_mib(hub.pid)
        self.check("first-start-without-checkpoint", "no recovery checkpoint" in self.hub_log(),
                   "the first start over an empty state_dir says it has no checkpoint")

        self.fill(FILL_SESSIONS, FILL_OPEN)
        self.crash_hub()
        expected_open = self.open_sessions()
        n_session_records = 2 * FILL_SESSIONS - FILL_OPEN

        hub, start_s = self.start_hub()
        peak_growth_mib = harness.peak_rss_mib(hub.pid) - empty_log_peak_mib
        walk = self.recovery_walk()
        print(f"note: start over {n_session_records} session records took {start_s:.2f} s, "
              f"peak RSS {peak_growth_mib:.1f} MiB above a start over an empty log", flush=True)

        self.check_recovered("crash-recovers-open-sessions", expected_open, {})
        self.check("crash-recovery-full-scan", walk is not None and walk[0] == n_session_records,
                   f"walk {walk}, expected {n_session_records} records after sequence 0")
        # AddressSanitizer keeps freed memory in quarantine, so there the
        # peak does not show whether recovery streams the log.
        if SANITIZED:
            print(f"note: start peak RSS growth {peak_growth_mib:.1f} MiB, not checked under the sanitizers")
        else:
            self.check("crash-recovery-memory-flat", peak_growth_mib < START_PEAK_RSS_GROWTH_LIMIT_MIB,
                       f"peak RSS {peak_growth_mib:.1f} MiB above an empty log's start over "
                       f"{n_session_records} session records (limit {START_PEAK_RSS_GROWTH_LIMIT_MIB} MiB)")

    def test_second_crash_reads_new_records(self):
        """After a recovery the checkpoint is past its stops, so a crash
        later reads only the session records appended since."""
        checkpoint = self.checkpoint_sequence()
        counts_before = self.recovered_counts()
        self.fill(LATER_SESSIONS, LATER_OPEN)
        self.crash_hub()
        expected_open = self.open_sessions()

        self.start_hub()
        walk = self.recovery_walk()
        n_new = 2 * LATER_SESSIONS - LATER_OPEN
        self.check_recovered("second-crash-recovers-new-sessions", expected_open, counts_before)
        self.check("second-crash-reads-new-records", walk == (n_new, checkpoint),
                   f"walk {walk}, expected {n_new} records after sequence {checkpoint}")

    def test_clean_stop_reads_nothing(self):
        """A clean stop moves the checkpoint to its hub-stopped record, so
        the next start reads no session record."""
        status = self.stop_hub()
        stop_log = self.hub_log()
        stopped = self.last_sequence("hub-stopped")
        checkpoint = self.checkpoint_sequence()

        self.start_hub()
        walk = self.recovery_walk()
        # Under the sanitizers a leak found at exit makes the status nonzero.
        self.check("clean-stop-exit-status", status == 0,
                   f"exit status {status}" + (f", log ends: {stop_log[-2000:]}" if status != 0 else ""))
        self.check("clean-stop-checkpoint", checkpoint == stopped,
                   f"checkpoint {checkpoint}, hub-stopped record {stopped}")
        self.check("clean-stop-start-reads-nothing", walk == (0, stopped),
                   f"walk {walk}, expected 0 records after sequence {stopped}")
        self.crash_hub()

    def test_checkpoint_fallbacks(self):
        """A checkpoint file that is invalid, missing after a clean stop,
        names a record the log does not have, or has another record's hash
        makes recovery read the whole log, logs one line saying so, and
        recovers nothing twice. Each may mean that the file or the database
        was tampered with: the log gets an audit-log-mismatch record naming
        the reason, and the old checkpoint file is kept."""
        last = self.last_sequence()
        other_hash = self.query("SELECT hash FROM audit_log WHERE sequence = 1")[0][0]
        n_session_records = self.query("SELECT COUNT(*) FROM audit_log "
                                       "WHERE event IN ('session-start', 'session-stop')")[0][0]
        cases = (
            ("invalid", "12x4 not-a-hash\n", "is invalid", "checkpoint-invalid"),
            ("missing", None, "is missing although a hub stopped cleanly", "checkpoint-missing"),
            ("ahead-of-log", f"{last + 1000} {other_hash}\n", "which the audit log does not contain",
             "log-ends-before-checkpoint"),
            ("other-hash", f"{last} {other_hash}\n", "but the audit log's record has hash",
             "log-differs-at-checkpoint"),
        )
        for name, text, expected, mismatch_reason in cases:
            mismatches_before = self.query("SELECT COUNT(*) FROM audit_log WHERE event = 'audit-log-mismatch'")[0][0]
            if text is None:
                os.remove(self.checkpoint_path)
            else:
                with open(self.checkpoint_path, "w", encoding="ascii") as checkpoint:
                    checkpoint.write(text)
            counts_before = self.recovered_counts()

            self.start_hub()
            log = self.hub_log()
            walk = self.recovery_walk()
            self.crash_hub()
            lines = [line for line in log.splitlines() if "reads the whole audit log" in line]
            recovered = self.recovered_counts() != counts_before
            self.check(f"checkpoint-{name}-full-scan",
                       len(lines) == 1 and expected in lines[0] and walk == (n_session_records, 0)
                       and not recovered,
                       f"walk {walk}, expected {n_session_records} records after sequence 0; "
                       f"lines {lines}; recovered again: {recovered}")
            n_session_records = self.query("SELECT COUNT(*) FROM audit_log "
                                           "WHERE event IN ('session-start', 'session-stop')")[0][0]
            self.check_mismatch_record(name, text, mismatch_reason, mismatches_before)

    def check_mismatch_record(self, name, text, reason, mismatches_before):
        """Checks that a checkpoint file @text (None: no file) that the log
        does not match left one audit-log-mismatch record with @reason that
        names what the file named and where it was kept."""
        rows = self.query("SELECT reason, details FROM audit_log WHERE event = 'audit-log-mismatch' "
                          "ORDER BY sequence")[mismatches_before:]
        details = json.loads(rows[0][1]) if len(rows) == 1 else {}
        kept_path = details.get("kept_checkpoint") or ""
        kept_text = open(kept_path, encoding="ascii").read() if os.path.isfile(kept_path) else None
        fields = text.split() if text is not None else []
        is_valid = len(fields) == 2 and fields[0].isdigit()
        self.check(f"checkpoint-{name}-mismatch-recorded",
                   len(rows) == 1 and rows[0][0] == reason
                   and details.get("checkpoint_sequence") == (int(fields[0]) if is_valid else None)
                   and details.get("checkpoint_hash") == (fields[1] if is_valid else None)
                   and kept_text == text,
                   f"records {rows}; kept file text {kept_text!r}")

    def test_unwritten_stop_keeps_checkpoint(self):
        """A start whose recovery stop cannot be written leaves the
        checkpoint before that session. Here another connection keeps the
        log's write lock past the store's busy timeout. The clean stop that
        follows, once the log is writable again, keeps the checkpoint too, so
        the next start recovers the session."""
        checkpoint = self.checkpoint_sequence()
        self.fill(3, 1)
        expected_open = self.open_sessions()
        counts_before = self.recovered_counts()

        blocker = sqlite3.connect(self.db_path, timeout=5, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")

        def unlock_after_failed_stop():
            # The hub's next records wait for the lock and are written.
            self.wait_for_log("cannot record its crash-recovery stop", 15)
            blocker.execute("ROLLBACK")

        try:
            self.start_hub(before_healthz=unlock_after_failed_stop)
        finally:
            blocker.close()
        failed_log = self.hub_log()
        deadline = time.monotonic() + 10
        while self.last_sequence("hub-started") < self.last_sequence("session-start") \
                and time.monotonic() < deadline:
            time.sleep(0.2)
        self.stop_hub()
        stop_log = self.hub_log()
        checkpoint_after_stop = self.checkpoint_sequence()

        self.start_hub()
        self.crash_hub()
        self.check("unwritten-stop-fails", "cannot record its crash-recovery stop" in failed_log,
                   "the recovery stop failed while the log was locked")
        self.check("unwritten-stop-keeps-checkpoint",
                   checkpoint_after_stop == checkpoint
                   and "the start-up recovery did not write every stop" in stop_log,
                   f"checkpoint {checkpoint_after_stop} after the clean stop, {checkpoint} before")
        self.check_recovered("unwritten-stop-recovered-later", expected_open, counts_before)

    def test_second_hub_refused(self):
        """A second hub started on the state_dir of a running one stops at
        once with an error naming the first one, and writes nothing. Without
        the lock, it would take the running hub's live sessions for a crashed
        run's and record false stops for them."""
        first, _ = self.start_hub()
        # Live sessions of the running hub, as far as the log shows.
        self.fill(2, 2)
        live = self.open_sessions()
        counts_before = self.recovered_counts()
        last_before = self.last_sequence()

        second = subprocess.run([self.args.cimshub, "--config", self.config_path], capture_output=True,
                                text=True, timeout=30, check=False)
        output = second.stdout + second.stderr
        expected = f"Another cimshub (process {first.pid}) is using state_dir {self.state_dir}"
        self.check("second-hub-refused", second.returncode != 0 and expected in output,
                   f"exit {second.returncode}; output ends {output.strip()[-300:]!r}")
        self.check("second-hub-writes-nothing",
                   live and self.recovered_counts() == counts_before and self.last_sequence() == last_before
                   and self.open_sessions() == live,
                   f"{len(live)} live sessions; last sequence {self.last_sequence()}, {last_before} before")
        self.check_second_hub_new_state_dir()
        self.crash_hub()

    def check_second_hub_new_state_dir(self):
        """A second hub given a new state_dir but the running hub's port
        stops on the port before it creates that folder: a mistyped path
        must not leave an empty audit log behind."""
        new_state_dir = os.path.join(self.temp_dir, "new-state")
        config_path = os.path.join(self.temp_dir, "new-state.conf")
        with open(self.config_path, encoding="utf-8") as config:
            text = config.read()
        with open(config_path, "w", encoding="utf-8") as config:
            config.write(text.replace(self.state_dir, new_state_dir))

        second = subprocess.run([self.args.cimshub, "--config", config_path], capture_output=True,
                                text=True, timeout=30, check=False)
        output = second.stdout + second.stderr
        self.check("second-hub-new-state-dir-untouched",
                   second.returncode != 0 and "Cannot listen on 127.0.0.1:" in output
                   and not os.path.exists(new_state_dir),
                   f"exit {second.returncode}; {new_state_dir} exists: {os.path.exists(new_state_dir)}; "
                   f"output ends {output.strip()[-200:]!r}")

    def test_lock_symlink_refused(self):
        """A lock file replaced by a symbolic link, as another local user
        could plant in a shared folder, stops the hub before it writes into
        the link's target."""
        lock_path = os.path.join(self.state_dir, "cimshub.lock")
        victim_path = os.path.join(self.temp_dir, "victim")
        with open(victim_path, "w", encoding="utf-8") as victim:
            victim.write("precious\n")
        if os.path.lexists(lock_path):
            os.remove(lock_path)
        os.symlink(victim_path, lock_path)

        hub = subprocess.run([self.args.cimshub, "--config", self.config_path], capture_output=True,
                             text=True, timeout=30, check=False)
        output = hub.stdout + hub.stderr
        with open(victim_path, encoding="utf-8") as victim:
            victim_text = victim.read()
        os.remove(lock_path)
        self.check("lock-symlink-refused",
                   hub.returncode != 0 and "is a symbolic link" in output and victim_text == "precious\n",
                   f"exit {hub.returncode}; target now {victim_text!r}; output ends {output.strip()[-200:]!r}")

    def print_logs(self):
        print(f"----- last hub start's log -----\n{self.hub_log()[-4000:]}")

    def cleanup(self):
        self.processes.stop_all()
        shutil.rmtree(self.temp_dir, ignore_errors=True)
        shutil.rmtree(self.state_dir, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cimshub", required=True, help="path of the cimshub binary")
    parser.add_argument("--audit-fill", required=True, help="path of the audit-fill test program")
    args = parser.parse_args()

    run = Run(args)
    return harness.run_steps(run, (
        run.setup, run.test_crash_recovery, run.test_second_crash_reads_new_records,
        run.test_clean_stop_reads_nothing, run.test_checkpoint_fallbacks,
        run.test_unwritten_stop_keeps_checkpoint, run.test_second_hub_refused, run.test_lock_symlink_refused),
        TIME_LIMIT_S,
        errors=(sqlite3.Error, subprocess.SubprocessError))


if __name__ == "__main__":
    sys.exit(main())
