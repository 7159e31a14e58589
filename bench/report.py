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
  report.py skip OUT PROXY SCENARIO WORKERS REASON [CONNECTIONS]   record a skipped run
  report.py table RESULTS.jsonl      print the tables, appgw's ratios to nginx/HAProxy, the
                                     ratios of proxy variants (appgw-nolog/appgw, ...) and
                                     appgw's ratios between scenarios (oauth/get, certgen/https)
  report.py chart RESULTS.jsonl OUT [COMMIT]
                                     write OUT.dat and OUT.gp and render OUT.png with gnuplot:
                                     req/s and CPU/req per scenario, a bar per proxy
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
    body = r.get("body_bytes", 0)
    if body and r.get("bytes") and r.get("duration_us"):
        # downloads: requests = bytes received / body size, so the bodies still in flight when
        # wrk stops count for what they moved (16 MiB x 1000 connections is most of a run)
        r["requests_completed"], r["rps_completed"] = r["requests"], r["rps"]
        r["requests"] = r["bytes"] / body
        r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    if r.get("bytes") and r.get("duration_us"):
        r["mb_per_s"] = r["bytes"] / r["duration_us"]  # MB (1e6 bytes) per second
    req = r["requests"]
    for who in ("proxy", "origin", "aux"):
        d = r.get(f"{who}_ticks1", 0) - r.get(f"{who}_ticks0", 0)
        r[f"{who}_cpu_us_per_req"] = (d / CLK_TCK * 1e6 / req) if req else 0.0
        r[f"{who}_cpu_s"] = d / CLK_TCK
    if "times0" in r and "times1" in r:
        r["wrk_cpu_s"] = times_children_s(r.pop("times1")) - times_children_s(r.pop("times0"))
    if "sys_busy0" in r and "wall0" in r:
        wall = float(r.pop("wall1")) - float(r.pop("wall0"))
        other = ((r.pop("sys_busy1") - r.pop("sys_busy0")) / CLK_TCK - r["proxy_cpu_s"]
                 - r["origin_cpu_s"] - r.get("aux_cpu_s", 0.0) - r.get("wrk_cpu_s", 0.0))
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


def fr(x):
    """A ratio as "x1.23"; "n/a" when it could not be computed (nan)."""
    return "n/a" if x != x else f"x{x:.2f}"


def fmt_us(us):
    if not us:
        return "-"  # no request completed in the run (a long download): wrk has no latency
    if us >= 1e6:
        return f"{us / 1e6:.2f}s"
    if us >= 1e3:
        return f"{us / 1e3:.2f}ms"
    return f"{us:.0f}us"


KIND_ORDER = ["appgw", "nginx", "haproxy"]
SCEN_NAME = {"get": "small GET", "post": "64 KiB POST", "dl1m": "1 MiB download",
             "dl16m": "16 MiB download", "oauth": "OAuth GET", "https": "HTTPS GET",
             "certgen": "CertGen GET", "https-h2": "HTTPS GET, h2 origin"}
# appgw scenario ratios: (route with credentials, the same route without them, what it measures)
SCEN_PAIRS = [("oauth", "get", "OAuth bearer token (cached) vs open route, both plain HTTP"),
              ("certgen", "https", "client certificate (CertificateGen) vs plain HTTPS route"),
              ("https-h2", "https", "HTTP/2 streams on one connection vs HTTP/1.1 pooling, HTTPS origin")]
# proxy variant ratios: (variant, the label it is compared with, what it measures); besides
# these, every other appgw-NAME is compared with appgw
VARIANT_PAIRS = [("appgw-log", "appgw-nolog", "access log on vs off (both --logLevel=info)"),
                 ("appgw-nolog", "appgw", "--logLevel=info --accessLog=false vs --logLevel=warn"),
                 ("appgw-log", "appgw", "access log on vs --logLevel=warn"),
                 ("appgw-egress", "appgw", "through squid (CONNECT tunnel / absolute form) vs direct"),
                 ("haproxy-splice", "haproxy", "option splice-auto vs without"),
                 ("haproxy-splice-response", "haproxy", "option splice-response vs without")]
VARIANT_LIMIT = 0.03  # issue 8: metrics + access log cost less than 3% of req/s and CPU/req


def kind(label):
    return label.split("-", 1)[0]


def proxy_sort_key(label):
    k = kind(label)
    return (KIND_ORDER.index(k) if k in KIND_ORDER else len(KIND_ORDER), label != k, label)


def scen_label(scen, post_bytes=65536):
    if scen == "post":
        return f"{post_bytes // 1024} KiB POST" if post_bytes % 1024 == 0 else f"{post_bytes} B POST"
    return SCEN_NAME.get(scen, scen)


def _median(xs):
    xs = sorted(xs)
    n = len(xs)
    if not n:
        return 0.0
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def aggregate(runs):
    """One row from the rounds of one (proxy, scenario, workers, connections): medians, errors
    summed."""
    ok = [r for r in runs if not r.get("skipped")]
    if not ok:
        return {"proxy": runs[0]["proxy"], "skipped": runs[-1]["skipped"]}
    a = {"proxy": ok[0]["proxy"], "n": len(ok), "skipped_rounds": len(runs) - len(ok)}
    for k in ("rps", "p50_us", "p99_us", "proxy_cpu_us_per_req", "origin_cpu_us_per_req",
              "proxy_hwm_kb", "other_cpu_pct", "mb_per_s", "aux_cpu_us_per_req"):
        a[k] = _median([r.get(k, 0) for r in ok])
    cpus = [r.get("proxy_cpu_us_per_req", 0) for r in ok]
    a["cpu_min"], a["cpu_max"] = min(cpus), max(cpus)
    a["upstream_conns"] = max(r.get("upstream_conns", -1) for r in ok)
    a["errors"] = sum(r["errors"] for r in ok)
    a["bad_exit"] = sum(1 for r in ok if r.get("wrk_rc", 0) or not r.get("proxy_alive", 1))
    a["post_bytes"] = ok[0].get("post_bytes", 65536)
    a["token_fetches"] = sum(r.get("token_fetches", 0) for r in ok)
    return a


def load(path):
    rows = [json.loads(l) for l in open(path) if l.strip()]
    for r in rows:
        r.setdefault("connections", 64)
    keys, aggs = [], {}
    for r in rows:
        k = (r["scenario"], r["workers"], r["connections"])
        if k not in keys:
            keys.append(k)
    for k in keys:
        by = {}
        for r in rows:
            if (r["scenario"], r["workers"], r["connections"]) == k:
                by.setdefault(r["proxy"], []).append(r)
        aggs[k] = {p: aggregate(rs) for p, rs in by.items()}
    return rows, keys, aggs


def appgw_vs_best(sel):
    """(appgw label, its row, the rows of nginx/HAProxy labels) of one table, or None."""
    ok = {p: a for p, a in sel.items() if not a.get("skipped")}
    mine = sorted((p for p in ok if kind(p) == "appgw"), key=proxy_sort_key)
    others = [ok[p] for p in sorted(ok, key=proxy_sort_key) if kind(p) in ("nginx", "haproxy")]
    if not mine or not others:
        return None
    return mine[0], ok[mine[0]], others


def group_label(scen, w, c, sel):
    done = [a for a in sel.values() if not a.get("skipped")]
    label = scen_label(scen, done[0]["post_bytes"] if done else 65536)
    return f"{label}, {w} worker{'s' if w != 1 else ''}, {c} conns"


def table(path, commit=""):
    rows, keys, aggs = load(path)
    if not rows:
        print("no results")
        return 1
    done = [r for r in rows if not r.get("skipped")]
    r0 = done[0] if done else {}
    rounds = max([r.get("round", 1) for r in done] or [1])
    fixed = any(r.get("delay_ms") for r in done)
    conns = sorted({r["connections"] for r in rows})
    print(f"appgw benchmark  commit {commit or r0.get('commit', '?')}  "
          f"wrk -t{r0.get('threads', '?')} -c{'/'.join(str(c) for c in conns)} "
          f"-d{r0.get('duration', '?')}s"
          f"{'  fixed load (RATE): wrk.lua waits between requests' if fixed else ''}"
          f"  rounds {rounds}  {os.cpu_count()} CPUs  "
          f"loadavg(1m) at the first run {r0.get('loadavg', '?')}")
    print("CPU/req: proxy user+sys CPU time per request, all its processes and threads "
          "(/proc/PID/stat)")
    print("peak RSS: sum of VmHWM over the proxy's processes; up-conns: new origin connections "
          "during warm-up+run (about -c when the pool is kept)")
    print("other CPU: CPU used meanwhile by anything but proxy, origin and wrk, in % of one "
          "core (noise; > ~10% makes the run doubtful)")
    if any(r.get("body_bytes") for r in done):
        print("downloads: req/s = bytes received / body size (bodies still in flight when wrk "
              "stops count for their part); MB/s = 1e6 bytes/s")
    if rounds > 1:
        print(f"each figure is the median of {rounds} rounds; CPU range = min..max over them")
    summary = []
    any_err = False
    for scen, w, c in keys:
        sel = aggs[(scen, w, c)]
        label = group_label(scen, w, c, sel)
        print()
        print(f"== {label} ==")
        pw = max([14] + [len(p) for p in sel])
        hdr = (f"{'proxy':<{pw}} {'req/s':>8} {'MB/s':>7} {'p50':>8} {'p99':>8} {'CPU/req':>9} "
               f"{'peak RSS':>9} {'up-conns':>8} {'origin CPU/req':>14} {'other CPU':>9} {'errors':>7}")
        if rounds > 1:
            hdr += f"  {'CPU range':>14}"
        print(hdr)
        for p in sorted(sel, key=proxy_sort_key):
            a = sel[p]
            if a.get("skipped"):
                print(f"{p:<{pw}} skipped: {a['skipped']}")
                continue
            bad = a["errors"] or a["bad_exit"]
            any_err |= bool(bad)
            line = (f"{p:<{pw}} {a['rps']:>8.0f} {a['mb_per_s']:>7.0f} {fmt_us(a['p50_us']):>8} "
                    f"{fmt_us(a['p99_us']):>8} "
                    f"{a['proxy_cpu_us_per_req']:>7.1f}us {a['proxy_hwm_kb'] / 1024:>7.1f}MB "
                    f"{a['upstream_conns']:>8} {a['origin_cpu_us_per_req']:>12.1f}us "
                    f"{a['other_cpu_pct']:>8.0f}% "
                    f"{(str(a['errors']) + (' !!!' if bad else '')):>7}")
            if rounds > 1:
                line += f"  {a['cpu_min']:>6.1f}..{a['cpu_max']:<6.1f}"
            if a["aux_cpu_us_per_req"]:
                line += f"  (squid CPU/req {a['aux_cpu_us_per_req']:.1f}us)"
            if a["skipped_rounds"]:
                line += f"  ({a['skipped_rounds']} round(s) skipped)"
            if a["token_fetches"]:
                line += f"  ({a['token_fetches']} token request(s) during the measured run)"
            print(line)
        vb = appgw_vs_best(sel)
        if vb:
            me, a, others = vb

            def best(key, fn):
                # a figure of 0 is "not measured" (no download completed: no latency)
                cand = [o for o in others if o[key]]
                if not cand or not a[key]:
                    return float("nan"), "n/a"
                b = fn(cand, key=lambda r: r[key])
                return a[key] / b[key], b["proxy"]
            rr, rr_who = best("rps", max)
            cr, cr_who = best("proxy_cpu_us_per_req", min)
            pr, pr_who = best("p99_us", min)
            mr, mr_who = best("proxy_hwm_kb", min)
            # at a fixed load (RATE) req/s is set by wrk, so only CPU/req decides
            met = ((fixed or rr >= 1.0) and cr < 1.0 and not a["errors"] and not a["bad_exit"])  # nan: False
            print(f"{me}/best: req/s {fr(rr)} ({rr_who})  CPU/req {fr(cr)} ({cr_who})  "
                  f"p99 {fr(pr)} ({pr_who})  RSS {fr(mr)} ({mr_who})  "
                  f"target {'MET' if met else 'NOT met'}")
            summary.append((label, rr, cr, pr, met))
        for line in variant_ratios(sel):
            print(line)
    if summary:
        print()
        if fixed:
            print("== appgw vs the best of nginx/HAProxy at a fixed load "
                  "(target: CPU/req ratio < 1.00; req/s is set by wrk) ==")
        else:
            print("== appgw vs the best of nginx/HAProxy "
                  "(target: req/s ratio >= 1.00 and CPU/req ratio < 1.00) ==")
        width = max(len(s[0]) for s in summary)
        for label, rr, cr, pr, met in summary:
            print(f"{label:<{width}}:  req/s {fr(rr)}  CPU/req {fr(cr)}  p99 {fr(pr)}  "
                  f"{'MET' if met else 'NOT met'}")
    scenario_ratios(aggs, keys)
    if any_err:
        print()
        print("!!! SOME RUNS HAD ERRORS (errors column marked !!!): their figures are not valid !!!")
    return 0


def variant_ratios(sel):
    """Lines "variant/base: req/s xA  CPU/req xB  p99 xC" for the variants measured in one table."""
    ok = {p: a for p, a in sel.items() if not a.get("skipped")}
    pairs = [(v, b, what) for v, b, what in VARIANT_PAIRS if v in ok and b in ok]
    named = {v for v, _, _ in VARIANT_PAIRS}
    pairs += [(v, "appgw", "APPGW_VARIANT_" + v[6:]) for v in sorted(ok)
              if kind(v) == "appgw" and v != "appgw" and v not in named and "appgw" in ok]
    out = []
    for v, b, what in pairs:
        n, d = ok[v], ok[b]
        f = lambda k: n[k] / d[k] if d[k] and n[k] else float("nan")
        bad = n["errors"] or n["bad_exit"] or d["errors"] or d["bad_exit"]
        line = (f"{v + '/' + b}: req/s {fr(f('rps'))}  CPU/req {fr(f('proxy_cpu_us_per_req'))}  "
                f"p99 {fr(f('p99_us'))}")
        if (v, b) == ("appgw-log", "appgw-nolog"):
            within = (abs(f("rps") - 1) < VARIANT_LIMIT
                      and abs(f("proxy_cpu_us_per_req") - 1) < VARIANT_LIMIT)
            line += f"  {'within' if within else 'NOT within'} {VARIANT_LIMIT:.0%}"
        out.append(f"{line}{'  !!!' if bad else ''}   ({what})")
    return out


def scenario_ratios(aggs, keys):
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
        for w, c in dict.fromkeys((k[1], k[2]) for k in keys):
            n, d = aggs.get((num, w, c), {}), aggs.get((den, w, c), {})
            r = ratios(n, d, "appgw")
            if r is None:
                continue
            line = (f"{num + '/' + den:<13} workers={w} conns={c}:  appgw req/s x{r[0]:.2f}  "
                    f"CPU/req x{r[1]:.2f}  p99 x{r[2]:.2f}{'  !!!' if r[3] else ''}")
            for p in sorted(set(n) & set(d), key=proxy_sort_key):
                if kind(p) == "appgw":
                    continue
                q = ratios(n, d, p)
                if q is not None:
                    line += f"  | {p} x{q[0]:.2f} x{q[1]:.2f}{' !!!' if q[3] else ''}"
            out.append(f"{line}   ({what})")
    if out:
        print()
        print("== appgw scenario ratios: figure in the first scenario / in the second, same proxy "
              "(nginx, haproxy: req/s and CPU/req, for reference) ==")
        print("\n".join(out))


def chart(path, out, commit=""):
    """OUT.dat + OUT.gp, rendered by gnuplot into OUT.png: two panels (req/s, CPU/req), a group
    of bars per (scenario, workers, connections), a bar per proxy, appgw's ratio to the best of
    nginx/HAProxy written over its bar. Without gnuplot, one line says why there is no chart."""
    import shutil
    import subprocess
    rows, keys, aggs = load(path)
    groups = [k for k in keys if any(not a.get("skipped") for a in aggs[k].values())]
    if not groups:
        print("no chart: no completed runs")
        return 0
    gp_bin = shutil.which("gnuplot")
    if not gp_bin:
        print("no chart: gnuplot is not installed (apt-get install gnuplot-nox, or bash "
              "scripts/setup.sh); the table above has the same figures")
        return 0
    labels = sorted({p for k in groups for p, a in aggs[k].items() if not a.get("skipped")},
                    key=proxy_sort_key)
    n = len(labels)
    dat, gp, png = out + ".dat", out + ".gp", out + ".png"
    ann = []  # x, rps, cpu, "xR", "xC" over appgw's bar
    vals = {"rps": [], "proxy_cpu_us_per_req": []}
    with open(dat, "w") as f:
        for i, p in enumerate(labels):
            f.write(f"# {p}: x req/s cpu_us_per_req\n")
            for g, k in enumerate(groups):
                a = aggs[k].get(p)
                if not a or a.get("skipped"):
                    continue
                x = g * (n + 1) + i + 1
                f.write(f"{x} {a['rps']:.3f} {a['proxy_cpu_us_per_req']:.3f}\n")
                for key in vals:
                    if a[key] > 0:
                        vals[key].append(a[key])
                vb = appgw_vs_best(aggs[k])
                if vb and vb[0] == p:
                    b_r = max(o["rps"] for o in vb[2])
                    b_c = min(o["proxy_cpu_us_per_req"] for o in vb[2])
                    ann.append((x, a["rps"], a["proxy_cpu_us_per_req"],
                                f"x{a['rps'] / b_r:.2f}" if b_r else "",
                                f"x{a['proxy_cpu_us_per_req'] / b_c:.2f}" if b_c else ""))
            f.write("\n\n")
        f.write("# appgw/best ratios: x req/s cpu rps_ratio cpu_ratio\n")
        for x, r, c, rr, cr in ann:
            f.write(f"{x} {r:.3f} {c:.3f} {rr or '-'} {cr or '-'}\n")
        if not ann:
            f.write("0 1 1 - -\n")

    def esc(t):
        return t.replace("\\", "\\\\").replace('"', '\\"')

    tics = []
    for g, (scen, w, c) in enumerate(groups):
        sel = aggs[(scen, w, c)]
        done = [a for a in sel.values() if not a.get("skipped")]
        name = scen_label(scen, done[0]["post_bytes"] if done else 65536)
        # one line per part of a long name ("HTTPS GET, h2 origin"): neighbours do not overlap
        tics.append(f'"{esc(name).replace(", ", chr(92) + "n")}\\n{w}w {c}c" {g * (n + 1) + (n + 1) / 2:.1f}')

    def axis(key):
        v = vals[key]
        if v and max(v) / min(v) > 20:  # scenarios differ by orders of magnitude: log scale
            lo = 10 ** (len(str(int(min(v) / 2))) - 1) if min(v) >= 2 else min(v) / 2
            return f"set logscale y\nset yrange [{lo:g}:*]\n", f"{lo:g}"
        return "unset logscale y\nset yrange [0:*]\n", "0"

    rounds = max([r.get("round", 1) for r in rows if not r.get("skipped")] or [1])
    title = (f"appgw benchmark, commit {commit or rows[0].get('commit', '?')}, "
             f"{rounds} round{'s' if rounds > 1 else ''} (medians); x = appgw / best of nginx, HAProxy")
    width = max(900, 120 + len(groups) * (n + 1) * 24)
    lines = [f'set output "{esc(png)}"',
             f'set multiplot layout 2,1 title "{esc(title)}"',
             "set style fill solid 0.85 border -1",
             "set grid ytics",
             "set bmargin 5",
             "set key outside right top vertical",
             f"set xrange [0:{len(groups) * (n + 1)}]",
             f"set xtics ({', '.join(tics)}) scale 0 font \",8\"",
             f'names = "{" ".join(labels)}"']
    for key, ylabel, col, acol in (("rps", "req/s (higher is better)", 2, 4),
                                   ("proxy_cpu_us_per_req", "CPU us/request (lower is better)", 3, 5)):
        scale, lo = axis(key)
        lines += [scale.rstrip("\n"), f'set ylabel "{ylabel}"',
                  f"plot for [k=0:{n - 1}] \"{esc(dat)}\" index k using 1:{col}:($1-0.45):($1+0.45):({lo}):{col} "
                  "with boxxyerror lc k+1 title word(names, k+1), "
                  f"\"{esc(dat)}\" index {n} using 1:{col}:{acol} with labels offset 0,0.8 font \",8\" notitle"]
    lines.append("unset multiplot")
    body = "\n".join(lines) + "\n"
    height = 760
    err = ""
    for term in (f"pngcairo size {width},{height} font \"sans,9\"", f"png size {width},{height}"):
        with open(gp, "w") as f:
            f.write(f"set terminal {term}\n" + body)
        res = subprocess.run([gp_bin, gp], capture_output=True, text=True, timeout=60)
        if res.returncode == 0 and os.path.exists(png) and os.path.getsize(png) > 0:
            print(f"chart: {png} (gnuplot script {gp}, data {dat})")
            return 0
        err = res.stderr.strip()
    print(f"no chart: gnuplot failed: {err[-500:]}")
    return 0


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
        conns = int(argv[7]) if len(argv) > 7 else 64
        with open(out, "a") as f:
            f.write(json.dumps({"proxy": proxy, "scenario": scen, "workers": int(workers),
                                "connections": conns, "skipped": reason}) + "\n")
    elif cmd == "table":
        return table(argv[2], argv[3] if len(argv) > 3 else "")
    elif cmd == "chart":
        return chart(argv[2], argv[3], argv[4] if len(argv) > 4 else "")
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
