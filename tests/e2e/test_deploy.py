"""deploy/: the container image recipe and the Kubernetes manifests, checked offline.

No container engine and no cluster here, so:
- the manifests are rendered with `kubectl kustomize` (the kubectl on PATH, or $KUBECTL; Debian's
  kubernetes-client 1.20 renders them as well as current ones) and the objects are checked
  against the original's (../shared/reference/original-deployment.md): kinds, names, labels,
  ports, selector, probes, RBAC verbs, args, security context, grace, HPA/PDB/spread;
- the args of the original's Deployment are run through the built binary (APPGW_BIN);
- deploy/Dockerfile is parsed for what Kubernetes relies on (no ENTRYPOINT, CMD, USER, ...),
  its build stage's script (deploy/build-in-image.sh) is run for the step that makes /app, and
  the shared libraries the binary needs are checked to come from deploy/runtime-packages.txt.
Each manifest check is also run against deliberately broken copies, where it must fail.
"""
import os
import re
import shutil
import subprocess

import pytest

import helpers as H

yaml = pytest.importorskip("yaml", reason="python3-yaml (Debian) is needed to read kustomize output")

DEPLOY = os.path.join(H.REPO, "deploy")
KDIR = os.path.join(DEPLOY, "kubernetes")
BASE = "base"
OVERLAY = os.path.join("overlays", "replace-original")
KUBECTL = os.environ.get("KUBECTL", "kubectl")

NAME = "central-application-gateway"
NS = "kyma-system"
ROLE = NAME + "-role"
BINDING = NAME + "-rolebinding"
PRIORITY_CLASS = NAME + "-priority-class"
ORIGINAL_IMAGE = "europe-docker.pkg.dev/kyma-project/prod/central-application-gateway"
SELECTOR = {"app": NAME, "release": "application-connector"}
COMMON_LABELS = dict(SELECTOR, **{
    "kyma-project.io/module": "application-connector",
    "app.kubernetes.io/name": NAME,
    "app.kubernetes.io/part-of": "application-connector-manager",
})
POD_LABELS = dict(SELECTOR, **{
    "kyma-project.io/module": "application-connector",
    "app.kubernetes.io/part-of": "application-connector-manager",
})
ORIGINAL_ARGS = [
    "/app/applicationgateway", "--proxyPort=8080", "--proxyPortCompass=8082",
    "--externalAPIPort=8081", "--logLevel=info", "--applicationSecretsNamespace=kyma-system",
    "--requestTimeout=10", "--proxyTimeout=10", "--proxyCacheTTL=120",
]
PORTS = {"http-proxy": 8080, "http-api-port": 8081, "http-proxy-mps": 8082}
# Objects of the original, CRD aside (the Kyma module's, not ours).
ORIGINAL_OBJECTS = {
    ("ServiceAccount", NAME), ("ClusterRole", ROLE), ("ClusterRoleBinding", BINDING),
    ("Service", NAME), ("Deployment", NAME), ("HorizontalPodAutoscaler", NAME),
    ("PriorityClass", PRIORITY_CLASS),
}
CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding", "PriorityClass"}
API_VERSIONS = {
    "ServiceAccount": "v1", "Service": "v1", "Deployment": "apps/v1",
    "ClusterRole": "rbac.authorization.k8s.io/v1", "ClusterRoleBinding": "rbac.authorization.k8s.io/v1",
    "HorizontalPodAutoscaler": "autoscaling/v2", "PodDisruptionBudget": "policy/v1",
    "PriorityClass": "scheduling.k8s.io/v1",
}
# Packages debian:12-slim itself ships that a binary may link directly.
SLIM_BASE = {"libc6", "libgcc-s1"}


# --------------------------------------------------------------------------- helpers

def need_kubectl():
    if shutil.which(KUBECTL) is None:
        pytest.skip("no kubectl on PATH (scripts/setup.sh installs Debian's kubernetes-client)")


def render(kdir):
    """kubectl kustomize KDIR -> list of objects."""
    need_kubectl()
    r = subprocess.run([KUBECTL, "kustomize", kdir], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, "kubectl kustomize %s failed:\n%s" % (kdir, r.stderr)
    objs = [d for d in yaml.safe_load_all(r.stdout) if d]
    assert objs, "kubectl kustomize %s rendered nothing" % kdir
    return objs


def by_kind(objs, kind, name=NAME):
    found = [o for o in objs if o.get("kind") == kind and o["metadata"].get("name") == name]
    assert len(found) == 1, "expected one %s %s, found %d" % (kind, name, len(found))
    return found[0]


def container(objs):
    dep = by_kind(objs, "Deployment")
    cs = dep["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in cs] == [NAME], "the pod must have one container named %s" % NAME
    return cs[0]


def qty(v):
    """Kubernetes quantity -> float (CPU in cores, memory in bytes)."""
    v = str(v)
    units = {"m": 1e-3, "Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "k": 1e3, "M": 1e6, "G": 1e9}
    for u in sorted(units, key=len, reverse=True):
        if v.endswith(u):
            return float(v[:-len(u)]) * units[u]
    return float(v)


def run_bin(args, timeout=20):
    b = H.appgw_bin()
    if not os.path.exists(b):
        pytest.fail("gateway binary %s does not exist (build it, or set APPGW_BIN)" % b)
    return subprocess.run([b] + args, capture_output=True, text=True, timeout=timeout)


_HELP = {}


def appgw_flags():
    """{flag name: default text} from `appgw --help`."""
    if not _HELP:
        r = run_bin(["--help"])
        assert r.returncode == 0, r.stderr
        for line in (r.stdout + r.stderr).splitlines():
            m = re.match(r"\s+-(\w+)\s.*?(?:\(default (.*)\))?\s*$", line)
            if m:
                _HELP[m.group(1)] = m.group(2)
        assert "proxyPort" in _HELP and "shutdownGrace" in _HELP, "unexpected --help output"
    return _HELP


def shutdown_grace(args):
    g = int(appgw_flags()["shutdownGrace"])
    for a in args:
        m = re.match(r"--?shutdownGrace=(\d+)$", a)
        if m:
            g = int(m.group(1))
    return g


# --------------------------------------------------------------------------- manifest checks
# Each takes the rendered objects and the flavour ("base" or "overlay") and asserts.

def check_objects(objs, flavour):
    keys = [(o["kind"], o["metadata"]["name"]) for o in objs]
    assert len(keys) == len(set(keys)), "duplicate objects: %r" % keys
    want = set(ORIGINAL_OBJECTS)
    if flavour == "base":
        want.add(("PodDisruptionBudget", NAME))
    assert set(keys) == want, "objects differ from the original's: extra %r, missing %r" % (
        sorted(set(keys) - want), sorted(want - set(keys)))
    for o in objs:
        kind, md = o["kind"], o["metadata"]
        assert o["apiVersion"] == API_VERSIONS[kind], "%s apiVersion %s" % (kind, o["apiVersion"])
        if kind in CLUSTER_SCOPED:
            assert "namespace" not in md, "%s is cluster-scoped" % kind
        else:
            assert md.get("namespace") == NS, "%s %s must be in %s" % (kind, md["name"], NS)
        labels = md.get("labels") or {}
        want_labels = {"kyma-project.io/module": "application-connector"} if kind == "PriorityClass" \
            else COMMON_LABELS
        for k, v in want_labels.items():
            assert labels.get(k) == v, "%s %s: label %s=%r, want %r" % (kind, md["name"], k, labels.get(k), v)


def check_service(objs, flavour):
    svc = by_kind(objs, "Service")["spec"]
    assert svc.get("type", "ClusterIP") == "ClusterIP"
    got = {p["name"]: p["port"] for p in svc["ports"]}
    assert got == PORTS, "Service ports %r, want %r" % (got, PORTS)
    for p in svc["ports"]:
        assert p.get("protocol", "TCP") == "TCP"
        assert p.get("targetPort", p["port"]) in (p["port"], p["name"]), "targetPort of %s" % p["name"]
    assert svc["selector"] == SELECTOR, "Service selector %r" % svc["selector"]
    pod_labels = by_kind(objs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert all(pod_labels.get(k) == v for k, v in svc["selector"].items()), "Service selects no pod"


def check_deployment(objs, flavour):
    dep = by_kind(objs, "Deployment")["spec"]
    assert "replicas" not in dep, "replicas belongs to the HPA"
    assert dep["strategy"]["type"] == "RollingUpdate"
    assert dep["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert dep["selector"] == {"matchLabels": SELECTOR}, "selector (immutable) must be the original's"
    tmpl = dep["template"]
    assert tmpl["metadata"]["labels"] == POD_LABELS, "pod labels %r" % tmpl["metadata"]["labels"]
    assert tmpl["metadata"]["annotations"].get("sidecar.istio.io/inject") == "true"
    spec = tmpl["spec"]
    assert spec["serviceAccountName"] == NAME
    assert spec["priorityClassName"] == PRIORITY_CLASS
    by_kind(objs, "PriorityClass", PRIORITY_CLASS)
    by_kind(objs, "ServiceAccount", spec["serviceAccountName"])
    assert spec.get("automountServiceAccountToken", True), "appgw needs the service-account token"
    c = container(objs)
    assert "command" not in c, "command would replace the image's CMD differently from the original"
    got = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert got == PORTS, "container ports %r" % got
    for p in by_kind(objs, "Service")["spec"]["ports"]:
        tp = p.get("targetPort", p["port"])
        assert tp in got.values() or tp in got, "Service port %s has no container port" % p["name"]


def check_args(objs, flavour):
    args = container(objs)["args"]
    assert args == ORIGINAL_ARGS, "args must be the original's exactly: %r" % args
    check_args_known(args)


def check_args_known(args):
    """Every flag is one appgw knows, and appgw accepts the whole command line."""
    assert args[0] == "/app/applicationgateway"
    known = appgw_flags()
    for a in args[1:]:
        m = re.match(r"--?(\w+)(=.*)?$", a)
        assert m, "not a flag: %r" % a
        assert m.group(1) in known, "flag %s unknown to appgw (--help)" % m.group(1)
    # appgw parses left to right and stops at --help: exit 0 means every earlier flag and
    # value was accepted.
    r = run_bin(args[1:] + ["--help"])
    assert r.returncode == 0, "appgw refuses the args: %s" % r.stderr.strip()


def probe_port(c, probe):
    port = probe["httpGet"]["port"]
    if isinstance(port, str):
        port = {p["name"]: p["containerPort"] for p in c["ports"]}.get(port, port)
    return port


def check_probes(objs, flavour):
    c = container(objs)
    live, ready = c["livenessProbe"], c["readinessProbe"]
    assert live["httpGet"]["path"] == "/v1/health", "liveness: %r" % live
    assert ready["httpGet"]["path"] == "/v1/ready", "readiness: %r" % ready
    for p in (live, ready):
        assert probe_port(c, p) == 8081, "probe on the admin port 8081: %r" % p
        assert p["httpGet"].get("scheme", "HTTP") == "HTTP"
    assert "startupProbe" not in c or c["startupProbe"]["httpGet"]["path"] == "/v1/health"


def check_rbac(objs, flavour):
    role = by_kind(objs, "ClusterRole", ROLE)
    want = {("applicationconnector.kyma-project.io", "applications"), ("", "secrets")}
    verbs = {}
    for rule in role["rules"]:
        assert "nonResourceURLs" not in rule and "resourceNames" not in rule
        for g in rule["apiGroups"]:
            for r in rule["resources"]:
                verbs.setdefault((g, r), set()).update(rule["verbs"])
    assert set(verbs) == want, "rules cover %r, want %r" % (sorted(verbs), sorted(want))
    for k, v in verbs.items():
        assert v == {"get", "list", "watch"}, "%s/%s verbs %r: want get, list, watch (and no more)" % (k + (v,))
    b = by_kind(objs, "ClusterRoleBinding", BINDING)
    assert b["roleRef"] == {"kind": "ClusterRole", "name": ROLE, "apiGroup": "rbac.authorization.k8s.io"}
    assert b["subjects"] == [{"kind": "User", "name": "system:serviceaccount:%s:%s" % (NS, NAME),
                              "apiGroup": "rbac.authorization.k8s.io"}], "subjects %r" % b["subjects"]


def check_security(objs, flavour):
    c = container(objs)
    sc = c["securityContext"]
    assert sc.get("runAsUser") == 1000
    assert sc.get("runAsNonRoot") is True
    assert sc.get("privileged") is False
    assert sc.get("allowPrivilegeEscalation") is False
    assert sc.get("readOnlyRootFilesystem") is True
    assert "ALL" in (sc.get("capabilities") or {}).get("drop", []), "capabilities must drop ALL"
    assert not (sc.get("capabilities") or {}).get("add"), "no capability added"
    pod_sc = by_kind(objs, "Deployment")["spec"]["template"]["spec"].get("securityContext") or {}
    assert pod_sc.get("runAsUser", 1000) == 1000 and "runAsNonRoot" not in pod_sc, \
        "pod-level context would also bind Istio's init container"
    assert not c.get("volumeMounts"), "appgw needs no writable volume"


def check_grace(objs, flavour):
    spec = by_kind(objs, "Deployment")["spec"]["template"]["spec"]
    c = container(objs)
    pre = 0
    hook = (c.get("lifecycle") or {}).get("preStop")
    if hook:
        cmd = hook["exec"]["command"]
        assert cmd[0] == "/bin/sleep" and len(cmd) == 2, "preStop: %r (the image has /bin/sleep)" % cmd
        pre = float(cmd[1])
    grace = spec.get("terminationGracePeriodSeconds", 30)
    need = pre + shutdown_grace(c["args"])
    assert grace > need, "terminationGracePeriodSeconds %s <= preStop %s + --shutdownGrace" % (grace, pre)


def check_resources(objs, flavour):
    res = container(objs)["resources"]
    req, lim = res["requests"], res["limits"]
    assert qty(lim["cpu"]) == 0.5 and qty(lim["memory"]) == 128 * 2 ** 20, "limits as the original's"
    assert qty(req["cpu"]) == 0.02, "CPU request as the original's"
    # appgw measured ~10-15 MiB RSS idle: at least twice that requested, within the limit.
    assert 32 * 2 ** 20 <= qty(req["memory"]) <= qty(lim["memory"])
    if flavour == "base":
        assert qty(req["memory"]) == 32 * 2 ** 20, "base requests what was measured (32Mi)"


def check_scaling(objs, flavour):
    hpa = by_kind(objs, "HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": NAME}
    assert hpa["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}], hpa["metrics"]
    assert hpa["minReplicas"] >= 2
    assert hpa["maxReplicas"] >= hpa["minReplicas"]
    if flavour == "base":
        assert hpa["maxReplicas"] > 2, "appgw scales past the original's 2"
        pdb = by_kind(objs, "PodDisruptionBudget")["spec"]
        assert pdb["selector"] == {"matchLabels": SELECTOR}
        assert 1 <= pdb["minAvailable"] < hpa["minReplicas"], "minAvailable must leave drains possible"
    spec = by_kind(objs, "Deployment")["spec"]["template"]["spec"]
    zone = [t for t in spec.get("topologySpreadConstraints", [])
            if t["topologyKey"] == "topology.kubernetes.io/zone"]
    assert zone == [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                     "whenUnsatisfiable": "ScheduleAnyway",
                     "labelSelector": {"matchLabels": {"app": NAME}}}], "zone spread as the original's"
    for t in spec["topologySpreadConstraints"]:
        assert t["whenUnsatisfiable"] == "ScheduleAnyway", "a hard spread could block scaling"
    pc = by_kind(objs, "PriorityClass", PRIORITY_CLASS)
    assert pc["value"] == 2000000 and pc.get("globalDefault", False) is False


def kustomization_image(kdir, name):
    k = yaml.safe_load(open(os.path.join(kdir, "kustomization.yaml")))
    for img in k.get("images", []):
        if img["name"] == name:
            return "%s:%s" % (img.get("newName", name), img["newTag"]) if "newTag" in img \
                else img.get("newName", name)
    return None


def check_image(objs, flavour, kroot=KDIR):
    img = container(objs)["image"]
    assert not img.startswith(ORIGINAL_IMAGE), "still the original's image: %s" % img
    if flavour == "overlay":
        assert img == kustomization_image(os.path.join(kroot, OVERLAY), ORIGINAL_IMAGE), img
    else:
        assert img == kustomization_image(os.path.join(kroot, BASE), "appgw"), img


CHECKS = [check_objects, check_service, check_deployment, check_args, check_probes, check_rbac,
          check_security, check_grace, check_resources, check_scaling, check_image]


# --------------------------------------------------------------------------- manifest tests

@pytest.fixture(scope="module")
def base_objs():
    return render(os.path.join(KDIR, BASE))


@pytest.fixture(scope="module")
def overlay_objs():
    return render(os.path.join(KDIR, OVERLAY))


@pytest.fixture(scope="module")
def original_objs():
    """The existing install's objects the overlay starts from."""
    with open(os.path.join(KDIR, OVERLAY, "original-install.yaml")) as f:
        return [d for d in yaml.safe_load_all(f) if d]


@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__ for c in CHECKS])
def test_base(base_objs, check):
    check(base_objs, "base")


@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__ for c in CHECKS])
def test_overlay(overlay_objs, check):
    check(overlay_objs, "overlay")


def test_original_install_is_the_original(original_objs):
    """The overlay's starting point is the original as documented (get-only role, /v1/health
    readiness, the original's image and args), so the overlay's diff is what appgw needs."""
    assert {(o["kind"], o["metadata"]["name"]) for o in original_objs} == ORIGINAL_OBJECTS
    check_objects(original_objs, "overlay")
    check_service(original_objs, "overlay")
    c = container(original_objs)
    assert c["image"].split(":")[0] == ORIGINAL_IMAGE
    assert c["args"] == ORIGINAL_ARGS
    assert c["readinessProbe"]["httpGet"]["path"] == "/v1/health"
    for rule in by_kind(original_objs, "ClusterRole", ROLE)["rules"]:
        assert rule["verbs"] == ["get"]
    hpa = by_kind(original_objs, "HorizontalPodAutoscaler")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 2)


def strip_changes(o):
    """An object without the fields appgw changes on purpose."""
    o = yaml.safe_load(yaml.safe_dump(o))
    o["metadata"].get("labels", {}).pop("app.kubernetes.io/managed-by", None)
    if o["kind"] == "ClusterRole":
        o.pop("rules")
    if o["kind"] == "Deployment":
        spec = o["spec"]["template"]["spec"]
        for k in ("terminationGracePeriodSeconds", "topologySpreadConstraints"):
            spec.pop(k, None)
        for c in spec["containers"]:
            for k in ("image", "readinessProbe", "lifecycle", "securityContext", "resources"):
                c.pop(k, None)
    return o


def test_overlay_changes_only_what_appgw_needs(overlay_objs, original_objs):
    orig = {(o["kind"], o["metadata"]["name"]): o for o in original_objs}
    for o in overlay_objs:
        key = (o["kind"], o["metadata"]["name"])
        assert strip_changes(o) == strip_changes(orig[key]), "overlay changed more than needed in %r" % (key,)
    dep, odep = by_kind(overlay_objs, "Deployment"), by_kind(original_objs, "Deployment")
    assert dep["metadata"]["labels"] == odep["metadata"]["labels"]
    assert dep["spec"]["template"]["spec"]["topologySpreadConstraints"] == \
        odep["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert container(overlay_objs)["resources"] == container(original_objs)["resources"]


def test_base_is_the_original_object_for_object(base_objs, original_objs):
    """Applying the base over an existing install updates the original's objects in place: same
    keys, labels, selector (immutable), ports, args, binding, HPA metric, priority."""
    base = {(o["kind"], o["metadata"]["name"]): o for o in base_objs}
    for o in original_objs:
        key = (o["kind"], o["metadata"]["name"])
        assert key in base, "base lacks the original's %r" % (key,)
        b = base[key]
        assert b["apiVersion"] == o["apiVersion"]
        assert b["metadata"].get("namespace") == o["metadata"].get("namespace")
        want = dict(o["metadata"].get("labels") or {})
        want.pop("app.kubernetes.io/managed-by", None)  # not managed by the module any more
        assert {k: v for k, v in (b["metadata"].get("labels") or {}).items() if k in want} == want, key
    for key in [("Service", NAME), ("ClusterRoleBinding", BINDING)]:
        strip = lambda x: {k: v for k, v in x.items() if k != "metadata"}  # noqa: E731
        assert strip(base[key]) == strip([o for o in original_objs if (o["kind"], o["metadata"]["name"]) == key][0])
    b, o = base[("Deployment", NAME)]["spec"], by_kind(original_objs, "Deployment")["spec"]
    assert b["selector"] == o["selector"] and b["strategy"] == o["strategy"]
    assert b["template"]["metadata"] == o["template"]["metadata"]
    bc, oc = container(base_objs), container(original_objs)
    for k in ("name", "args", "ports", "livenessProbe"):
        assert bc[k] == oc[k], k
    bh, oh = base[("HorizontalPodAutoscaler", NAME)]["spec"], by_kind(original_objs, "HorizontalPodAutoscaler")["spec"]
    assert bh["metrics"] == oh["metrics"] and bh["scaleTargetRef"] == oh["scaleTargetRef"]
    bp, op = base[("PriorityClass", PRIORITY_CLASS)], by_kind(original_objs, "PriorityClass", PRIORITY_CLASS)
    assert (bp["value"], bp.get("globalDefault")) == (op["value"], op.get("globalDefault"))


def test_flag_check_catches_unknown_or_bad_flags():
    check_args_known(ORIGINAL_ARGS)
    for bad in (["--noSuchFlag=1"], ["--proxyPort=http"], ["-logLevel=loud"]):
        with pytest.raises(AssertionError):
            check_args_known(ORIGINAL_ARGS + bad)


# (flavour, file under deploy/kubernetes, text, replacement, check that must fail)
MUTATIONS = [
    ("base", "base/serviceaccount.yaml", "app.kubernetes.io/part-of: application-connector-manager",
     "app.kubernetes.io/part-of: appgw", check_objects),
    ("base", "base/priorityclass.yaml", "name: central-application-gateway-priority-class",
     "name: appgw-priority", check_objects),
    ("base", "base/service.yaml", "name: http-proxy-mps", "name: http-proxy-compass", check_service),
    ("base", "base/service.yaml", "port: 8082", "port: 8083", check_service),
    ("base", "base/deployment.yaml", 'sidecar.istio.io/inject: "true"', 'sidecar.istio.io/inject: "false"',
     check_deployment),
    ("base", "base/deployment.yaml", "- name: central-application-gateway", "- name: appgw", check_deployment),
    ("base", "base/deployment.yaml", "containerPort: 8082", "containerPort: 9082", check_deployment),
    ("base", "base/deployment.yaml", "maxUnavailable: 0", "maxUnavailable: 1", check_deployment),
    ("base", "base/deployment.yaml", "- --proxyCacheTTL=120", "- --proxyCacheTtl=120", check_args),
    ("base", "base/deployment.yaml", "path: /v1/ready", "path: /v1/health", check_probes),
    ("base", "base/deployment.yaml", "path: /v1/health", "path: /healthz", check_probes),
    ("base", "base/deployment.yaml", "port: 8081", "port: 8080", check_probes),
    ("base", "base/rbac.yaml", 'verbs: ["get", "list", "watch"]', 'verbs: ["get", "list"]', check_rbac),
    ("base", "base/rbac.yaml", "kind: User", "kind: Group", check_rbac),
    ("base", "base/deployment.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false",
     check_security),
    ("base", "base/deployment.yaml", "runAsUser: 1000", "runAsUser: 0", check_security),
    ("base", "base/deployment.yaml", 'drop: ["ALL"]', 'drop: ["NET_RAW"]', check_security),
    ("base", "base/deployment.yaml", "terminationGracePeriodSeconds: 45", "terminationGracePeriodSeconds: 30",
     check_grace),
    ("base", "base/deployment.yaml", 'command: ["/bin/sleep", "5"]', 'command: ["/bin/sleep", "20"]',
     check_grace),
    ("base", "base/deployment.yaml", "memory: 128Mi", "memory: 1Gi", check_resources),
    ("base", "base/deployment.yaml", "memory: 32Mi", "memory: 8Mi", check_resources),
    ("base", "base/hpa.yaml", "averageUtilization: 80", "averageUtilization: 50", check_scaling),
    ("base", "base/hpa.yaml", "maxReplicas: 10", "maxReplicas: 2", check_scaling),
    ("base", "base/pdb.yaml", "minAvailable: 1", "minAvailable: 2", check_scaling),
    ("base", "base/deployment.yaml", "topologyKey: topology.kubernetes.io/zone",
     "topologyKey: topology.kubernetes.io/region", check_scaling),
    ("base", "base/kustomization.yaml", "newTag: dev", "newTag: other", None),  # image follows kustomization
    ("base", "base/deployment.yaml", "image: appgw", "image: %s" % ORIGINAL_IMAGE, check_image),
    ("overlay", "overlays/replace-original/kustomization.yaml", "- name: europe-docker.pkg.dev",
     "- name: example.org", check_image),
    ("overlay", "overlays/replace-original/kustomization.yaml", "  - clusterrole-patch.yaml\n", "", check_rbac),
    ("overlay", "overlays/replace-original/deployment-patch.yaml", "path: /v1/ready", "path: /v1/health",
     check_probes),
    ("overlay", "overlays/replace-original/deployment-patch.yaml", "terminationGracePeriodSeconds: 45",
     "terminationGracePeriodSeconds: 35", check_grace),
    ("overlay", "overlays/replace-original/deployment-patch.yaml", "readOnlyRootFilesystem: true",
     "readOnlyRootFilesystem: false", check_security),
    ("overlay", "overlays/replace-original/original-install.yaml", '            - "--logLevel=info"\n', "",
     check_args),
    ("overlay", "overlays/replace-original/original-install.yaml", "name: central-application-gateway-rolebinding",
     "name: appgw-rolebinding", check_objects),
]


@pytest.mark.parametrize("flavour,path,old,new,check", MUTATIONS,
                         ids=["%s:%s" % (m[1].split("/")[-1], m[4].__name__ if m[4] else "pass") + "-%d" % i
                              for i, m in enumerate(MUTATIONS)])
def test_checks_fail_on_broken_manifests(tmp_path, flavour, path, old, new, check):
    need_kubectl()
    root = str(tmp_path / "kubernetes")
    shutil.copytree(KDIR, root)
    p = os.path.join(root, path)
    text = open(p).read()
    assert old in text, "mutation target %r not in %s (update the test)" % (old, path)
    open(p, "w").write(text.replace(old, new, 1))
    objs = render(os.path.join(root, BASE if flavour == "base" else OVERLAY))
    if check is None:  # a harmless change: every check still passes
        for c in CHECKS:
            c(objs, flavour) if c is not check_image else c(objs, flavour, root)
        return
    with pytest.raises(AssertionError):
        check(objs, flavour) if check is not check_image else check(objs, flavour, root)


# --------------------------------------------------------------------------- Dockerfile

def dockerfile_stages():
    """[(from-line, [(INSTRUCTION, rest), ...]), ...] of deploy/Dockerfile."""
    text = open(os.path.join(DEPLOY, "Dockerfile")).read()
    lines, cur = [], ""
    for raw in text.splitlines():
        s = raw.strip()
        if not cur and (not s or s.startswith("#")):
            continue
        if cur and s.startswith("#"):
            continue
        if s.endswith("\\"):
            cur += s[:-1] + " "
            continue
        lines.append(cur + s)
        cur = ""
    assert not cur, "Dockerfile ends in a continuation"
    stages = []
    for ln in lines:
        instr, _, rest = ln.partition(" ")
        instr, rest = instr.upper(), " ".join(rest.split())
        if instr == "FROM":
            stages.append((rest.strip(), []))
        elif instr == "ARG" and not stages:
            continue
        else:
            assert stages, "instruction before FROM: %s" % ln
            stages[-1][1].append((instr, rest.strip()))
    return stages


def runtime_packages():
    pkgs = []
    for ln in open(os.path.join(DEPLOY, "runtime-packages.txt")):
        ln = ln.split("#", 1)[0].strip()
        if ln:
            pkgs.append(ln)
    return pkgs


def test_dockerfile_stages_and_runtime_contract():
    stages = dockerfile_stages()
    assert len(stages) == 2, "two stages: build, runtime"
    (bfrom, build), (rfrom, run) = stages
    assert re.fullmatch(r"debian:(12|bookworm)\s+AS\s+build", bfrom, re.I), bfrom
    assert re.fullmatch(r"debian:(12|bookworm)-slim", rfrom), rfrom
    every = build + run
    assert not [r for i, r in every if i == "ENTRYPOINT"], \
        "no ENTRYPOINT: the original's args start with the binary path and replace CMD"
    last = lambda instr: [r for i, r in run if i == instr][-1:]  # noqa: E731
    assert last("CMD") == ['["/app/applicationgateway"]']
    assert last("WORKDIR") == ["/app"]
    assert last("STOPSIGNAL") == ["SIGTERM"]
    assert last("USER") and last("USER")[0] in ("1000", "1000:1000", "appgw", "appgw:appgw")
    expose = {p for i, r in run if i == "EXPOSE" for p in r.split()}
    assert {"8080", "8081", "8082"} <= expose
    runs = " ".join(r for i, r in run if i == "RUN")
    assert re.search(r"useradd\b[^;&]*--uid 1000\b[^;&]*\bappgw\b", runs), "user appgw, uid 1000"
    # the runtime libraries come from deploy/runtime-packages.txt, and only from there
    assert ("COPY", "deploy/runtime-packages.txt /tmp/runtime-packages.txt") in run
    assert re.search(r"apt-get install [^;&]*--no-install-recommends \$\(sed [^)]*/tmp/runtime-packages\.txt\)",
                     runs), runs
    for p in runtime_packages():
        assert not re.search(r"(?<![\w.-])%s(?![\w.-])" % re.escape(p), runs), \
            "%s named in the Dockerfile: list it in deploy/runtime-packages.txt only" % p
    assert "rm -rf /var/lib/apt/lists" in runs
    copies = [r for i, r in run if i == "COPY" and r.startswith("--from=build")]
    assert copies == ["--from=build /out/app/ /app/"], copies


def test_dockerfile_build_stage_uses_repo_scripts():
    (_, build), _ = dockerfile_stages()
    runs = [r for i, r in build if i == "RUN"]
    assert runs == ["bash deploy/build-in-image.sh deps",
                    "bash deploy/build-in-image.sh build && bash deploy/build-in-image.sh stage /out/app"], runs
    script = open(os.path.join(DEPLOY, "build-in-image.sh")).read()
    assert "scripts/setup.sh --build-only" in script and "scripts/build.sh release" in script
    assert "apt-get" not in script, "the build package list is scripts/setup.sh's"
    # setup.sh's build list is what links the runtime packages: each -dev depends on one
    r = subprocess.run(["bash", os.path.join(H.REPO, "scripts", "setup.sh"), "--list-build"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    build_pkgs = r.stdout.split()
    assert {"cmake", "pkg-config", "libcurl4-openssl-dev"} <= set(build_pkgs), build_pkgs
    # every path the build stage copies exists, and the sources CMake reads are copied
    copied = []
    for i, r in build:
        if i == "COPY":
            srcs = r.split()[:-1]
            for s in srcs:
                assert os.path.exists(os.path.join(H.REPO, s)), "COPY %s: no such path" % s
                copied.append(s.rstrip("/"))
    cmake = open(os.path.join(H.REPO, "CMakeLists.txt")).read()
    for ref in set(re.findall(r"\$\{CMAKE_SOURCE_DIR\}/([\w.-]+(?:/[\w.-]+)?)", cmake)):
        if ref.startswith("fuzz"):
            continue  # only in a -DGW_FUZZ=ON build
        assert any(ref == c or ref.startswith(c + "/") for c in copied), \
            "CMakeLists.txt reads %s, which the build stage does not copy" % ref


def test_build_script_stages_app_dir(tmp_path):
    """The build stage's last step: /app/appgw (stripped) and /app/applicationgateway -> appgw,
    which runs appgw with the original's args."""
    out = str(tmp_path / "app")
    b = H.appgw_bin()
    if not os.path.exists(b):
        pytest.fail("gateway binary %s does not exist (build it, or set APPGW_BIN)" % b)
    r = subprocess.run(["bash", os.path.join(DEPLOY, "build-in-image.sh"), "stage", out, b],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(out)) == ["appgw", "applicationgateway"]
    assert os.access(os.path.join(out, "appgw"), os.X_OK)
    assert os.readlink(os.path.join(out, "applicationgateway")) == "appgw"
    run = subprocess.run([os.path.join(out, "applicationgateway")] + ORIGINAL_ARGS[1:] + ["--help"],
                         capture_output=True, text=True, timeout=20)
    assert run.returncode == 0 and "Usage: appgw" in run.stdout + run.stderr, run.stderr
    bad = subprocess.run([os.path.join(out, "applicationgateway"), "--noSuchFlag=1"],
                         capture_output=True, text=True, timeout=20)
    assert bad.returncode == 2


def dpkg_owner(path):
    cands = [path]
    if path.startswith("/lib"):
        cands.append("/usr" + path)
    cands.append(os.path.realpath(path))
    for c in cands:
        r = subprocess.run(["dpkg", "-S", c], capture_output=True, text=True, timeout=30)
        if r.returncode == 0:
            line = r.stdout.splitlines()[0]
            return line.split(":", 1)[0].split(",")[0].strip()
    return None


def installed_depends():
    r = subprocess.run(["dpkg-query", "-W", "-f", "${Package}\t${Depends}, ${Pre-Depends}\n"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    deps = {}
    for ln in r.stdout.splitlines():
        pkg, _, d = ln.partition("\t")
        names = set()
        for part in d.split(","):
            for alt in part.split("|"):
                alt = re.sub(r"\(.*?\)", "", alt).strip().split(":")[0]
                if alt:
                    names.add(alt)
        deps[pkg] = names
    return deps


def test_runtime_packages_hold_every_library_the_binary_needs():
    if shutil.which("dpkg") is None or shutil.which("ldd") is None:
        pytest.skip("needs Debian's dpkg and ldd")
    b = H.appgw_bin()
    if not os.path.exists(b):
        pytest.fail("gateway binary %s does not exist (build it, or set APPGW_BIN)" % b)
    pkgs = runtime_packages()
    deps = installed_depends()
    for p in pkgs:
        assert p in deps, "%s is no installed Debian package (misspelt?)" % p
    sanitizer = re.compile(r"^lib(asan|ubsan|lsan|tsan)\d+$")
    # direct dependencies (DT_NEEDED) must be listed packages (or what the slim image ships)
    r = subprocess.run(["readelf", "-d", b], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", r.stdout)
    assert needed, "no DT_NEEDED in %s?" % b
    r = subprocess.run(["ldd", b], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    paths = {}
    for ln in r.stdout.splitlines():
        m = re.match(r"\s*(\S+) => (/\S+)", ln)
        if m:
            paths[m.group(1)] = m.group(2)
        assert "not found" not in ln, ln
    owners = {s: dpkg_owner(p) for s, p in paths.items()}
    for soname, owner in owners.items():
        assert owner, "%s (%s) belongs to no Debian package" % (soname, paths[soname])
    # An ASan+UBSan build (APPGW_SANITIZE=1) also links the sanitizer runtimes, never shipped.
    san = {o for o in owners.values() if H.SANITIZE and sanitizer.match(o)}
    # everything apt installs with the listed packages, and the slim base
    closure, todo = set(), list(pkgs) + list(SLIM_BASE) + list(san)
    while todo:
        p = todo.pop()
        if p not in closure:
            closure.add(p)
            todo.extend(deps.get(p, ()))
    for soname, owner in owners.items():
        if owner in san:
            continue
        if soname in needed:
            assert owner in set(pkgs) | SLIM_BASE, \
                "appgw links %s from %s: add that package to deploy/runtime-packages.txt" % (soname, owner)
        assert owner in closure, "%s from %s is not installed with deploy/runtime-packages.txt" % (soname, owner)
    for p in pkgs:
        if p != "ca-certificates":
            assert any(owners.get(s) == p for s in needed), \
                "%s is listed but appgw links nothing from it" % p


def test_readme_commands_name_existing_paths():
    text = open(os.path.join(DEPLOY, "README.md")).read()
    assert "## Running in Kubernetes" in text and "## Replacing the original" in text
    for cmd in ("docker build -f deploy/Dockerfile", "kubectl apply -k deploy/kubernetes/base",
                "kubectl apply -k deploy/kubernetes/overlays/replace-original"):
        assert cmd in text, cmd
    for p in set(re.findall(r"\b(deploy/[\w./-]+[\w/])", text)):
        assert os.path.exists(os.path.join(H.REPO, p)), "README names %s, which does not exist" % p
