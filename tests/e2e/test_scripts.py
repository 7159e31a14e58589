"""scripts/run.sh and scripts/setup.sh.

run.sh is started for real (APPGW_RUN_SKIP_SETUP=1: no setup.sh/build.sh, the binary is
APPGW_BIN), in its own session, on its fixed ports 8080-8082 and 8090: a test that needs them
is skipped, with the reason, when one is taken on this machine. Checks: it serves the demo API
through appgw on 127.0.0.1 only (admin port included); SIGTERM or SIGINT to run.sh stops appgw
and the demo API and frees every port; a taken 8090 makes it exit non-zero with a message
instead of proxying to whatever holds the port. setup.sh is checked statically: it never
stops, kills or disables anything and lets apt show its progress.
Everything started here is stopped by PID, with bounded waits.
"""
import os
import re
import signal
import socket
import subprocess
import time

import pytest

import helpers as H

RUN_SH = os.path.join(H.REPO, "scripts", "run.sh")
SETUP_SH = os.path.join(H.REPO, "scripts", "setup.sh")
PORTS = (8080, 8081, 8082, 8090)
START_TIMEOUT = 15.0 * H.SLOW
STOP_TIMEOUT = 20.0 * H.SLOW


def port_free(port):
    """True when 127.0.0.1:port can be bound (no listener there, nor on a wildcard address)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT leftovers do not count
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def require_ports(ports):
    taken = [p for p in ports if not port_free(p)]
    if taken:
        pytest.skip("run.sh uses fixed ports; taken on this machine: %s" % ", ".join(map(str, taken)))


def children(pid):
    """PIDs whose parent is pid (from /proc)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                stat = f.read()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            out.append(int(d))
    return out


def comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return None


def alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2:].split()[0] != "Z"


def listen_addrs(port):
    """Local addresses (hex, as in /proc/net/tcp*) of the sockets listening on port."""
    addrs = []
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    addr, hport = cols[1].rsplit(":", 1)
                    if cols[3] == "0A" and int(hport, 16) == port:  # 0A: LISTEN
                        addrs.append(addr)
        except OSError:
            pass
    return addrs


class RunSh:
    """scripts/run.sh in its own session; output in files under tmpdir."""

    def __init__(self, tmpdir, args=()):
        env = dict(os.environ)
        env["APPGW_RUN_SKIP_SETUP"] = "1"
        env["APPGW_BIN"] = H.appgw_bin()
        for k in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):  # examples/, not a cluster
            env.pop(k, None)
        self.out_path = os.path.join(tmpdir, "run.out")
        self.err_path = os.path.join(tmpdir, "run.err")
        self.out = open(self.out_path, "wb")
        self.err = open(self.err_path, "wb")
        self.proc = subprocess.Popen(["bash", RUN_SH] + list(args), cwd=H.REPO, env=env,
                                     stdin=subprocess.DEVNULL, stdout=self.out, stderr=self.err,
                                     start_new_session=True)
        self.kids = {}  # pid -> comm, as seen while run.sh ran

    def note_children(self):
        for pid in children(self.proc.pid):
            self.kids[pid] = comm(pid) or self.kids.get(pid)  # a fork shows "bash" until it execs
        return self.kids

    def pid_of(self, name):
        pids = [p for p, c in self.note_children().items() if c == name]
        return pids[0] if pids else None

    def text(self):
        self.out.flush()
        self.err.flush()
        return H.read_text(self.out_path) + H.read_text(self.err_path)

    def stop(self):
        """Stops run.sh and, if anything survived it, the children it had, by PID."""
        H.stop_process(self.proc, timeout=STOP_TIMEOUT)
        for pid in self.kids:
            if alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.out.close()
        self.err.close()


@pytest.fixture
def run_sh(tmp_path):
    started = []

    def start(args=()):
        r = RunSh(str(tmp_path), args)
        started.append(r)
        return r

    yield start
    for r in started:
        r.stop()


def serving(r):
    """True once appgw (started by r) answers the demo API through the proxy port."""
    if r.proc.poll() is not None:
        raise AssertionError("run.sh exited early (%s):\n%s" % (r.proc.returncode, r.text()))
    r.note_children()
    try:
        resp = H.get(8080, "/demo/hello-api/hello.json", timeout=2.0)
    except Exception:  # refused, reset, or not an HTTP answer yet
        return False
    return resp.status == 200 and b"hello from the demo API" in resp.body


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_run_sh_signal_stops_appgw_and_frees_ports(run_sh, sig):
    require_ports(PORTS)
    r = run_sh()
    ok, _ = H.wait_for(lambda: serving(r), START_TIMEOUT, interval=0.1)
    assert ok, "run.sh did not serve the demo API within %.0fs:\n%s" % (START_TIMEOUT, r.text())
    gw, demo = r.pid_of("appgw"), r.pid_of("python3")
    assert gw is not None and alive(gw), "no appgw child of run.sh: %r" % r.kids
    assert demo is not None and alive(demo), "no python3 (demo API) child of run.sh: %r" % r.kids

    # every port on 127.0.0.1 only: 0100007F is 127.0.0.1 in /proc/net/tcp
    assert H.get(8081, "/v1/health").status == 200
    for port in PORTS:
        addrs = listen_addrs(port)
        assert addrs and all(a == "0100007F" for a in addrs), "port %d listens on %r" % (port, addrs)
    assert "curl http://127.0.0.1:8080/" in r.text()

    os.kill(r.proc.pid, sig)  # run.sh only, not its process group
    try:
        rc = r.proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail("run.sh still running %.0fs after %s:\n%s" % (STOP_TIMEOUT, sig.name, r.text()))
    assert rc == 128 + sig, r.text()
    gone, _ = H.wait_for(lambda: not alive(gw) and not alive(demo), 5.0)
    assert gone, "still running after run.sh exited: appgw %s, demo %s" % (alive(gw), alive(demo))
    freed, _ = H.wait_for(lambda: all(port_free(p) for p in PORTS), 5.0)
    assert freed, "ports still taken: %r" % [p for p in PORTS if not port_free(p)]


def test_run_sh_taken_demo_port_fails_clearly(run_sh):
    require_ports(PORTS)
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT from earlier tests
    try:
        holder.bind(("127.0.0.1", 8090))
        holder.listen(8)
        r = run_sh()
        try:
            rc = r.proc.wait(timeout=START_TIMEOUT)
        except subprocess.TimeoutExpired:
            r.note_children()
            pytest.fail("run.sh kept running with 8090 taken:\n%s" % r.text())
        text = r.text()
        assert rc != 0, text
        assert "could not listen on 127.0.0.1:8090" in text, text
        assert "Not starting appgw" in text, text
        assert "demo API on" not in text and "curl http" not in text, text
        # appgw never started: its ports stay free
        assert all(port_free(p) for p in (8080, 8081, 8082)), text
    finally:
        holder.close()


def test_run_sh_keeps_user_listen_address(run_sh):
    """--listenAddress given by the user wins (run.sh adds 127.0.0.1 only when it is absent)."""
    require_ports(PORTS)
    r = run_sh(["-listenAddress", "127.0.0.1", "-logLevel", "warn"])
    ok, _ = H.wait_for(lambda: serving(r), START_TIMEOUT, interval=0.1)
    assert ok, r.text()
    gw = r.pid_of("appgw")
    with open("/proc/%d/cmdline" % gw, "rb") as f:
        argv = f.read().split(b"\0")
    assert b"--listenAddress=127.0.0.1" not in argv, argv
    assert argv[1:5] == [b"-listenAddress", b"127.0.0.1", b"-logLevel", b"warn"], argv
    r.proc.send_signal(signal.SIGTERM)
    assert r.proc.wait(timeout=STOP_TIMEOUT) == 143


def _code_lines(path):
    """The script's lines without comments (good enough for these scripts: no '#' in strings
    that matter here)."""
    out = []
    for line in H.read_text(path).splitlines():
        s = line.strip()
        if s.startswith("#"):
            continue
        out.append(re.sub(r"\s+#.*$", "", line))
    return out


def test_setup_sh_never_stops_kills_or_disables():
    code = "\n".join(_code_lines(SETUP_SH))
    forbidden = [
        r"\bpkill\b", r"\bkillall\b", r"\bkill\s", r"\bsystemctl\b[^\n]*\b(stop|disable|kill|mask|restart)\b",
        r"\bservice\s+\S+\s+(stop|restart)\b", r"\binvoke-rc\.d\b", r"\bupdate-rc\.d\b",
    ]
    for pat in forbidden:
        m = re.search(pat, code)
        assert m is None, "setup.sh must not stop, kill or disable anything: %r" % m.group(0)
    # service start during the install is prevented by a policy-rc.d that is removed again
    assert "policy-rc.d" in code and "exit 101" in code
    assert re.search(r'rm -f "\$POLICY"', code)
    # apt shows its progress: not silenced
    apt = [ln for ln in code.splitlines() if re.search(r"\bapt-get\s+(update|install)\b", ln)]
    assert len(apt) == 2, apt
    for ln in apt:
        assert "-qq" not in ln and "/dev/null" not in ln, ln


def test_setup_sh_prints_package_list():
    code = "\n".join(_code_lines(SETUP_SH))
    assert re.search(r'printf [^\n]*"\$\{missing\[@\]\}"', code), "setup.sh should list what it installs"
