//! The dashboard in a real browser (headless Chromium over WebDriver) against a real control
//! plane, data plane and upstream: sign in, the "Add provider account" wizard with its
//! validation errors, the usage snippet copied and its curl run as a process, the request in
//! the traces view, an API key created and revoked. Screenshots of the main pages at a laptop
//! and a phone size go to `target/screenshots/`.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::Duration;

use fantoccini::key::Key;
use gatehouse_tests::browser::Browser;
use gatehouse_tests::upstream::EchoUpstream;
use gatehouse_tests::{ControlPlane, DataPlane, config_version, fresh_database, wait_until};

fn screenshot_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("screenshots")
}

/// Waits until the error line beside the field whose input matches `input` says `expected`.
async fn error_beside(browser: &Browser, input: &str, expected: &str) {
    let error = browser.find(&format!(".field:has({input}) .error")).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = error.text().await.unwrap();
        if text.contains(expected) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "beside {input}: {text:?}, not {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What the clipboard holds: pasted (Ctrl+V, as a user would) into a scratch text area.
async fn clipboard(browser: &Browser) -> String {
    browser
        .client
        .execute(
            "const area = document.createElement('textarea'); area.id = 'paste-here';
             document.body.append(area); area.focus();",
            vec![],
        )
        .await
        .unwrap();
    let area = browser.find("#paste-here").await;
    area.send_keys(&(Key::Control + "v")).await.unwrap();
    let text = area.prop("value").await.unwrap().unwrap_or_default();
    browser
        .client
        .execute("document.getElementById('paste-here').remove();", vec![])
        .await
        .unwrap();
    text
}

/// Fills and submits the admin page's virtual account form.
async fn add_virtual_account(browser: &Browser, name: &str) {
    let section = "section[aria-label='Virtual accounts']";
    browser.fill(&format!("{section} input"), name).await;
    browser
        .click(&format!("{section} button"), "Add virtual account")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_end_to_end() {
    let db = fresh_database().await;
    // The data plane starts first (on migrated tables) so that the control plane can be told
    // its URL for the usage snippets.
    control_plane::db::connect_and_migrate(&secrecy::SecretString::from(db.clone()), 2)
        .await
        .unwrap();
    let dp = DataPlane::start_ready(&db).await;
    let cp = ControlPlane::start_with(&db, &["--public-gateway-url", &dp.url]).await;
    let upstream = EchoUpstream::start().await;
    let shots = screenshot_dir();
    let b = Browser::start().await;

    // Signing in: a wrong key is refused beside the key field; the admin's key is kept.
    b.goto(&format!("{}/ui/", cp.url)).await;
    b.find("input[name=key]").await;
    assert!(
        b.client
            .current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/ui/signin")
    );
    b.screenshots(&shots, "signin").await;
    b.fill("input[name=key]", "gh_not-a-key").await;
    b.click("button[type=submit]", "Sign in").await;
    error_beside(&b, "input[name=key]", "a valid API key is required").await;
    // From the keyboard: Enter submits.
    b.fill("input[name=key]", &(cp.admin_key.clone() + &Key::Enter))
        .await;
    b.find_text("h1", "Provider accounts").await;
    let url = b.client.current_url().await.unwrap();
    assert!(
        !url.as_str().contains(&cp.admin_key[3..]),
        "the key stays out of URLs"
    );

    // Wizard step 1.
    b.click("a.button", "Add provider account").await;
    b.fill("input[name=name]", "Bad_Name").await;
    // Checked while typing, before any request.
    error_beside(
        &b,
        "input[name=name]",
        "lowercase letters, digits and hyphens",
    )
    .await;
    b.screenshots(&shots, "wizard-account").await;
    b.fill("input[name=name]", "acme-speech").await;
    b.click("fieldset.headers button", "Add header").await;
    b.fill(
        "input[aria-label='Header auth (write-only): header name']",
        "X-Upstream-Key",
    )
    .await;
    b.fill(
        "input[aria-label='Header auth (write-only): header value']",
        "upstream-secret",
    )
    .await;
    b.click("button[type=submit]", "Next: endpoints").await;

    // Step 2: the API refuses a base URL ending in a slash, beside that field.
    b.fill("input[name=endpoint-name]", "speech").await;
    b.fill("input[name=base-url]", &format!("{}/", upstream.url()))
        .await;
    b.click("button[type=submit]", "Add endpoint").await;
    // The API's answer (it names the field), not only the check while typing.
    error_beside(
        &b,
        "input[name=base-url]",
        "base_url: must not end with a slash",
    )
    .await;
    b.screenshots(&shots, "wizard-endpoint").await;
    b.fill("input[name=base-url]", &upstream.url()).await;
    b.click("button[type=submit]", "Add endpoint").await;
    b.find_text("ul.plain li", "speech").await;

    // Step 3, then the account's page.
    b.click("button", "Next: access control").await;
    b.click("button[type=submit]", "Finish").await;
    b.find_text("h1", "acme-speech").await;
    let stored = cp.admin().get("/provider-accounts/acme-speech").await;
    assert_eq!(stored.status, 200, "{}", stored.text);
    assert_eq!(
        stored.json["header_auth"]["headers"]["X-Upstream-Key"],
        "********"
    );

    // The usage snippet: copied, then its curl run as is against the data plane.
    b.click("article[data-endpoint=speech] button", "Usage")
        .await;
    b.fill(".usage input", "hello?lang=en").await;
    b.click(".usage button", "Copy curl").await;
    b.find_text(".usage .copied", "Copied").await;
    let shown = b.find("pre[data-snippet=curl]").await.text().await.unwrap();
    let copied = clipboard(&b).await;
    assert_eq!(copied.trim(), shown.trim());
    assert!(
        copied.contains(&format!(
            "{}/proxy-api/acme-speech/speech/hello?lang=en",
            dp.url
        )),
        "{copied}"
    );
    b.screenshots(&shots, "account").await;
    let output = tokio::process::Command::new("sh")
        .args(["-c", &copied])
        .env("GATEHOUSE_API_KEY", &cp.admin_key)
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let seen = upstream
        .last()
        .expect("the upstream saw the snippet's request");
    assert_eq!(seen.target, "/hello?lang=en");
    assert_eq!(seen.header("x-upstream-key"), Some("upstream-secret"));
    assert!(String::from_utf8_lossy(&output.stdout).contains("/hello"));

    // The request in the traces view, then its detail.
    b.click("#nav a", "Traces").await;
    b.fill("input[name=account]", "acme-speech").await;
    wait_until(
        Duration::from_secs(15),
        "the request in the traces table",
        || async {
            b.click("button[type=submit]", "Apply filters").await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            let cells = b
                .client
                .find_all(fantoccini::Locator::Css("td.path"))
                .await
                .unwrap();
            for cell in cells {
                if cell.text().await.unwrap_or_default().contains("/hello") {
                    return true;
                }
            }
            false
        },
    )
    .await;
    b.screenshots(&shots, "traces").await;
    b.click("tbody a", "").await;
    // Traces keep the path, never the query (it may carry secrets).
    b.find_text("dd", "/hello").await;
    b.find_text("dd", "user:admin@test.local").await;
    b.screenshots(&shots, "trace").await;

    // Secrets are write-only: the settings form shows the stored header auth value empty, and
    // saving it unchanged keeps the stored value.
    b.click("#nav a", "Provider accounts").await;
    b.click("tbody a", "acme-speech").await;
    let stored = b
        .find("input[aria-label='Header auth (write-only): header value']")
        .await;
    assert_eq!(stored.prop("value").await.unwrap().as_deref(), Some(""));
    assert_eq!(
        stored.attr("type").await.unwrap().as_deref(),
        Some("password")
    );
    let before = config_version(&cp.db).await;
    b.click("button[type=submit]", "Save settings").await;
    wait_until(Duration::from_secs(10), "the settings saved", || async {
        config_version(&cp.db).await > before
    })
    .await;
    dp.wait_applied(config_version(&cp.db).await, Duration::from_secs(10))
        .await;
    let again = gatehouse_tests::http_client()
        .get(dp.proxy("acme-speech/speech/again"))
        .bearer_auth(&cp.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    let seen = upstream.last().unwrap();
    assert_eq!(seen.target, "/again");
    assert_eq!(seen.header("x-upstream-key"), Some("upstream-secret"));

    // A key: created (its secret shown once), working, revoked, refused.
    b.click("#nav a", "API keys").await;
    b.fill("input[name=key-name]", "dashboard-ci").await;
    b.click("button[type=submit]", "Create key").await;
    let secret = b
        .find("input.secret")
        .await
        .prop("value")
        .await
        .unwrap()
        .unwrap();
    assert!(secret.starts_with("gh_"), "{secret}");
    assert_eq!(cp.client(&secret).get("/api-keys").await.status, 200);
    b.click("tr[data-key=dashboard-ci] button", "Revoke").await;
    b.click("tr[data-key=dashboard-ci] button", "Yes, revoke")
        .await;
    b.find_text("tr[data-key=dashboard-ci] td.status", "revoked")
        .await;
    b.screenshots(&shots, "keys").await;
    wait_until(
        Duration::from_secs(5),
        "the revoked key refused",
        || async { cp.client(&secret).get("/api-keys").await.status == 401 },
    )
    .await;

    // Admin pages, and the list with its search.
    b.click("#nav a", "Admin").await;
    add_virtual_account(&b, "ci-bot").await;
    b.find_text("section[aria-label='Virtual accounts'] td", "ci-bot")
        .await;
    b.screenshots(&shots, "admin").await;
    b.click("#nav a", "Provider accounts").await;
    b.fill("input[type=search]", "speech").await;
    b.find_text("tbody a", "acme-speech").await;
    // One page: nothing more to load (WebDriver reads no text from hidden elements).
    for button in b
        .client
        .find_all(fantoccini::Locator::Css("button"))
        .await
        .unwrap()
    {
        assert_ne!(button.text().await.unwrap(), "Load more");
    }
    b.screenshots(&shots, "accounts").await;

    // Editing an endpoint: an unknown subject is refused beside the subjects field (the API names
    // `authorized_subjects[0]`); then the endpoint and the account are deleted.
    b.click("tbody a", "acme-speech").await;
    b.click("article[data-endpoint=speech] button", "Edit")
        .await;
    let subjects = "article[data-endpoint=speech] .field:has(input[placeholder^='user:ada']) input";
    b.fill(subjects, "team:nobody").await;
    b.click(
        "article[data-endpoint=speech] button[type=submit]",
        "Save endpoint",
    )
    .await;
    b.find_text(
        "article[data-endpoint=speech] .error",
        "authorized_subjects[0]: subject team:nobody does not exist",
    )
    .await;
    b.fill(subjects, "user:admin@test.local").await;
    b.click(
        "article[data-endpoint=speech] button[type=submit]",
        "Save endpoint",
    )
    .await;
    b.find_text(
        "article[data-endpoint=speech] p",
        "Authorized: user:admin@test.local",
    )
    .await;
    b.click("article[data-endpoint=speech] button", "Delete endpoint")
        .await;
    b.click("article[data-endpoint=speech] button", "Yes, delete")
        .await;
    wait_until(Duration::from_secs(10), "the endpoint deleted", || async {
        cp.admin()
            .get("/provider-accounts/acme-speech/integrations/speech")
            .await
            .status
            == 404
    })
    .await;
    b.click("button", "Delete account").await;
    b.click("button", "Yes, delete").await;
    b.find_text("h1", "Provider accounts").await;
    assert_eq!(
        cp.admin()
            .get("/provider-accounts/acme-speech")
            .await
            .status,
        404
    );

    // Signing out forgets the key.
    b.click("#nav button", "Sign out").await;
    b.find("input[name=key]").await;
    let stored = b
        .client
        .execute("return sessionStorage.length;", vec![])
        .await
        .unwrap();
    assert_eq!(stored, serde_json::json!(0));
    b.close().await;
}

/// A user who is not an admin: no admin link, only the accounts it may see, the API's refusal
/// shown in the form, and sent back to sign-in once its key is revoked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_for_a_user() {
    let db = fresh_database().await;
    let cp = ControlPlane::start(&db).await;
    let admin = cp.admin();
    assert_eq!(
        admin
            .post("/users", serde_json::json!({"email": "ada@example.com"}))
            .await
            .status,
        201
    );
    let key = admin
        .post(
            "/api-keys",
            serde_json::json!({"name": "ada", "owner": "user:ada@example.com"}),
        )
        .await;
    assert_eq!(key.status, 201, "{}", key.text);
    let (key_id, secret) = (
        key.json["id"].as_str().unwrap(),
        key.json["secret"].as_str().unwrap(),
    );
    assert_eq!(
        admin
            .post("/provider-accounts", serde_json::json!({"name": "hidden"}))
            .await
            .status,
        201
    );
    let b = Browser::start().await;

    b.goto(&format!("{}/ui/signin", cp.url)).await;
    b.fill("input[name=key]", &(secret.to_owned() + &Key::Enter))
        .await;
    b.find_text("h1", "Provider accounts").await;
    b.find_text("td.empty", "Nothing here yet").await;
    assert!(!b.find("#nav-admin").await.is_displayed().await.unwrap());

    b.goto(&format!("{}/ui/admin", cp.url)).await;
    add_virtual_account(&b, "ci-bot").await;
    b.find_text(
        "section[aria-label='Virtual accounts'] .error",
        "only admins",
    )
    .await;

    assert_eq!(
        admin.delete(&format!("/api-keys/{key_id}")).await.status,
        204
    );
    b.click("#nav a", "Traces").await;
    b.find("input[name=key]").await;
    b.close().await;
}
