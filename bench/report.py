#!/usr/bin/env python3
"""report.py: helper of bench/run.sh (stdlib only).

  report.py sample PID...            print "<cpu ticks> <VmHWM kB> <nprocs> <machine busy ticks>",
                                     the first three summed over the process trees rooted
                                     at PID... (all threads included)
  report.py snap PROXY_PID ORIGIN_PID STUB_URL
                                     print "<proxy ticks> <proxy VmHWM kB> <nprocs>
                                     <origin ticks> <machine busy ticks> <origin accepts> <time>"
  report.py pids PID...              print the PIDs of the process trees rooted at PID...
  report.py stub URL                 print the "accepts" counter of an nginx stub_status page
  report.py record OUT key=value...  parse the wrk output named by wrk_out=FILE, add the
                                     key=value fields, append one JSON line to OUT
  report.py skip OUT PROXY SCENARIO WORKERS REASON   record a skipped run
  report.py table RESULTS.jsonl      print the tables, appgw's ratios to nginx/HAProxy and
                                     appgw's ratios between scenarios (oauth/get, certgen/https)
"""
import json
import os
import re
import sys
import time
import urllib.request

CLK_TCK = int(os.environ.get("CLK_TCK") or os.sysconf("SC_CLK_TCK"))  # run.sh: getconf CLK_TCK


def _stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    rest = s[s.rindex(")") + 2:].split()
    # rest[0] is field 3 (state): ppid=field 4, utime=14, stime=15
    return int(rest[1]), int(rest[11]) + int(rest[12])


def _hwm(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree(roots):
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            ppid, _ = _stat(d)
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [int(r) for r in roots]
    while todo:
        p = todo.pop()
        if p in out:
            continue
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def sys_busy():
    """Busy ticks of the whole machine (all CPUs) from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal (guest* are already in user/nice)
    return sum(v[:8]) - v[3] - v[4]


def times_children_s(path):
    """Children user+sys seconds from the output of bash's `times` (second line)."""
    with open(path) as f:
        lines = f.read().split("\n")
    tot = 0.0
    for tok in lines[1].split():
        m = re.match(r"(\d+)m([\d.]+)s", tok)
        if m:
            tot += int(m.group(1)) * 60 + float(m.group(2))
    return tot


def sample(roots):
    ticks = hwm = n = 0
    for p in tree(roots):
        try:
            ticks += _stat(p)[1]
        except (OSError, ValueError, IndexError):
            continue
        hwm += _hwm(p)
        n += 1
    return ticks, hwm, n


def stub_accepts(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        body = r.read().decode()
    m = re.search(r"accepts handled requests\s*\n\s*(\d+)\s+(\d+)\s+(\d+)", body)
    return int(m.group(1)) if m else -1


_UNIT = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}


def parse_wrk(text):
    """Prefer the BENCHJSON line of wrk.lua; fall back to wrk's human-readable output."""
    for line in text.splitlines():
        if line.startswith("BENCHJSON "):
            r = json.loads(line[len("BENCHJSON "):])
            r["rps"] = r["requests"] / (r["duration_us"] / 1e6) if r["duration_us"] else 0.0
            break
    else:
        r = {"requests": 0, "rps": 0.0, "p50_us": 0, "p99_us": 0}
        m = re.search(r"(\d+) requests in", text)
        if m:
            r["requests"] = int(m.group(1))
        m = re.search(r"Requests/sec:\s*([\d.]+)", text)
        if m:
            r["rps"] = float(m.group(1))
        for pct, key in (("50", "p50_us"), ("99", "p99_us")):
            m = re.search(r"^\s*%s%%\s+([\d.]+)(us|ms|s|m|h)\s*$" % pct, text, re.M)
            if m:
                r[key] = float(m.group(1)) * _UNIT[m.group(2)]
        m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
        if m:
            for k, v in zip(("err_connect", "err_read", "err_write", "err_timeout"), m.groups()):
                r[k] = int(v)
        m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
        r["err_status"] = int(m.group(1)) if m else 0
    r["errors"] = sum(r.get(k, 0) for k in
                      ("err_connect", "err_read", "err_write", "err_status", "err_timeout"))
    return r


def record(out, kv):
    fields = dict(a.split("=", 1) for a in kv)
    with open(fields.pop("wrk_out"), errors="replace") as f:
        text = f.read()
    r = parse_wrk(text)
    for k, v in fields.items():
        try:
            r[k] = int(v)
        except ValueError:
            r[k] = v
    req = r["requests"]
    for who in ("proxy", "origin"):
        d = r.get(f"{who}_ticks1", 0) - r.get(f"{who}_ticks0", 0)
        r[f"{who}_cpu_us_per_req"] = (d / CLK_TCK * 1e6 / req) if req else 0.0
        r[f"{who}_cpu_s"] = d / CLK_TCK
    if "times0" in r and "times1" in r:
        r["wrk_cpu_s"] = times_children_s(r.pop("times1")) - times_children_s(r.pop("times0"))
    if "sys_busy0" in r and "wall0" in r:
        wall = float(r.pop("wall1")) - float(r.pop("wall0"))
        other = ((r.pop("sys_busy1") - r.pop("sys_busy0")) / CLK_TCK - r["proxy_cpu_s"]
                 - r["origin_cpu_s"] - r.get("wrk_cpu_s", 0.0))
        r["wall_s"] = wall
        # CPU used by anything but the proxy, the origin and wrk: the noise of a shared machine
        r["other_cpu_pct"] = max(0.0, 100.0 * other / wall) if wall > 0 else 0.0
    if "origin_accepts0" in r and "origin_accepts1" in r:
        # minus 2: the stub_status requests of the two later snapshots (run.sh: snap before
        # the warm-up, after it, after the run)
        r["upstream_conns"] = max(0, r["origin_accepts1"] - r["origin_accepts0"] - 2)
    with open(out, "a") as f:
        f.write(json.dumps(r, sort_keys=True) + "\n")
    if r["errors"] or r.get("wrk_rc", 0):
        print(f"!!! ERRORS: {r.get('proxy')} {r.get('scenario')} workers={r.get('workers')}: "
              f"{r['errors']} wrk errors (connect {r.get('err_connect', 0)}, read "
              f"{r.get('err_read', 0)}, write {r.get('err_write', 0)}, timeout "
              f"{r.get('err_timeout', 0)}, non-2xx/3xx {r.get('err_status', 0)}), wrk exit "
              f"{r.get('wrk_rc', 0)}", file=sys.stderr)
    return r


def fmt_us(us):
    if us >= 1e6:
        return f"{us / 1e6:.2f}s"
    if us >= 1e3:
        return f"{us / 1e3:.2f}ms"
    return f"{us:.0f}us"


PROXY_ORDER = ["appgw", "nginx", "haproxy"]
SCEN_NAME = {"get": "small GET", "post": "64 KiB POST", "oauth": "OAuth GET", "https": "HTTPS GET",
             "certgen": "CertGen GET"}
# appgw scenario ratios: (route with credentials, the same route without them, what it measures)
SCEN_PAIRS = [("oauth", "get", "OAuth bearer token (cached) vs open route, both plain HTTP"),
              ("certgen", "https", "client certificate (CertificateGen) vs plain HTTPS route")]


def _median(xs):
    xs = sorted(xs)
    n = len(xs)
    if not n:
        return 0.0
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def aggregate(runs):
    """One row from the rounds of one (proxy, scenario, workers): medians, errors summed."""
    ok = [r for r in runs if not r.get("skipped")]
    if not ok:
        return {"proxy": runs[0]["proxy"], "skipped": runs[-1]["skipped"]}
    a = {"proxy": ok[0]["proxy"], "n": len(ok), "skipped_rounds": len(runs) - len(ok)}
    for k in ("rps", "p50_us", "p99_us", "proxy_cpu_us_per_req", "origin_cpu_us_per_req",
              "proxy_hwm_kb", "other_cpu_pct"):
        a[k] = _median([r.get(k, 0) for r in ok])
    cpus = [r.get("proxy_cpu_us_per_req", 0) for r in ok]
    a["cpu_min"], a["cpu_max"] = min(cpus), max(cpus)
    a["upstream_conns"] = max(r.get("upstream_conns", -1) for r in ok)
    a["errors"] = sum(r["errors"] for r in ok)
    a["bad_exit"] = sum(1 for r in ok if r.get("wrk_rc", 0) or not r.get("proxy_alive", 1))
    a["post_bytes"] = ok[0].get("post_bytes", 65536)
    a["token_fetches"] = sum(r.get("token_fetches", 0) for r in ok)
    return a


def table(path, commit=""):
    rows = [json.loads(l) for l in open(path) if l.strip()]
    if not rows:
        print("no results")
        return 1
    done = [r for r in rows if not r.get("skipped")]
    r0 = done[0] if done else {}
    rounds = max([r.get("round", 1) for r in done] or [1])
    fixed = bool(r0.get("delay_ms"))
    print(f"appgw benchmark  commit {commit or r0.get('commit', '?')}  "
          f"wrk -t{r0.get('threads', '?')} -c{r0.get('connections', '?')} "
          f"-d{r0.get('duration', '?')}s"
          f"{'  fixed load: %d ms between requests per connection' % r0['delay_ms'] if r0.get('delay_ms') else ''}"
          f"  rounds {rounds}  {os.cpu_count()} CPUs  "
          f"loadavg(1m) at the first run {r0.get('loadavg', '?')}")
    print("CPU/req: proxy user+sys CPU time per request, all its processes and threads "
          "(/proc/PID/stat)")
    print("peak RSS: sum of VmHWM over the proxy's processes; up-conns: new origin connections "
          "during warm-up+run (about -c when the pool is kept)")
    print("other CPU: CPU used meanwhile by anything but proxy, origin and wrk, in % of one "
          "core (noise; > ~10% makes the run doubtful)")
    if rounds > 1:
        print(f"each figure is the median of {rounds} rounds; CPU range = min..max over them")
    keys = []
    for r in rows:
        k = (r["scenario"], r["workers"])
        if k not in keys:
            keys.append(k)
    summary = []
    aggs = {}
    any_err = False
    for scen, w in keys:
        by = {}
        for r in rows:
            if r["scenario"] == scen and r["workers"] == w:
                by.setdefault(r["proxy"], []).append(r)
        sel = {p: aggregate(rs) for p, rs in by.items()}
        aggs[(scen, w)] = sel
        label = SCEN_NAME.get(scen, scen)
        done_sel = [a for a in sel.values() if not a.get("skipped")]
        if scen == "post" and done_sel:
            pb = done_sel[0]["post_bytes"]
            label = f"{pb // 1024} KiB POST" if pb % 1024 == 0 else f"{pb} B POST"
        print()
        print(f"== {label}, {w} worker{'s' if w != 1 else ''} ==")
        hdr = (f"{'proxy':<8} {'req/s':>8} {'p50':>8} {'p99':>8} {'CPU/req':>9} {'peak RSS':>9} "
               f"{'up-conns':>8} {'origin CPU/req':>14} {'other CPU':>9} {'errors':>7}")
        if rounds > 1:
            hdr += f"  {'CPU range':>14}"
        print(hdr)
        for p in PROXY_ORDER + sorted(set(sel) - set(PROXY_ORDER)):
            a = sel.get(p)
            if a is None:
                continue
            if a.get("skipped"):
                print(f"{p:<8} skipped: {a['skipped']}")
                continue
            bad = a["errors"] or a["bad_exit"]
            any_err |= bool(bad)
            line = (f"{p:<8} {a['rps']:>8.0f} {fmt_us(a['p50_us']):>8} {fmt_us(a['p99_us']):>8} "
                    f"{a['proxy_cpu_us_per_req']:>7.1f}us {a['proxy_hwm_kb'] / 1024:>7.1f}MB "
                    f"{a['upstream_conns']:>8} {a['origin_cpu_us_per_req']:>12.1f}us "
                    f"{a['other_cpu_pct']:>8.0f}% "
                    f"{(str(a['errors']) + (' !!!' if bad else '')):>7}")
            if rounds > 1:
                line += f"  {a['cpu_min']:>6.1f}..{a['cpu_max']:<6.1f}"
            if a["skipped_rounds"]:
                line += f"  ({a['skipped_rounds']} round(s) skipped)"
            if a["token_fetches"]:
                line += f"  ({a['token_fetches']} token request(s) during the measured run)"
            print(line)
        ok = {p: a for p, a in sel.items() if not a.get("skipped")}
        a = ok.get("appgw")
        others = [ok[p] for p in ("nginx", "haproxy") if p in ok]
        if a and others:
            def best(key, fn):
                b = fn(others, key=lambda r: r[key])
                return (a[key] / b[key] if b[key] else 0.0), b["proxy"]
            rr, rr_who = best("rps", max)
            cr, cr_who = best("proxy_cpu_us_per_req", min)
            pr, pr_who = best("p99_us", min)
            mr, mr_who = best("proxy_hwm_kb", min)
            # at a fixed load (RATE) req/s is set by wrk, so only CPU/req decides
            met = ((fixed or rr >= 1.0) and cr < 1.0 and not a["errors"] and not a["bad_exit"])
            print(f"appgw/best: req/s x{rr:.2f} ({rr_who})  CPU/req x{cr:.2f} ({cr_who})  "
                  f"p99 x{pr:.2f} ({pr_who})  RSS x{mr:.2f} ({mr_who})  "
                  f"target {'MET' if met else 'NOT met'}")
            summary.append((label, w, rr, cr, pr, met))
    if summary:
        print()
        if fixed:
            print("== appgw vs the best of nginx/HAProxy at a fixed load "
                  "(target: CPU/req ratio < 1.00; req/s is set by wrk) ==")
        else:
            print("== appgw vs the best of nginx/HAProxy "
                  "(target: req/s ratio >= 1.00 and CPU/req ratio < 1.00) ==")
        for label, w, rr, cr, pr, met in summary:
            print(f"{label:<12} workers={w}:  req/s x{rr:.2f}  CPU/req x{cr:.2f}  p99 x{pr:.2f}  "
                  f"{'MET' if met else 'NOT met'}")
    scenario_ratios(aggs, [k[1] for k in keys])
    if any_err:
        print()
        print("!!! SOME RUNS HAD ERRORS (errors column marked !!!): their figures are not valid !!!")
    return 0


def scenario_ratios(aggs, workers):
    """Each proxy's figures in one scenario divided by its own figures in the paired one."""
    def ratios(n, d, p):
        a, b = n.get(p), d.get(p)
        if not a or not b or a.get("skipped") or b.get("skipped"):
            return None
        f = lambda k: a[k] / b[k] if b[k] else 0.0
        bad = a["errors"] or a["bad_exit"] or b["errors"] or b["bad_exit"]
        return f("rps"), f("proxy_cpu_us_per_req"), f("p99_us"), bad

    out = []
    for num, den, what in SCEN_PAIRS:
        for w in dict.fromkeys(workers):
            n, d = aggs.get((num, w), {}), aggs.get((den, w), {})
            r = ratios(n, d, "appgw")
            if r is None:
                continue
            line = (f"{num + '/' + den:<13} workers={w}:  appgw req/s x{r[0]:.2f}  "
                    f"CPU/req x{r[1]:.2f}  p99 x{r[2]:.2f}{'  !!!' if r[3] else ''}")
            for p in ("nginx", "haproxy"):
                q = ratios(n, d, p)
                if q is not None:
                    line += f"  | {p} x{q[0]:.2f} x{q[1]:.2f}{' !!!' if q[3] else ''}"
            out.append(f"{line}   ({what})")
    if out:
        print()
        print("== appgw scenario ratios: figure in the first scenario / in the second, same proxy "
              "(nginx, haproxy: req/s and CPU/req, for reference) ==")
        print("\n".join(out))


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd = argv[1]
    if cmd == "sample":
        t, h, n = sample(argv[2:])
        print(t, h, n, sys_busy())
    elif cmd == "snap":
        # snap PROXY_PID ORIGIN_PID STUB_URL: one consistent sample for run.sh
        pt, phwm, pn = sample([argv[2]])
        ot, _, _ = sample([argv[3]])
        busy, now = sys_busy(), time.time()
        print(pt, phwm, pn, ot, busy, stub_accepts(argv[4]), f"{now:.6f}")
    elif cmd == "pids":
        print(" ".join(str(p) for p in tree(argv[2:])))
    elif cmd == "stub":
        print(stub_accepts(argv[2]))
    elif cmd == "record":
        record(argv[2], argv[3:])
    elif cmd == "skip":
        out, proxy, scen, workers, reason = argv[2:7]
        with open(out, "a") as f:
            f.write(json.dumps({"proxy": proxy, "scenario": scen, "workers": int(workers),
                                "skipped": reason}) + "\n")
    elif cmd == "table":
        return table(argv[2], argv[3] if len(argv) > 3 else "")
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
