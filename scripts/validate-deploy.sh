#!/usr/bin/env bash
# Checks the deployment files and prints, as JSON, the environment each MangaAssist container
# gets ({"<service>": {"VAR": "value"}}), so tests/deploy_files.rs can feed it to the real
# config loader. Exits non-zero, naming the problem, on any failure.
#   scripts/validate-deploy.sh compose [compose.yaml]   parse + structural checks
#   scripts/validate-deploy.sh k8s [k8s/overlays/aws]   kustomize render + Kubernetes 1.30
#                                                        schema (kubernetes-validate --strict)
#                                                        + structural checks
#   scripts/validate-deploy.sh k8s-infra [k8s/infra]    same for the backend infrastructure
# Needs python3 with PyYAML (pip install pyyaml), and for k8s kubectl (kustomize) and
# kubernetes-validate (pip install kubernetes-validate).
# compose: `${VAR:-default}` reads as its default; `${VAR:?message}` (a variable compose
# requires) takes VAR from this script's environment and, like compose, fails when it is unset,
# e.g. MANGAASSIST_JWT_SECRET="$(openssl rand -hex 32)" scripts/validate-deploy.sh compose
set -euo pipefail
MODE="${1:?usage: validate-deploy.sh compose|k8s [path]}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
K8S_VERSION="${K8S_VERSION:-1.30.0}"

if ! python3 -c 'import yaml' 2>/dev/null; then
  echo "python3 cannot import yaml: run pip install pyyaml" >&2
  exit 2
fi

case "$MODE" in
  compose)
    FILE="${2:-$ROOT/compose.yaml}"
    ;;
  k8s|k8s-infra)
    if [[ "$MODE" == k8s ]]; then DIR="${2:-$ROOT/k8s/overlays/aws}"; else DIR="${2:-$ROOT/k8s/infra}"; fi
    command -v kubectl >/dev/null || { echo "kubectl (for kustomize) is not installed" >&2; exit 2; }
    command -v kubernetes-validate >/dev/null || {
      echo "kubernetes-validate is missing: run pip install kubernetes-validate" >&2
      exit 2
    }
    TMP="$(mktemp -d)"
    trap 'rm -rf "$TMP"' EXIT
    FILE="$TMP/rendered.yaml"
    kubectl kustomize "$DIR" >"$FILE" || { echo "kustomize cannot render $DIR" >&2; exit 1; }
    if ! kubernetes-validate --strict --quiet -k "$K8S_VERSION" "$FILE" >"$TMP/schema.log" 2>&1; then
      echo "Kubernetes $K8S_VERSION schema validation of $DIR failed:" >&2
      cat "$TMP/schema.log" >&2
      exit 1
    fi
    # kubernetes-validate exits 0 on some errors it only prints; treat any ERROR as failure.
    if grep -q ERROR "$TMP/schema.log"; then
      echo "Kubernetes $K8S_VERSION schema validation of $DIR failed:" >&2
      cat "$TMP/schema.log" >&2
      exit 1
    fi
    ;;
  *)
    echo "unknown mode $MODE (compose|k8s|k8s-infra)" >&2
    exit 2
    ;;
esac

exec python3 - "$MODE" "$FILE" <<'PY'
import base64, json, os, re, sys
import yaml

mode, path = sys.argv[1], sys.argv[2]
# Default ports: crates/config/src/sections/mesh.rs (MeshSettings) and gateway.rs (GatewaySettings).
PORTS = {"intent": 50061, "retrieval": 50062, "memory": 50063, "cache": 50064,
         "generation": 50065, "precompute": 50066, "gateway": 8080}
DAEMONS = [d for d in PORTS if d != "gateway"]
SHUTDOWN_GRACE_SECONDS = 10  # mesh.shutdown_grace_seconds default
RESOLVE_INTERVAL_MS = 2000  # mesh.resolve_interval_ms default
# CoreDNS answers for a headless Service are cached this long (kubernetes plugin `ttl`).
DNS_TTL_MS = 5000
SECRET_VAR = "MANGAASSIST_GATEWAY__AUTH__SECRET"
MESH_SECRET_VAR = "MANGAASSIST_MESH__SERVICE_SECRET"
# Who may call each daemon (k8s NetworkPolicy); mirrors the clients the gateway and precompute build.
CALLERS = {"intent": {"gateway"}, "retrieval": {"gateway", "precompute", "cache"}, "memory": {"gateway"},
           "cache": {"gateway", "precompute"}, "generation": {"gateway", "precompute"},
           "precompute": {"gateway"}}
# Secrets this repository has shipped (gateway/src/lib.rs PUBLISHED_SECRETS): never again.
PUBLISHED_SECRETS = [
    "7f00ec2a0ab1255b1bd129973b2ad08ed5cc749b6114ed98d49d5213598ff985",
    "change-me-dev-only-secret-0123456789abcdef",
    "CHANGE-ME-placeholder-jwt-secret-not-for-production",
]
errors = []

def err(msg):
    if msg not in errors:
        errors.append(msg)

def finish(envs):
    if errors:
        for e in errors:
            print(f"{path}: {e}", file=sys.stderr)
        sys.exit(1)
    json.dump(envs, sys.stdout, indent=1, sort_keys=True)
    print()

def required(m):
    # Compose `${VAR:?message}` / `${VAR?message}`: compose refuses to start without VAR.
    name, message = m.group(1), m.group(2)
    value = os.environ.get(name, "")
    if not value:
        err(f"required variable {name} is not set: {message}")
    return value

def interpolate(v):
    # Compose `${VAR:-default}` / `${VAR-default}`: the test sees the defaults.
    v = re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?-([^}]*)\}", r"\1", str(v))
    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*):?\?([^}]*)\}", required, v)

def published_secrets_in(text, where):
    for secret in PUBLISHED_SECRETS:
        if secret in text:
            err(f"{where} contains the published signing secret {secret[:12]}...; "
                "it authenticates no one")

def host_ip(port):
    if isinstance(port, dict):
        return port.get("host_ip") if port.get("published") is not None else "127.0.0.1"
    parts = str(port).split(":")
    # "HOST_IP:PUBLISHED:TARGET" binds one address; "PUBLISHED:TARGET" binds all of them.
    return parts[0] if len(parts) == 3 else None

def compose():
    with open(path) as f:
        # Parsed from the file so a syntax error names it.
        doc = yaml.safe_load(f)
    with open(path) as f:
        published_secrets_in(f.read(), "compose file")
    services = (doc or {}).get("services") or {}
    if not services:
        err("no services")
    envs = {}
    for name, svc in services.items():
        for port in svc.get("ports") or []:
            if host_ip(port) != "127.0.0.1":
                err(f"service {name} publishes port {port} on all interfaces; "
                    "bind it to 127.0.0.1 (\"127.0.0.1:HOST:CONTAINER\")")
        hc = svc.get("healthcheck")
        if not hc or hc.get("disable") or not hc.get("test"):
            err(f"service {name} has no healthcheck")
        deps = svc.get("depends_on") or {}
        for dep in (deps if isinstance(deps, list) else deps.keys()):
            if dep not in services:
                err(f"service {name} depends_on unknown service {dep}")
            elif isinstance(deps, dict):
                cond = (deps[dep] or {}).get("condition", "service_started")
                if cond not in ("service_started", "service_healthy", "service_completed_successfully"):
                    err(f"service {name}: depends_on {dep} has bad condition {cond}")
    for role, port in PORTS.items():
        svc = services.get(role)
        if svc is None:
            err(f"missing service {role}")
            continue
        if svc.get("command") != ["serve", role]:
            err(f"service {role}: command must be [\"serve\", \"{role}\"], got {svc.get('command')}")
        test = " ".join(map(str, (svc.get("healthcheck") or {}).get("test") or []))
        if f"127.0.0.1:{port}/healthz" not in test:
            err(f"service {role}: healthcheck must probe http://127.0.0.1:{port}/healthz, got {test!r}")
        raw = svc.get("environment") or {}
        if isinstance(raw, list):
            raw = dict(item.split("=", 1) for item in raw)
        for var in (SECRET_VAR, MESH_SECRET_VAR):
            secret = str(raw.get(var, ""))
            if not re.fullmatch(r"\$\{[A-Za-z_][A-Za-z0-9_]*:\?[^}]+\}", secret):
                err(f"service {role}: {var} must be a variable compose requires "
                    f"(\"${{NAME:?message}}\"), with no default, got {secret!r}")
        env = {k: interpolate(v) for k, v in raw.items()}
        for d in DAEMONS:
            key = d.upper()
            want_ep = f"http://{d}:{PORTS[d]}"
            if env.get(f"MANGAASSIST_MESH__{key}__ENDPOINT") != want_ep:
                err(f"service {role}: MANGAASSIST_MESH__{key}__ENDPOINT must be {want_ep}")
        if role == "gateway":
            if env.get("MANGAASSIST_GATEWAY__LISTEN") != "0.0.0.0:8080":
                err("service gateway: MANGAASSIST_GATEWAY__LISTEN must be 0.0.0.0:8080")
            deps = svc.get("depends_on") or {}
            for d in DAEMONS:
                if not isinstance(deps, dict) or (deps.get(d) or {}).get("condition") != "service_healthy":
                    err(f"service gateway must depend on {d} with condition service_healthy")
        elif env.get(f"MANGAASSIST_MESH__{role.upper()}__LISTEN") != f"0.0.0.0:{port}":
            err(f"service {role}: MANGAASSIST_MESH__{role.upper()}__LISTEN must be 0.0.0.0:{port}")
        envs[role] = env
        # A daemon on a networked backend must point at a compose service and wait for it.
        backends = [
            ("cache", "MANGAASSIST_CACHE__BACKEND", "redis", "MANGAASSIST_REDIS__URL"),
            ("memory", "MANGAASSIST_MEMORY__BACKEND", "dynamodb", "MANGAASSIST_MEMORY__DYNAMODB__ENDPOINT_URL"),
            ("retrieval", "MANGAASSIST_RETRIEVAL__BACKEND", "opensearch", "MANGAASSIST_RETRIEVAL__OPENSEARCH__URL"),
            ("gateway", "MANGAASSIST_GATEWAY__RESUME_BACKEND", "redis", "MANGAASSIST_REDIS__URL"),
            ("gateway", "MANGAASSIST_GATEWAY__LIMITS__BACKEND", "redis", "MANGAASSIST_REDIS__URL"),
        ]
        for owner, var, value, url_var in backends:
            if owner != role or env.get(var) != value:
                continue
            url = env.get(url_var, "")
            host = re.sub(r"^[a-z]+://", "", url).split("/")[0].split(":")[0]
            if host not in services:
                err(f"service {role}: {url_var}={url!r} does not name a compose service")
            deps = svc.get("depends_on") or {}
            if not isinstance(deps, dict) or (deps.get(host) or {}).get("condition") != "service_healthy":
                err(f"service {role} uses {host} ({var}={value}) but does not depend on it being healthy")
        otlp = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")
        if otlp and not otlp.endswith(":4318"):
            err(f"service {role}: OTEL_EXPORTER_OTLP_ENDPOINT={otlp} must be an OTLP/HTTP port (4318)")
    for infra in ("redis", "dynamodb", "opensearch", "jaeger"):
        if infra not in services:
            err(f"missing infrastructure service {infra}")
    finish(envs)

def k8s():
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    cms, secrets = by_kind.get("ConfigMap", {}), by_kind.get("Secret", {})
    for name, s in secrets.items():
        # A value in the repository is a value everyone has: secrets come from outside
        # (kubectl create secret, External Secrets; docs/operations.md).
        if s.get("data") or s.get("stringData"):
            err(f"Secret {name} carries a literal value from the repository; create it outside "
                "(kubectl create secret generic / External Secrets, see docs/operations.md)")
    with open(path) as f:
        published_secrets_in(f.read(), "rendered manifests")
    services, deps = by_kind.get("Service", {}), by_kind.get("Deployment", {})
    hpas, pdbs = by_kind.get("HorizontalPodAutoscaler", {}), by_kind.get("PodDisruptionBudget", {})
    envs = {}
    for role, port in PORTS.items():
        dep = deps.get(role)
        if dep is None:
            err(f"missing Deployment {role}")
            continue
        pod = dep["spec"]["template"]["spec"]
        labels = dep["spec"]["template"]["metadata"].get("labels", {})
        if dep["spec"]["selector"].get("matchLabels", {}).items() - labels.items():
            err(f"Deployment {role}: selector does not match the pod labels")
        c = pod["containers"][0]
        if c.get("args") != ["serve", role]:
            err(f"Deployment {role}: args must be [\"serve\", \"{role}\"], got {c.get('args')}")
        portname = "http" if role == "gateway" else "grpc"
        cports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
        if cports.get(portname) != port:
            err(f"Deployment {role}: needs container port {portname}={port}, got {cports}")
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            p = c.get(probe) or {}
            if role == "gateway":
                ok = (p.get("httpGet") or {}).get("path") == "/healthz"
            else:
                ok = (p.get("grpc") or {}).get("port") == port
            if not ok:
                err(f"Deployment {role}: {probe} must be "
                    + ("httpGet /healthz" if role == "gateway" else f"grpc on port {port}"))
        pre = (((c.get("lifecycle") or {}).get("preStop") or {}).get("exec") or {}).get("command") or []
        pre_sleep = int(pre[1]) if len(pre) == 2 and pre[0] == "sleep" else 0
        if pre_sleep <= 0:
            err(f"Deployment {role}: needs a preStop sleep so endpoints drain before SIGTERM")
        grace = pod.get("terminationGracePeriodSeconds", 30)
        if grace <= pre_sleep + SHUTDOWN_GRACE_SECONDS:
            err(f"Deployment {role}: terminationGracePeriodSeconds {grace} must exceed preStop "
                f"{pre_sleep} s + mesh.shutdown_grace_seconds {SHUTDOWN_GRACE_SECONDS} s")
        if not (pod.get("securityContext") or {}).get("runAsNonRoot"):
            err(f"Deployment {role}: pod must set runAsNonRoot")
        if not (c.get("securityContext") or {}).get("readOnlyRootFilesystem"):
            err(f"Deployment {role}: container must set readOnlyRootFilesystem")
        mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
        for need in ("/tmp", "/var/lib/mangaassist/state"):
            if need not in mounts:
                err(f"Deployment {role}: read-only rootfs needs a volume at {need}")
        r = c.get("resources") or {}
        if not (r.get("requests") and r.get("limits")):
            err(f"Deployment {role}: needs resources requests and limits")
        env = {}
        for src in c.get("envFrom", []):
            ref = (src.get("configMapRef") or {}).get("name")
            if ref not in cms:
                err(f"Deployment {role}: envFrom ConfigMap {ref} does not exist")
            else:
                env.update(cms[ref].get("data", {}))
        for e in c.get("env", []):
            ref = (e.get("valueFrom") or {}).get("secretKeyRef")
            if e["name"] in (SECRET_VAR, MESH_SECRET_VAR) and (ref is None or ref.get("optional")):
                err(f"Deployment {role}: {e['name']} must come from a required secretKeyRef "
                    "(the Secret is created outside the repository)")
            if "value" in e:
                env[e["name"]] = e["value"]
            elif ref is not None:
                if not ref.get("name") or not ref.get("key"):
                    err(f"Deployment {role}: env {e['name']} needs a secretKeyRef name and key")
                data = (secrets.get(ref.get("name")) or {}).get("data", {})
                # Secrets made outside the render have no value here; the config loader then
                # sees the variable unset.
                if ref.get("key") in data:
                    env[e["name"]] = base64.b64decode(data[ref["key"]]).decode()
        if not any(e["name"] == MESH_SECRET_VAR for e in c.get("env", [])):
            err(f"Deployment {role}: needs {MESH_SECRET_VAR} from a secretKeyRef, or its daemons "
                "take calls from anyone who reaches a pod")
        if role == "gateway" and not any(e["name"] == SECRET_VAR for e in c.get("env", [])):
            err(f"Deployment gateway: needs {SECRET_VAR} from a secretKeyRef so every replica "
                "verifies the same tokens")
        envs[role] = env
        svc = services.get(role)
        if svc is None:
            err(f"missing Service {role}")
        else:
            sp = {p.get("name"): p for p in svc["spec"]["ports"]}
            if portname not in sp or sp[portname]["port"] != port:
                err(f"Service {role}: needs port named {portname} = {port}")
            if svc["spec"].get("selector", {}).items() - labels.items():
                err(f"Service {role}: selector does not match Deployment {role}'s pods")
            if role in DAEMONS:
                # A virtual IP pins each caller's one HTTP/2 connection to one pod; headless,
                # the name resolves to every ready pod and callers balance over them.
                if svc["spec"].get("clusterIP") != "None":
                    err(f"Service {role}: must be headless (clusterIP: None) so callers "
                        "balance over every ready pod")
                if svc["spec"].get("publishNotReadyAddresses"):
                    err(f"Service {role}: publishNotReadyAddresses would send calls to pods "
                        "that are not ready")
        if role in DAEMONS:
            # A leaving pod must drop out of every caller's balancer while its preStop sleep
            # runs, before SIGTERM stops it taking calls.
            interval = int(env.get("MANGAASSIST_MESH__RESOLVE_INTERVAL_MS", RESOLVE_INTERVAL_MS))
            if interval == 0:
                err("MANGAASSIST_MESH__RESOLVE_INTERVAL_MS=0 resolves the headless Services "
                    "once: callers would never see pods join or leave")
            elif pre_sleep * 1000 < interval + DNS_TTL_MS + 1000:
                err(f"Deployment {role}: preStop sleep {pre_sleep} s is shorter than the DNS "
                    f"cache ({DNS_TTL_MS} ms) + mesh.resolve_interval_ms ({interval} ms) + 1 s: "
                    "callers would still send it calls after SIGTERM")
        for d in DAEMONS:
            want = f"http://{d}:{PORTS[d]}"
            if env.get(f"MANGAASSIST_MESH__{d.upper()}__ENDPOINT") != want:
                err(f"Deployment {role}: MANGAASSIST_MESH__{d.upper()}__ENDPOINT must be {want}")
        listen_key = "MANGAASSIST_GATEWAY__LISTEN" if role == "gateway" else f"MANGAASSIST_MESH__{role.upper()}__LISTEN"
        if env.get(listen_key) != f"0.0.0.0:{port}":
            err(f"Deployment {role}: {listen_key} must be 0.0.0.0:{port}")
        pdb = [p for p in pdbs.values()
               if not p["spec"]["selector"].get("matchLabels", {}).items() - labels.items()]
        if not pdb:
            err(f"Deployment {role}: no PodDisruptionBudget selects its pods")
    policies = by_kind.get("NetworkPolicy", {})
    for d in DAEMONS:
        dep = deps.get(d)
        if dep is None:
            continue
        labels = dep["spec"]["template"]["metadata"].get("labels", {})
        mine = [p for p in policies.values()
                if "Ingress" in (p["spec"].get("policyTypes") or [])
                and not p["spec"]["podSelector"].get("matchLabels", {}).items() - labels.items()]
        if not mine:
            err(f"Deployment {d}: no NetworkPolicy restricts who reaches it")
            continue
        allowed = set()
        for p in mine:
            for rule in p["spec"].get("ingress") or []:
                if not rule.get("from"):
                    err(f"NetworkPolicy {p['metadata']['name']}: an ingress rule without `from` admits everyone")
                for peer in rule.get("from") or []:
                    comp = ((peer.get("podSelector") or {}).get("matchLabels") or {}).get("app.kubernetes.io/component")
                    if comp:
                        allowed.add(comp)
                    elif "namespaceSelector" not in peer or not (peer["namespaceSelector"].get("matchLabels")):
                        err(f"NetworkPolicy {p['metadata']['name']}: peer {peer} is not one named component or namespace")
        if allowed != CALLERS[d]:
            err(f"NetworkPolicy for {d}: admits {sorted(allowed)}, its callers are {sorted(CALLERS[d])}")
    for name, h in hpas.items():
        ref = h["spec"]["scaleTargetRef"]
        if ref.get("kind") != "Deployment" or ref.get("name") not in deps:
            err(f"HPA {name}: targets unknown {ref.get('kind')}/{ref.get('name')}")
        cpu = [m for m in h["spec"].get("metrics", [])
               if m.get("type") == "Resource" and m["resource"]["name"] == "cpu"]
        if not cpu or cpu[0]["resource"]["target"].get("averageUtilization") != 60:
            err(f"HPA {name}: must target 60 % CPU (seed 004)")
    for role in PORTS:
        if role != "memory" and role not in hpas:
            err(f"Deployment {role} has no HorizontalPodAutoscaler")
    finish(envs)

def k8s_infra():
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    deps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    for name in ("redis", "dynamodb", "opensearch", "jaeger"):
        if name not in deps or name not in services:
            err(f"missing Deployment and Service {name}")
    for name, dep in deps.items():
        labels = dep["spec"]["template"]["metadata"].get("labels", {})
        for c in dep["spec"]["template"]["spec"]["containers"]:
            for probe in ("readinessProbe", "livenessProbe"):
                if not c.get(probe):
                    err(f"Deployment {name}: container {c['name']} has no {probe}")
        svc = services.get(name)
        if svc and svc["spec"].get("selector", {}).items() - labels.items():
            err(f"Service {name}: selector does not match Deployment {name}'s pods")
    def env_of(name):
        c = deps.get(name, {}).get("spec", {}).get("template", {}).get("spec", {}).get("containers", [{}])[0]
        return {e["name"]: e.get("value") for e in c.get("env", [])}
    if env_of("opensearch").get("DISABLE_SECURITY_PLUGIN") != "true":
        err("opensearch must run with DISABLE_SECURITY_PLUGIN=true")
    if env_of("jaeger").get("COLLECTOR_OTLP_ENABLED") != "true":
        err("jaeger must run with COLLECTOR_OTLP_ENABLED=true")
    finish({})

{"compose": compose, "k8s": k8s, "k8s-infra": k8s_infra}[mode]()
PY
