"""SPEC §2: command-line flag forms and rejection of bad flags."""
import os
import subprocess

import pytest

import helpers as H


@pytest.mark.parametrize("style", ["single", "single_space", "mixed"])
def test_flag_forms(tmpdir_str, upstream, style):
    cfg = os.path.join(tmpdir_str, "config")
    os.makedirs(cfg)
    H.write_yaml_docs(os.path.join(cfg, "a.yaml"), [H.application("t", [H.service("Up", [H.entry(upstream.url("/b"))])])])
    with H.gateway(tmpdir_str, cfg, arg_style=style, log_level="warn") as gw:
        r = H.get(gw.proxy, "/t/up/x")
        assert r.status == 200, r
        assert r.json()["path"] == "/b/x"
        assert H.get(gw.compass, "/t/up/api/y").json()["path"] == "/b/y"
        assert H.get(gw.admin, "/v1/loglevel").json() == {"level": "warn"}


def run_bin(args, timeout=10):
    return subprocess.run([H.appgw_bin()] + args, capture_output=True, text=True, timeout=timeout * H.SLOW,
                          stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("args", [
    ["--noSuchFlag=1"],
    ["--proxyPort=notaport"],
    ["--proxyPort=70000"],
    ["--logLevel=loud"],
    ["--proxyTimeout"],
])
def test_bad_flags_rejected(tmpdir_str, args):
    p = run_bin(args + ["--configDir=" + tmpdir_str, "--listenAddress=127.0.0.1",
                        "--proxyPort=%d" % H.free_port(), "--proxyPortCompass=%d" % H.free_port(),
                        "--externalAPIPort=%d" % H.free_port()] if args != ["--proxyTimeout"]
                else ["--configDir=" + tmpdir_str] + args)
    assert p.returncode != 0, "accepted %r: rc 0\n%s%s" % (args, p.stdout, p.stderr)
    assert (p.stdout + p.stderr).strip(), "no message for %r" % args


def test_help_exits_zero():
    p = run_bin(["-h"])
    assert p.returncode == 0, p
    out = p.stdout + p.stderr
    for flag in ("proxyPort", "proxyPortCompass", "externalAPIPort", "applicationSecretsNamespace",
                 "requestTimeout", "proxyTimeout", "logLevel"):
        assert flag in out, (flag, out)


def test_original_flags_accepted(tmpdir_str):
    """The original Deployment's args (apiServerURL/kubeConfig empty, proxyCacheTTL) are accepted."""
    cfg = os.path.join(tmpdir_str, "config")
    os.makedirs(cfg)
    with H.gateway(tmpdir_str, cfg, flags={"proxyCacheTTL": 120}) as gw:
        assert H.get(gw.admin, "/v1/health").status == 200


def test_default_listen_address_serves_ipv4_and_ipv6(tmpdir_str, upstream):
    """Without --listenAddress every address is served, like the original's ":8080"; IPv4
    clients of the dual-stack socket appear as plain IPv4 in X-Forwarded-For."""
    import socket
    cfg = os.path.join(tmpdir_str, "config")
    os.makedirs(cfg)
    H.write_yaml_docs(os.path.join(cfg, "a.yaml"), [H.application("t", [H.service("Up", [H.entry(upstream.url())])])])
    with H.gateway(tmpdir_str, cfg, flags={"listenAddress": None}) as gw:
        r = H.get(gw.proxy, "/t/up/echo/v4")
        assert r.status == 200, r
        assert H.hvals(H.echo_headers(r), "X-Forwarded-For") == ["127.0.0.1"], r
        try:
            s6 = socket.create_connection(("::1", gw.proxy), timeout=5)
        except OSError:
            return  # no IPv6 on this host: the IPv4 fallback above is what counts
        with s6:
            s6.sendall(b"GET /t/up/echo/v6 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                d = s6.recv(65536)
                if not d:
                    break
                data += d
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        assert b'["X-Forwarded-For", "::1"]' in body, body


def test_default_config_found_next_to_the_binary_wherever_it_is(tmp_path):
    """Without --configDir (and no Kubernetes) the examples directory is found from the binary's
    own place (installed layout: <prefix>/share/appgw/examples), not from the checkout's path."""
    import shutil
    import subprocess
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for layout in ("installed", "missing"):
        root = tmp_path / layout
        (root / "bin").mkdir(parents=True)
        shutil.copy(H.appgw_bin(), root / "bin" / "appgw")
        if layout == "installed":
            shutil.copytree(os.path.join(repo, "examples"), root / "share" / "appgw" / "examples")
        ports = H.free_ports(3)
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
        p = subprocess.Popen([str(root / "bin" / "appgw"), "--listenAddress=127.0.0.1", "--proxyPort=%d" % ports[0],
                              "--proxyPortCompass=%d" % ports[1], "--externalAPIPort=%d" % ports[2]],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        try:
            if layout == "missing":
                out, _ = p.communicate(timeout=10 * H.SLOW)
                assert p.returncode == 1, out
                assert b"no configuration" in out, out
                continue
            H.wait_port(ports[2], timeout=10 * H.SLOW, proc=p)
            r = H.get(ports[0], "/demo/hello-api/hello.json")
            assert r.status != 404, r  # the examples' route exists (the demo API itself may be down)
        finally:
            if p.poll() is None:
                H.stop_process(p)
