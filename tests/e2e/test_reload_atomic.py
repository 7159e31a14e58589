"""configDir writes are applied only when complete: a manifest rewritten in place (truncate,
write in two chunks, close), replaced by an atomic rename, or swapped ConfigMap-style (files are
symlinks into ..data, ..data is swapped by renaming ..data_tmp over it), every 50 ms under
keep-alive load, never makes the gateway answer anything but 200, and the rewrites are applied
(both versions of the route are observed, the config generation advances)."""
import os
import random
import shutil
import threading
import time

import pytest

import helpers as H

LOAD_SECONDS = 3.0
PERIOD = 0.05


@pytest.fixture(scope="module")
def atomic_env(tmp_path_factory, upstream):
    d = str(tmp_path_factory.mktemp("atomicgw"))
    cfg = os.path.join(d, "config")
    os.makedirs(cfg)
    gw = H.Gateway(cfg, os.path.join(d, "appgw.stderr"))
    yield gw, cfg
    rc = gw.stop()
    assert rc == 0, "gateway exit code %r\n%s" % (rc, gw.log_tail())


def manifest(upstream, app, version):
    """The manifest of app in one of two versions. The served service comes last, so the first
    half of the file is a valid manifest without it (a partial write is a real, wrong state)."""
    pad = [H.service("Pad %d" % i, [H.entry(upstream.url("/pad%d" % i))]) for i in range(20)]
    docs = [H.application(app, pad + [H.service("S", [H.entry(upstream.url("/v" + version))])])]
    return "".join("---\n" + H.to_yaml(x) for x in docs).encode()


def write_in_place(path, data):
    """Truncate, write in two chunks (split at a line end) with gaps, close: the empty and the
    half-written file are both observable by the gateway for a moment."""
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CREAT, 0o644)
    try:
        half = data.index(b"\n", len(data) // 2) + 1
        time.sleep(0.002)
        os.write(fd, data[:half])
        time.sleep(0.005)
        os.write(fd, data[half:])
    finally:
        os.close(fd)


def write_renamed(path, data):
    tmp = os.path.join(os.path.dirname(path), ".%s.tmp" % os.path.basename(path))
    write_in_place(tmp, data)
    os.replace(tmp, path)


class ConfigMapDir:
    """A Kubernetes ConfigMap volume: name -> ..data/name, ..data -> ..<timestamp>; an update
    writes a new timestamped directory, points ..data_tmp at it, renames ..data_tmp over ..data
    and removes the old directory."""

    def __init__(self, root, name):
        self.root, self.name, self.n, self.current = root, name, 0, None

    def update(self, data):
        self.n += 1
        ts = "..2026_11_30_%06d" % self.n
        d = os.path.join(self.root, ts)
        os.makedirs(d)
        with open(os.path.join(d, self.name), "wb") as f:
            f.write(data)
        tmp = os.path.join(self.root, "..data_tmp")
        os.symlink(ts, tmp)
        os.replace(tmp, os.path.join(self.root, "..data"))
        link = os.path.join(self.root, self.name)
        if not os.path.islink(link):
            os.symlink(os.path.join("..data", self.name), link)
        if self.current:
            shutil.rmtree(os.path.join(self.root, self.current))
        self.current = ts


def route_version(gw, path):
    try:
        r = H.get(gw.proxy, path, timeout=5)
    except (OSError, EOFError):
        return None
    return r.json()["path"] if r.status == 200 else None


def run_storm(gw, path, rewrite):
    """2 keep-alive clients GET path for LOAD_SECONDS while rewrite(i) runs about every PERIOD.
    Returns (statuses {status: count}, versions seen {path: count}, errors, rewrites)."""
    stop = threading.Event()
    lock = threading.Lock()
    statuses, versions, errors = {}, {}, []
    rewrites = [0]

    def client():
        c = None
        t_end = time.monotonic() + LOAD_SECONDS
        while time.monotonic() < t_end:
            try:
                if c is None:
                    c = H.RawConn(gw.proxy, timeout=5)
                r = c.request("GET", path)
                v = r.json()["path"] if r.status == 200 else None
                with lock:
                    statuses[r.status] = statuses.get(r.status, 0) + 1
                    if v:
                        versions[v] = versions.get(v, 0) + 1
            except (OSError, EOFError, ValueError) as ex:
                with lock:
                    errors.append(repr(ex))
                if c:
                    c.close()
                c = None
        if c:
            c.close()

    def writer():
        # jittered around PERIOD so the rewrites do not fall into step with the gateway's timers
        rnd = random.Random(7)
        i = 0
        while not stop.is_set():
            i += 1
            rewrite(i)
            rewrites[0] = i
            stop.wait(rnd.uniform(0.4, 1.6) * PERIOD)

    w = threading.Thread(target=writer, daemon=True)
    cs = [threading.Thread(target=client, daemon=True) for _ in range(2)]
    w.start()
    for c in cs:
        c.start()
    for c in cs:
        c.join(LOAD_SECONDS + 20)
    stop.set()
    w.join(10)
    assert not w.is_alive() and not any(c.is_alive() for c in cs), "load or writer thread hung"
    return statuses, versions, errors, rewrites[0]


def version_of(i):
    return "b" if i % 2 else "a"


def test_in_place_rewrites_under_load(atomic_env, upstream):
    gw, cfg = atomic_env
    f = os.path.join(cfg, "inplace.yaml")
    write_renamed(f, manifest(upstream, "inplace", "a"))
    assert H.wait_for(lambda: route_version(gw, "/inplace/s/x") == "/va/x", 2 * H.SLOW)[0]
    last = [0]

    def rewrite(i):
        write_in_place(f, manifest(upstream, "inplace", version_of(i)))
        last[0] = i
    _check(gw, "inplace", rewrite, last)


def test_atomic_renames_under_load(atomic_env, upstream):
    gw, cfg = atomic_env
    f = os.path.join(cfg, "renamed.yaml")
    write_renamed(f, manifest(upstream, "renamed", "a"))
    assert H.wait_for(lambda: route_version(gw, "/renamed/s/x") == "/va/x", 2 * H.SLOW)[0]
    last = [0]

    def rewrite(i):
        write_renamed(f, manifest(upstream, "renamed", version_of(i)))
        last[0] = i
    _check(gw, "renamed", rewrite, last)


def test_configmap_symlink_swaps_under_load(atomic_env, upstream):
    gw, cfg = atomic_env
    root = os.path.join(cfg, "cm")
    os.makedirs(root)
    cm = ConfigMapDir(root, "cm.yaml")
    cm.update(manifest(upstream, "cmapp", "a"))
    assert H.wait_for(lambda: route_version(gw, "/cmapp/s/x") == "/va/x", 2 * H.SLOW)[0]
    last = [0]

    def rewrite(i):
        cm.update(manifest(upstream, "cmapp", version_of(i)))
        last[0] = i
    _check(gw, "cmapp", rewrite, last)


def _check(gw, app, rewrite, last):
    path = "/%s/s/x" % app
    gen0 = H.metric(gw.admin, "appgw_config_generation")
    statuses, versions, errors, n = run_storm(gw, path, rewrite)
    gen1 = H.metric(gw.admin, "appgw_config_generation")
    report = "statuses %r, versions %r, %d rewrites, generation %d -> %d, errors %r" % (
        statuses, versions, n, gen0, gen1, errors[:5])
    print(report)
    assert n >= 20, "only %d rewrites: %s" % (n, report)
    assert sum(statuses.values()) > 200, "suspiciously few requests: " + report
    assert set(statuses) == {200} and not errors, "failed requests during rewrites: " + report
    # the rewrites were applied, not ignored: both versions served, many snapshots published
    assert set(versions) == {"/va/x", "/vb/x"}, "not both versions observed: " + report
    assert gen1 - gen0 >= 5, "too few reloads: " + report
    want = "/v%s/x" % version_of(last[0])
    ok, _ = H.wait_for(lambda: route_version(gw, path) == want, 2 * H.SLOW)
    assert ok, "last rewrite not applied (%r, want %r): %s" % (route_version(gw, path), want, report)
