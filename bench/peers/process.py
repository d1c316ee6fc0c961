"""What the three servers share: a child process with its own ports, data directory, log
and pid, started and stopped by PID (SIGTERM, then SIGKILL after a bound), and the two
figures read from /proc about it: resident memory and CPU time."""

import os
import random
import signal
import socket
import subprocess
import time


def free_port(host="127.0.0.1"):
    """A TCP port free on ``host`` now, below the ephemeral range: the load generator's tens
    of thousands of connections (and their TIME_WAITs) use that range, and a server port
    picked from it may be taken by one of them before the server binds it (Erlang's
    distribution listener does not reuse addresses)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    for _ in range(200):
        port = random.randrange(max(1024, low - 12000), low)
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port below {low} on {host}")


def rss_kb(pid):
    """Resident set size of a process, in kB (VmRSS from /proc)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid):
    """utime + stime of a process, in seconds."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid):
    """PIDs of the direct children of ``pid``."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def descendant_named(pid, name, timeout=20.0):
    """The first descendant of ``pid`` whose command name is ``name`` (waited for)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        todo = [pid]
        while todo:
            p = todo.pop()
            try:
                with open(f"/proc/{p}/comm", encoding="utf-8") as f:
                    if f.read().strip() == name and p != pid:
                        return p
            except OSError:
                continue
            todo.extend(children(p))
        time.sleep(0.1)
    raise RuntimeError(f"no {name} process under pid {pid} after {timeout} s")


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is not running any more.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_gone(pid, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return not alive(pid)


class ServerProcess:
    """A server under test. Subclasses set ``name`` and implement ``setup`` (config and
    accounts, once), ``command`` (argv of the foreground server) and may override
    ``measured_pid`` (the process whose memory and CPU count) and ``shutdown``."""

    name = "?"
    start_timeout = 30.0

    def __init__(self, work, host="127.0.0.1"):
        self.work = work
        self.host = host
        self.port = free_port(host)
        self.log_path = os.path.join(work, "server.log")
        self.popen = None
        self.pid = None

    def env(self):
        return dict(os.environ)

    def preexec(self):
        """Run in the child before the server starts (ejabberd changes user here)."""

    def start(self):
        """Start the server in the background and wait until its c2s port accepts."""
        log = open(os.path.join(self.work, "stdout.log"), "ab")
        self.popen = subprocess.Popen(self.command(), cwd=self.work, stdin=subprocess.DEVNULL,
                                      stdout=log, stderr=subprocess.STDOUT, env=self.env(),
                                      start_new_session=True, preexec_fn=self.preexec)
        log.close()
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                status, self.popen = self.popen.returncode, None
                raise RuntimeError(f"{self.name} exited at start (status {status}):\n"
                                   + self.tail())
            try:
                socket.create_connection((self.host, self.port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            self.stop()
            raise RuntimeError(f"{self.name} did not listen on {self.port} in {self.start_timeout} s")
        self.pid = self.measured_pid()
        self.started()

    def tail(self, lines=15):
        """The last lines of the server's output and log, for an error message."""
        text = []
        for path in (os.path.join(self.work, "stdout.log"), self.log_path):
            try:
                with open(path, encoding="utf-8", errors="replace") as f:
                    text += [f"  {os.path.basename(path)}: {line.rstrip()}" for line in f.readlines()[-lines:]]
            except OSError:
                pass
        return "\n".join(text)

    def measured_pid(self):
        return self.popen.pid

    def started(self):
        """Hook: after the port accepts (ejabberd imports its accounts here)."""

    def shutdown(self):
        """Ask the server to stop (SIGTERM by default)."""
        if self.pid and alive(self.pid):
            os.kill(self.pid, signal.SIGTERM)

    def stop(self, timeout=15.0):
        """Stop the server: its own way first, SIGKILL to the measured PID after ``timeout``."""
        if self.popen is None:
            return
        try:
            self.shutdown()
        except Exception as e:                    # noqa: BLE001 - fall through to SIGKILL
            print(f"  {self.name}: graceful stop failed: {e}")
        pid = self.pid or self.popen.pid
        if not wait_gone(pid, timeout):
            print(f"  {self.name}: pid {pid} ignored the stop; SIGKILL")
            os.kill(pid, signal.SIGKILL)
            wait_gone(pid, 5)
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=5)
        self.popen = None
        self.pid = None

    def rss_kb(self):
        return rss_kb(self.pid)

    def cpu_seconds(self):
        return cpu_seconds(self.pid)

    def log_problems(self):
        """Lines of the server's log that say something went wrong (a few at most)."""
        return []
