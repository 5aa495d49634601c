//! The `gatehouse` CLI as a process against a running control plane (and a data plane where
//! the result must be served): every command, secret references, exit codes and error lines.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use gatehouse_tests::upstream::EchoUpstream;
use gatehouse_tests::{ControlPlane, DataPlane, config_version, fresh_database};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;

/// What one run of the CLI left.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs the CLI with `args`, the control plane's URL and `key` in its environment, and `env`.
async fn gatehouse(cp: &ControlPlane, key: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_gatehouse-under-test"));
    command
        .args(args)
        .env_remove("GATEHOUSE_GATEWAY_URL")
        .env("GATEHOUSE_URL", &cp.url)
        .env("GATEHOUSE_API_KEY", key);
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().await.unwrap();
    Run {
        code: output.status.code().unwrap(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// A fresh folder for manifest and secret files.
fn workdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gatehouse-cli-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A YAML manifest: account `acme` with its auth from `$ACME_KEY`, a secret custom header
/// from `key.txt` beside the manifest, and one integration per name.
fn write_manifest(dir: &Path, upstream: &str, integrations: &[&str]) -> String {
    let mut yaml = String::from(
        "# Two documents; the second is an empty one editors leave behind.
apiVersion: gatehouse/v1
kind: ProviderAccount
metadata:
  name: acme
spec:
  header_auth:
    type: header
    headers:
      X-Upstream-Key: env:ACME_KEY
  custom_headers:
    X-Tenant: file:key.txt
    X-Team: ml
  secret_custom_headers: [X-Tenant]
  integrations:
",
    );
    for name in integrations {
        yaml.push_str(&format!(
            "    - name: {name}\n      base_url: {upstream}/{name}\n"
        ));
    }
    yaml.push_str("---\n");
    let path = dir.join("acme.yaml");
    std::fs::write(&path, yaml).unwrap();
    path.to_str().unwrap().to_owned()
}

fn one_line(run: &Run) -> &str {
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    run.stderr.trim_end()
}

#[tokio::test]
async fn apply_and_diff_resolve_secret_references_and_report_by_exit_code() {
    let db = fresh_database().await;
    let cp = ControlPlane::start(&db).await;
    let dp = DataPlane::start_ready(&db).await;
    let upstream = EchoUpstream::start().await;
    let dir = workdir();
    std::fs::write(dir.join("key.txt"), "tenant-secret\n").unwrap();
    let file = write_manifest(&dir, &upstream.url(), &["svc", "old"]);
    let key = cp.admin_key.as_str();
    let env = [("ACME_KEY", "upstream-secret")];

    let run = gatehouse(&cp, key, &["diff", "-f", &file], &env).await;
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("provider-account acme: created"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("3 to change"), "{}", run.stdout);
    assert!(!run.stdout.contains("upstream-secret") && !run.stdout.contains("tenant-secret"));
    assert_eq!(
        gatehouse(&cp, key, &["get", "accounts"], &env)
            .await
            .stdout
            .lines()
            .count(),
        1
    );

    let run = gatehouse(&cp, key, &["apply", "-f", &file], &env).await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("integration acme/svc: created"),
        "{}",
        run.stdout
    );
    dp.wait_applied(config_version(&cp.db).await, Duration::from_secs(5))
        .await;
    let status = gatehouse_tests::http_client()
        .get(dp.proxy("acme/svc/x"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    let seen = upstream.last().unwrap();
    assert_eq!(seen.header("x-upstream-key"), Some("upstream-secret"));
    assert_eq!(seen.header("x-tenant"), Some("tenant-secret"));

    // Applied: nothing pending, and re-applying bumps no version.
    let version = config_version(&cp.db).await;
    let run = gatehouse(&cp, key, &["diff", "-f", &file], &env).await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("0 to change, 3 unchanged"),
        "{}",
        run.stdout
    );
    let run = gatehouse(&cp, key, &["apply", "-f", &file, "-o", "json"], &env).await;
    assert_eq!(run.code, 0);
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["changed"], false);
    assert_eq!(config_version(&cp.db).await, version);

    // A dry run reports the prune and changes nothing.
    let file = write_manifest(&dir, &upstream.url(), &["svc"]);
    let run = gatehouse(
        &cp,
        key,
        &["apply", "-f", &file, "--dry-run", "-o", "yaml"],
        &env,
    )
    .await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("action: deleted"), "{}", run.stdout);
    assert_eq!(config_version(&cp.db).await, version);
    let run = gatehouse(&cp, key, &["apply", "-f", &file], &env).await;
    assert!(
        run.stdout.contains("integration acme/old: deleted"),
        "{}",
        run.stdout
    );
    dp.wait_applied(config_version(&cp.db).await, Duration::from_secs(5))
        .await;
    let status = gatehouse_tests::http_client()
        .get(dp.proxy("acme/old/x"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 404);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn bad_input_fails_with_one_line_and_changes_nothing() {
    let db = fresh_database().await;
    let cp = ControlPlane::start(&db).await;
    let dir = workdir();
    let key = cp.admin_key.as_str();
    let version = config_version(&cp.db).await;

    // A literal secret: refused before anything is sent.
    let literal = dir.join("literal.yaml");
    std::fs::write(
        &literal,
        "apiVersion: gatehouse/v1\nkind: ProviderAccount\nmetadata: {name: acme}\nspec:\n  integrations:\n    - name: svc\n      base_url: http://127.0.0.1:9\n      header_auth: {type: header, headers: {X-Key: plain-secret}}\n",
    )
    .unwrap();
    let run = gatehouse(&cp, key, &["apply", "-f", literal.to_str().unwrap()], &[]).await;
    assert_eq!(run.code, 1);
    assert_eq!(
        one_line(&run),
        "error: integration acme/svc: header_auth.headers.X-Key: a secret must be a reference (env:NAME or file:PATH), never a literal value"
    );
    assert!(!run.stderr.contains("plain-secret"));

    // A reference to a variable that is not set.
    let file = write_manifest(&dir, "http://127.0.0.1:9", &["svc"]);
    std::fs::write(dir.join("key.txt"), "t").unwrap();
    let run = gatehouse(&cp, key, &["apply", "-f", &file], &[]).await;
    assert_eq!(run.code, 1);
    assert!(one_line(&run).contains("provider account acme: header_auth.headers.X-Upstream-Key: environment variable ACME_KEY is not set"), "{}", run.stderr);

    // The API's refusal: the problem's detail names object and field.
    let file = write_manifest(&dir, "http://127.0.0.1:9", &["9starts-with-a-digit"]);
    let run = gatehouse(&cp, key, &["apply", "-f", &file], &[("ACME_KEY", "k")]).await;
    assert_eq!(run.code, 1);
    let line = one_line(&run);
    assert!(
        line.starts_with("error: 422: integration acme/9starts-with-a-digit: name:"),
        "{line}"
    );

    // Usage errors are 1 (2 is reserved for a pending diff), an unreachable plane is 3.
    let run = gatehouse(&cp, key, &["apply"], &[]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    let run = gatehouse(
        &cp,
        key,
        &["get", "accounts", "--url", "http://127.0.0.1:9"],
        &[],
    )
    .await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(one_line(&run).starts_with("error: cannot reach the control plane"));
    let run = gatehouse(&cp, "gh_not-a-key", &["get", "accounts"], &[]).await;
    assert_eq!(run.code, 1);
    assert!(one_line(&run).starts_with("error: 401:"), "{}", run.stderr);

    assert_eq!(config_version(&cp.db).await, version);
    assert_eq!(cp.admin().get("/provider-accounts/acme").await.status, 404);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn get_delete_keys_and_snippet_work_against_the_api() {
    let db = fresh_database().await;
    let cp = ControlPlane::start(&db).await;
    let dp = DataPlane::start_ready(&db).await;
    let upstream = EchoUpstream::start().await;
    let api = cp.admin();
    let key = cp.admin_key.as_str();
    let r = api
        .post(
            "/provider-accounts",
            json!({"name": "acme", "endpoint_type": "other"}),
        )
        .await;
    assert_eq!(r.status, 201);
    for name in ["svc", "spare"] {
        let body = json!({"name": name, "base_url": format!("{}/base", upstream.url())});
        let r = api.post("/provider-accounts/acme/integrations", body).await;
        assert_eq!(r.status, 201);
    }
    assert_eq!(api.post("/teams", json!({"name": "ml"})).await.status, 201);
    assert_eq!(
        api.post("/virtual-accounts", json!({"name": "ci-bot"}))
            .await
            .status,
        201
    );

    // get: table, JSON and YAML; lists and single objects.
    let run = gatehouse(&cp, key, &["get", "accounts"], &[]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(
        lines[0].starts_with("NAME") && lines[1].starts_with("acme"),
        "{}",
        run.stdout
    );
    assert!(lines[1].contains("other"));
    let run = gatehouse(
        &cp,
        key,
        &["get", "integrations", "--account", "acme", "-o", "json"],
        &[],
    )
    .await;
    let list: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    let run = gatehouse(
        &cp,
        key,
        &[
            "get",
            "integration",
            "svc",
            "--account",
            "acme",
            "-o",
            "yaml",
        ],
        &[],
    )
    .await;
    assert!(
        run.stdout.contains("name: svc") && run.stdout.contains("base_url:"),
        "{}",
        run.stdout
    );
    let run = gatehouse(&cp, key, &["get", "integrations"], &[]).await;
    assert_eq!(run.code, 1);
    assert!(one_line(&run).contains("--account"));
    for (kind, expected) in [
        ("users", "user:admin@test.local"),
        ("teams", "ml"),
        ("virtual-accounts", "virtualaccount:ci-bot"),
    ] {
        let run = gatehouse(&cp, key, &["get", kind], &[]).await;
        assert_eq!(run.code, 0, "{kind}: {}", run.stderr);
        assert!(run.stdout.contains(expected), "{kind}: {}", run.stdout);
    }

    // delete, then the object is gone (a 404 is exit code 1).
    let run = gatehouse(
        &cp,
        key,
        &["delete", "integrations", "spare", "--account", "acme"],
        &[],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout.trim(), "integrations/spare deleted");
    let run = gatehouse(
        &cp,
        key,
        &["get", "integrations", "spare", "--account", "acme"],
        &[],
    )
    .await;
    assert_eq!(run.code, 1);
    assert!(one_line(&run).starts_with("error: 404:"), "{}", run.stderr);

    // keys: create (the secret printed once), use, list, revoke.
    let run = gatehouse(
        &cp,
        key,
        &[
            "keys",
            "create",
            "--name",
            "ci",
            "--owner",
            "virtualaccount:ci-bot",
            "-o",
            "json",
        ],
        &[],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let created: Value = serde_json::from_str(&run.stdout).unwrap();
    let (id, secret) = (
        created["id"].as_str().unwrap(),
        created["secret"].as_str().unwrap(),
    );
    assert_eq!(
        gatehouse(&cp, secret, &["get", "accounts"], &[]).await.code,
        0
    );
    let run = gatehouse(&cp, key, &["keys", "list"], &[]).await;
    assert!(
        run.stdout.contains(id) && !run.stdout.contains(secret),
        "{}",
        run.stdout
    );
    let run = gatehouse(&cp, key, &["keys", "revoke", id], &[]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        gatehouse(&cp, secret, &["get", "accounts"], &[]).await.code,
        1
    );
    let run = gatehouse(&cp, key, &["get", "keys", id, "-o", "json"], &[]).await;
    let read: Value = serde_json::from_str(&run.stdout).unwrap();
    assert!(read["revoked_at"].is_string());

    // snippet: the key stays a placeholder; the curl command runs as printed.
    let gateway = ["--gateway-url", dp.url.as_str()];
    let args = [
        &["snippet", "acme", "svc", "--path", "v1/hello"][..],
        &gateway[..],
    ]
    .concat();
    let run = gatehouse(&cp, key, &args, &[]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stdout.contains(key));
    assert!(run.stdout.contains("$GATEHOUSE_API_KEY") && run.stdout.contains("import requests"));
    let curl: String = run
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("curl"))
        .take_while(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    let output = tokio::process::Command::new("bash")
        .args(["-c", &curl])
        .env("GATEHOUSE_API_KEY", key)
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{curl}");
    assert_eq!(upstream.last().unwrap().target, "/base/v1/hello");
    // The Python part parses (python3 is already needed by deploy/lint.sh; `requests` is not
    // assumed installed, so it is not run).
    let python = run.stdout.split("# Python (requests)\n").nth(1).unwrap();
    let mut check = tokio::process::Command::new("python3")
        .args(["-c", "import ast, sys; ast.parse(sys.stdin.read())"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = check.stdin.take().unwrap();
    stdin.write_all(python.as_bytes()).await.unwrap();
    drop(stdin);
    assert!(check.wait().await.unwrap().success(), "{python}");
    let args = [&["snippet", "acme", "nope"][..], &gateway[..]].concat();
    let run = gatehouse(&cp, key, &args, &[]).await;
    assert_eq!(run.code, 1);
    assert!(one_line(&run).starts_with("error: 404:"));
}
