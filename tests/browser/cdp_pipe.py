# SPDX-License-Identifier: Apache-2.0
# Drives one headless Chromium page over the DevTools protocol on a pipe
# (--remote-debugging-pipe), so that a test can read a page it does not
# control, such as the hub's own viewer page. No WebSocket library needed:
# commands go in on the browser's fd 3 and replies come out on its fd 4,
# each message a JSON text ended by a NUL byte.
"""A DevTools-protocol client for one Chromium page, over a pipe."""

import fcntl
import json
import os
import select
import subprocess
import time


# The lowest descriptor number that the pipe ends take in this process.
FIRST_SPARE_FD = 10


class CdpError(RuntimeError):
    """The browser returned an error for a command, or sent no reply in time."""


class CdpPage:
    """Chromium started on @url with the DevTools protocol on a pipe, and
    attached to its first page."""

    def __init__(self, argv, url, stdout_path, stderr_path, env=None, attach_timeout_s=20.0):
        to_browser_read, self._to_browser = os.pipe()
        self._from_browser, from_browser_write = os.pipe()
        # Above 4, so that placing them at 3 and 4 in the child overwrites
        # neither of them and always makes a copy without close-on-exec.
        child_read = fcntl.fcntl(to_browser_read, fcntl.F_DUPFD_CLOEXEC, FIRST_SPARE_FD)
        child_write = fcntl.fcntl(from_browser_write, fcntl.F_DUPFD_CLOEXEC, FIRST_SPARE_FD)
        os.close(to_browser_read)
        os.close(from_browser_write)

        def child_fds():
            os.dup2(child_read, 3)
            os.dup2(child_write, 4)

        with open(stdout_path, "ab") as stdout, open(stderr_path, "ab") as stderr:
            # close_fds would close fds 3 and 4 after child_fds() made them.
            # Every other descriptor of this process is close-on-exec.
            self.proc = subprocess.Popen([*argv, "--remote-debugging-pipe", url], stdin=subprocess.DEVNULL,
                                         stdout=stdout, stderr=stderr, env=env, start_new_session=True,
                                         close_fds=False, preexec_fn=child_fds)
        os.close(child_read)
        os.close(child_write)
        self._buffer = b""
        self._next_id = 0
        self._session_id = self._attach(attach_timeout_s)

    def _send(self, method, params, session_id):
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session_id:
            message["sessionId"] = session_id
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        return self._next_id

    def _read_message(self, deadline):
        """The next message from the browser, or None at @deadline."""
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                return None
            chunk = os.read(self._from_browser, 65536)
            if not chunk:
                raise CdpError("the browser closed its DevTools pipe")
            self._buffer += chunk
        text, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(text)

    def call(self, method, params=None, session_id=None, timeout_s=5.0):
        """Sends one command and returns its result. Events are skipped."""
        request_id = self._send(method, params, session_id)
        deadline = time.monotonic() + timeout_s
        while True:
            message = self._read_message(deadline)
            if message is None:
                raise CdpError(f"no reply to {method} within {timeout_s} s")
            if message.get("id") != request_id:
                continue
            if "error" in message:
                raise CdpError(f"{method}: {message['error'].get('message')}")
            return message.get("result", {})

    def _attach(self, timeout_s):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            targets = self.call("Target.getTargets")["targetInfos"]
            pages = [t for t in targets if t.get("type") == "page"]
            if pages:
                return self.call("Target.attachToTarget", {"targetId": pages[0]["targetId"],
                                                           "flatten": True})["sessionId"]
            time.sleep(0.2)
        raise CdpError(f"no page target within {timeout_s} s")

    def evaluate(self, expression):
        """The value of a JavaScript expression in the page."""
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True},
                           session_id=self._session_id)
        if "exceptionDetails" in result:
            raise CdpError(f"{expression}: {result['exceptionDetails'].get('text')}")
        return result.get("result", {}).get("value")

    def close(self):
        """Ends the browser and its children."""
        try:
            os.killpg(self.proc.pid, 15)
            self.proc.wait(timeout=5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.proc.pid, 9)
            except ProcessLookupError:
                pass
            self.proc.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)
