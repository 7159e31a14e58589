"""Issue 8: deploy/grafana/appgw-dashboard.json only queries metrics a real appgw exposes."""
import json
import os
import re

import pytest

import helpers as H
import kube_helpers as K

DASHBOARD = os.path.join(os.path.dirname(__file__), "..", "..", "deploy", "grafana", "appgw-dashboard.json")


def _queries(doc):
    out = [t["expr"] for p in doc["panels"] for t in p.get("targets", [])]
    out += [v["query"] for v in doc["templating"]["list"] if v.get("type") == "query"]
    return out


def _names(text):
    """Metric names that appear in a /metrics scrape (samples only)."""
    return {m.group(1) for m in re.finditer(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", text, re.M)}


@pytest.fixture(scope="module")
def kube_scrape(tmp_path_factory, certs, auth_certs, upstream):
    kube = K.KubeAPI(str(tmp_path_factory.mktemp("kubeapi-dash")), certs, auth_certs)
    try:
        kube.apply(K.echo_app("dash", upstream))
        d = str(tmp_path_factory.mktemp("kube-dash"))
        kc = K.write_kubeconfig(os.path.join(d, "kubeconfig"), kube.url(), ca_file=certs["ca.pem"], token=K.TOKEN_A)
        gw = K.start_gateway(d, flags={"kubeConfig": kc})
        try:
            gw.wait_ready()
            yield H.http(gw.admin, "GET", "/metrics").body.decode()
        finally:
            gw.close()
    finally:
        kube.stop()


def test_dashboard_queries_only_exposed_metrics(main_gw, kube_scrape):
    with open(DASHBOARD) as f:
        doc = json.load(f)
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for p in doc["panels"]:
        if p["type"] != "row":
            assert p.get("targets"), p["title"]
    # traffic of every kind first, so that labelled series exist
    for path in ("/e2e/echo/x", "/e2e/no-such-service/x"):
        H.get(main_gw.proxy, path)
    exposed = _names(H.http(main_gw.admin, "GET", "/metrics").body.decode()) | _names(kube_scrape)
    used = set()
    for q in _queries(doc):
        used |= set(re.findall(r"\b((?:appgw|process)_[a-z0-9_]+)\b", q))
    assert len(used) >= 25, sorted(used)
    missing = sorted(used - exposed)
    assert not missing, "the dashboard queries metrics appgw does not expose: %s" % missing
    assert "appgw_kubernetes_api_up 1" in kube_scrape
