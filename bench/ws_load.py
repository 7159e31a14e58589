#!/usr/bin/env python3
"""ws_load.py: the WebSocket echo server, load client and report of bench/ws.sh (stdlib only).

  ws_load.py server PORT PROCS       echo server on 127.0.0.1:PORT: PROCS processes, each an
                                     asyncio loop on its own SO_REUSEPORT socket; GET with
                                     Upgrade: websocket -> 101, then every frame is echoed
                                     (unmasked, same opcode; a close is echoed, then closed)
  ws_load.py check PORT PATH         one connection: handshake (101, Sec-WebSocket-Accept
                                     right), frames of 5 B, 200 B, 70 kB echoed intact, close
  ws_load.py client PORT PATH key=value...
                                     the load: procs=N processes x conns=M connections, each
                                     keeping inflight=K frames of size=B bytes in flight
                                     (ping-pong, pipelined); warmup=W s, then duration=D s
                                     counted; pids=NAME:PID,... (process trees whose CPU is
                                     sampled at the start and the end of the counted window,
                                     with the client's own processes); prints one JSON line
  ws_load.py table RESULTS.jsonl     the table of bench/ws.sh

A message is one round trip: a frame from the client to the echo server and its echo back
(through appgw: two frames relayed).
"""
import asyncio
import base64
import hashlib
import json
import multiprocessing
import os
import signal
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report  # noqa: E402  (bench/report.py: /proc sampling, formatting)

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_HEAD = 16384
MAX_FRAME = 1 << 24


def accept_key(key):
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def unmask(payload, key):
    if not payload:
        return payload
    n = len(payload)
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


def frame(op, payload, mask_key=None):
    n = len(payload)
    h = bytes([0x80 | op])
    m = 0x80 if mask_key else 0
    if n < 126:
        h += bytes([m | n])
    elif n < 65536:
        h += bytes([m | 126]) + struct.pack(">H", n)
    else:
        h += bytes([m | 127]) + struct.pack(">Q", n)
    if mask_key:
        return h + mask_key + unmask(payload, mask_key)
    return h + payload


def parse_frame(buf, pos):
    """(opcode, payload, next pos) of the frame at buf[pos:], or None if it is not complete."""
    if len(buf) - pos < 2:
        return None
    b0, b1 = buf[pos], buf[pos + 1]
    n = b1 & 0x7F
    p = pos + 2
    if n == 126:
        if len(buf) - p < 2:
            return None
        n = struct.unpack_from(">H", buf, p)[0]
        p += 2
    elif n == 127:
        if len(buf) - p < 8:
            return None
        n = struct.unpack_from(">Q", buf, p)[0]
        p += 8
    if n > MAX_FRAME:
        raise ValueError("frame of %d bytes" % n)
    key = None
    if b1 & 0x80:
        if len(buf) - p < 4:
            return None
        key = bytes(buf[p:p + 4])
        p += 4
    if len(buf) - p < n:
        return None
    payload = bytes(buf[p:p + n])
    if key:
        payload = unmask(payload, key)
    return b0 & 0x0F, payload, p + n


def parse_head(head):
    lines = head.decode("latin-1").split("\r\n")
    hdrs = {}
    for ln in lines[1:]:
        if ":" in ln:
            k, v = ln.split(":", 1)
            hdrs[k.strip().lower()] = v.strip()
    return lines[0], hdrs


# --------------------------------------------------------------------------- server

class EchoServer(asyncio.Protocol):
    def connection_made(self, transport):
        self.t = transport
        self.buf = bytearray()
        self.open = False

    def data_received(self, data):
        self.buf += data
        if not self.open:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > MAX_HEAD:
                    self.t.close()
                return
            line, hdrs = parse_head(bytes(self.buf[:end]))
            del self.buf[:end + 4]
            key = hdrs.get("sec-websocket-key", "").encode()
            if "websocket" not in hdrs.get("upgrade", "").lower() or not key:
                self.t.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                self.t.close()
                return
            self.t.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept_key(key) + b"\r\n\r\n")
            self.open = True
        out, pos = [], 0
        try:
            while True:
                f = parse_frame(self.buf, pos)
                if f is None:
                    break
                op, payload, pos = f
                out.append(frame(op, payload))
                if op == 8:
                    self.t.write(b"".join(out))
                    self.t.close()
                    return
        except ValueError:
            self.t.close()
            return
        del self.buf[:pos]
        if out:
            self.t.write(b"".join(out))


def serve_one(port):
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(("127.0.0.1", port))
    s.listen(4096)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(loop.create_server(EchoServer, sock=s))
    loop.run_forever()


def server(port, procs):
    kids = []
    for _ in range(procs):
        pid = os.fork()
        if pid == 0:
            try:
                serve_one(port)
            finally:
                os._exit(1)
        kids.append(pid)

    def stop(*_):
        for k in kids:
            try:
                os.kill(k, signal.SIGTERM)
            except OSError:
                pass
        os._exit(0)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    os.wait()  # a child died: stop the others too
    stop()


# --------------------------------------------------------------------------- check

def recv_until(s, buf, pred, deadline):
    while not pred(buf):
        if time.monotonic() > deadline:
            raise TimeoutError("no answer within 10 s")
        d = s.recv(65536)
        if not d:
            raise EOFError("closed")
        buf += d
    return buf


def upgrade_request(path):
    """(the GET that asks for a WebSocket on path, its Sec-WebSocket-Key)"""
    key = base64.b64encode(os.urandom(16))
    return (b"GET " + path.encode() + b" HTTP/1.1\r\nHost: bench\r\nConnection: Upgrade\r\n"
            b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + b"\r\n\r\n"), key


def check(port, path):
    deadline = time.monotonic() + 10
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        req, key = upgrade_request(path)
        s.sendall(req)
        buf = recv_until(s, bytearray(), lambda b: b"\r\n\r\n" in b, deadline)
        end = buf.find(b"\r\n\r\n")
        line, hdrs = parse_head(bytes(buf[:end]))
        del buf[:end + 4]
        if not line.startswith("HTTP/1.1 101"):
            raise RuntimeError("handshake answered %r" % line)
        if hdrs.get("sec-websocket-accept", "").encode() != accept_key(key):
            raise RuntimeError("wrong Sec-WebSocket-Accept %r" % hdrs.get("sec-websocket-accept"))
        for msg in (b"hello", os.urandom(200), os.urandom(70000)):
            s.sendall(frame(2, msg, os.urandom(4)))
            buf = recv_until(s, buf, lambda b: parse_frame(b, 0) is not None, deadline)
            op, payload, pos = parse_frame(buf, 0)
            del buf[:pos]
            if (op, payload) != (2, msg):
                raise RuntimeError("echo of %d bytes came back as op %d, %d bytes" % (len(msg), op, len(payload)))
        s.sendall(frame(8, b"\x03\xe8", os.urandom(4)))
        buf = recv_until(s, buf, lambda b: parse_frame(b, 0) is not None, deadline)
        if parse_frame(buf, 0)[0] != 8:
            raise RuntimeError("no close echoed")
    return "101 with the right Sec-WebSocket-Accept; 5 B, 200 B and 70 kB frames echoed intact; close echoed"


# --------------------------------------------------------------------------- client

class Pinger(asyncio.Protocol):
    """Keeps `inflight` frames in flight: each echo that comes back sends the next frame. Echoes
    of the server are 2 + size bytes (size < 126), so they are counted without parsing."""

    def __init__(self, st, path, size, inflight, ready):
        self.st, self.path, self.inflight, self.ready = st, path, inflight, ready
        self.echo_len = 2 + size
        key = b"\x11\x22\x33\x44"
        one = frame(2, b"m" * size, key)
        self.batches = [one * n for n in range(inflight + 1)]
        self.head = bytearray()
        self.open = False
        self.pending = 0

    def connection_made(self, t):
        self.t = t
        t.write(upgrade_request(self.path)[0])

    def go(self):
        self.t.write(self.batches[self.inflight])

    def data_received(self, data):
        if not self.open:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            if not self.head.startswith(b"HTTP/1.1 101"):
                self.st["errors"] += 1
                self.t.close()
                return
            data = bytes(self.head[end + 4:])
            self.open = True
            if not self.ready.done():
                self.ready.set_result(self)
            if not data:
                return
        n, self.pending = divmod(self.pending + len(data), self.echo_len)
        if n:
            now = time.time()
            if self.st["t0"] <= now < self.st["t1"]:
                self.st["msgs"] += n
            if now < self.st["t1"]:
                while n > self.inflight:
                    self.t.write(self.batches[self.inflight])
                    n -= self.inflight
                self.t.write(self.batches[n])

    def connection_lost(self, exc):
        if time.time() < self.st["t1"]:
            self.st["errors"] += 1


def client_proc(port, path, conns, size, inflight, start_at, t0, t1, q):
    async def main():
        st = {"msgs": 0, "errors": 0, "t0": t0, "t1": t1}
        loop = asyncio.get_running_loop()
        ps = []
        for _ in range(conns):
            ready = loop.create_future()
            try:
                _, p = await asyncio.wait_for(loop.create_connection(
                    lambda: Pinger(st, path, size, inflight, ready), "127.0.0.1", port), 10)
                await asyncio.wait_for(ready, 10)
                ps.append(p)
            except (OSError, asyncio.TimeoutError):
                st["errors"] += 1
        await asyncio.sleep(max(0.0, start_at - time.time()))
        for p in ps:
            p.go()
        await asyncio.sleep(max(0.0, t1 - time.time()) + 0.05)
        for p in ps:
            p.t.abort()
        return st
    st = asyncio.run(main())
    q.put((st["msgs"], st["errors"]))


def client(port, path, opts):
    procs, conns = int(opts.get("procs", 2)), int(opts.get("conns", 32))
    size, inflight = int(opts.get("size", 64)), int(opts.get("inflight", 8))
    warmup, duration = float(opts.get("warmup", 2)), float(opts.get("duration", 10))
    if not 0 < size < 126:
        raise SystemExit("size must be 1..125 bytes (a 2-byte frame header on the echo)")
    pids = dict(p.split(":", 1) for p in opts.get("pids", "").split(",") if p)
    # connections are opened during the first second (more with many), then all start together
    start_at = time.time() + 1.0 + procs * conns / 2000
    t0, t1 = start_at + warmup, start_at + warmup + duration
    q = multiprocessing.Queue()
    kids = [multiprocessing.Process(target=client_proc,
                                    args=(port, path, conns, size, inflight, start_at, t0, t1, q))
            for _ in range(procs)]
    for k in kids:
        k.start()
    mine = [str(k.pid) for k in kids]

    def snap():
        out = {name: report.sample([pid])[0] for name, pid in pids.items()}
        out["client"] = report.sample(mine)[0]
        return out, report.sys_busy(), time.time()
    time.sleep(max(0.0, t0 - time.time()))
    s0, b0, w0 = snap()
    time.sleep(max(0.0, t1 - time.time()))
    s1, b1, w1 = snap()
    msgs = errors = done = 0
    deadline = time.time() + 30
    while done < procs and time.time() < deadline:
        try:
            m, e = q.get(timeout=max(0.1, deadline - time.time()))
        except Exception:  # queue.Empty: a process hung or died
            break
        msgs, errors, done = msgs + m, errors + e, done + 1
    for k in kids:
        k.join(5)
        if k.is_alive():
            k.kill()
    errors += procs - done
    wall = w1 - w0
    tck = report.CLK_TCK
    cpu = {k: (s1[k] - s0[k]) / tck for k in s0}
    other = (b1 - b0) / tck - sum(cpu.values())
    print(json.dumps({"msgs": msgs, "seconds": wall, "msgs_per_s": msgs / wall if wall > 0 else 0,
                      "errors": errors, "cpu_s": cpu, "other_cpu_pct": max(0.0, 100 * other / wall),
                      "procs": procs, "conns": conns, "inflight": inflight, "size": size}))


# --------------------------------------------------------------------------- table

def table(path):
    rows = [json.loads(l) for l in open(path) if l.strip()]
    if not rows:
        print("no results")
        return 1
    r0 = rows[0]
    rounds = max(r.get("round", 1) for r in rows)
    print(f"WebSocket echo  commit {r0.get('commit', '?')}  {r0['procs']} client processes x "
          f"{r0['conns']} connections x {r0['inflight']} in flight, {r0['size']}-byte binary frames, "
          f"{r0.get('server_procs', '?')} echo server processes, {r0['seconds']:.0f} s counted, "
          f"rounds {rounds}  {os.cpu_count()} CPUs")
    print("a message = one round trip (client -> echo -> client); appgw relays two frames per message")
    print("CPU/msg: user+sys CPU of the process tree per message (/proc/PID/stat); other CPU: "
          "anything else, in % of one core (> ~10%: noisy)")
    if rounds > 1:
        print(f"each figure is the median of {rounds} rounds")
    keys = list(dict.fromkeys(r["path"] for r in rows))
    agg = {}
    for k in keys:
        rs = [r for r in rows if r["path"] == k]
        a = {"errors": sum(r["errors"] for r in rs) + sum(1 for r in rs if r.get("failed"))}
        ok = [r for r in rs if not r.get("failed")]
        a["failed"] = "; ".join(sorted({r["failed"] for r in rs if r.get("failed")}))
        for f in ("msgs_per_s", "other_cpu_pct"):
            a[f] = report._median([r[f] for r in ok])
        for who in ("appgw", "server", "client"):
            a[who] = report._median([r["cpu_s"].get(who, 0) * 1e6 / r["msgs"] if r["msgs"] else 0 for r in ok
                                     if who in r["cpu_s"]]) if any(who in r["cpu_s"] for r in ok) else None
        agg[k] = a
    print()
    print(f"{'path':<18} {'msgs/s':>9} {'appgw CPU/msg':>14} {'server CPU/msg':>15} "
          f"{'client CPU/msg':>15} {'other CPU':>9} {'errors':>7}")
    for k in keys:
        a = agg[k]
        if a["failed"] and not a["msgs_per_s"]:
            print(f"{k:<18} failed: {a['failed']}")
            continue
        us = lambda v: "-" if v is None else f"{v:.1f}us"
        print(f"{k:<18} {a['msgs_per_s']:>9.0f} {us(a['appgw']):>14} {us(a['server']):>15} "
              f"{us(a['client']):>15} {a['other_cpu_pct']:>8.0f}% "
              f"{(str(a['errors']) + (' !!!' if a['errors'] else '')):>7}")
    d = agg.get("direct")
    for k in keys:
        if k != "direct" and d and d["msgs_per_s"] and agg[k]["msgs_per_s"]:
            print(f"{k}/direct: msgs/s x{agg[k]['msgs_per_s'] / d['msgs_per_s']:.2f}")
    if any(a["errors"] for a in agg.values()):
        print("!!! SOME RUNS HAD ERRORS: their figures are not valid !!!")
    return 0


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    cmd = argv[1]
    if cmd == "server":
        server(int(argv[2]), int(argv[3]))
    elif cmd == "check":
        try:
            print(check(int(argv[2]), argv[3]))
        except (OSError, EOFError, RuntimeError, TimeoutError, ValueError) as e:
            print("check failed: %s" % e)
            return 1
    elif cmd == "client":
        client(int(argv[2]), argv[3], dict(a.split("=", 1) for a in argv[4:]))
    elif cmd == "table":
        return table(argv[2])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
