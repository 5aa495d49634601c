//! Headless Chromium for the dashboard's tests: Debian's `chromium`, driven by its
//! `chromedriver` over WebDriver (fantoccini), with a fresh profile and driver port per test.
//! Nothing downloads a browser: both packages must be installed (`scripts/test` installs them).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::error::CmdError;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

use crate::wait_until;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long a page may take to show what a test waits for.
const PATIENCE: Duration = Duration::from_secs(15);

/// The widths screenshots are taken at: a laptop and a phone.
pub const SCREENS: [(&str, u32, u32); 2] = [("desktop", 1280, 800), ("phone", 390, 844)];

pub struct Browser {
    pub client: Client,
    /// chromedriver's process group, which holds the browser it starts.
    driver_group: u32,
    _driver: tokio::process::Child,
    profile: PathBuf,
}

impl Browser {
    /// A browser showing pages at 1280×800.
    pub async fn start() -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let driver = tokio::process::Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{CHROMEDRIVER}: {e} (apt-get install chromium chromium-driver; scripts/test does)")
            });
        let driver_group = driver.id().unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let http = crate::http_client();
        wait_until(Duration::from_secs(10), "chromedriver ready", || async {
            http.get(format!("{url}/status"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        })
        .await;
        let profile =
            std::env::temp_dir().join(format!("gatehouse-chromium-{}", uuid::Uuid::new_v4()));
        // Without the networking flags Chromium keeps dialling Google's hosts, which this
        // offline machine refuses.
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!("a JSON object literal")
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&url)
            .await
            .unwrap();
        let browser = Browser {
            client,
            driver_group,
            _driver: driver,
            profile,
        };
        browser.resize_viewport(1280, 800).await;
        browser
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    /// The first element matching `css`, once there is one.
    pub async fn find(&self, css: &str) -> Element {
        self.client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} within {PATIENCE:?}: {e}"))
    }

    /// The first element matching `css` whose text contains `text`, once there is one.
    pub async fn find_text(&self, css: &str, text: &str) -> Element {
        let matching = |elements: Vec<Element>| async move {
            for element in elements {
                if element.text().await.is_ok_and(|t| t.contains(text)) {
                    return Some(element);
                }
            }
            None
        };
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let elements = self.client.find_all(Locator::Css(css)).await.unwrap();
            if let Some(element) = matching(elements).await {
                return element;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {css} containing {text:?} within {PATIENCE:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clears the field `css` and types `text` into it.
    pub async fn fill(&self, css: &str, text: &str) {
        until_fresh(|| async {
            let input = self.find(css).await;
            input.clear().await?;
            input.send_keys(text).await
        })
        .await;
    }

    /// Clicks the first `css` element whose text contains `text`.
    pub async fn click(&self, css: &str, text: &str) {
        until_fresh(|| async { self.find_text(css, text).await.click().await }).await;
    }

    /// The page at both [`SCREENS`] sizes, as `{dir}/{name}-{screen}.png`; the viewport is back
    /// at the desktop size afterwards.
    pub async fn screenshots(&self, dir: &Path, name: &str) {
        std::fs::create_dir_all(dir).unwrap();
        for (screen, width, height) in SCREENS.iter().rev() {
            self.resize_viewport(*width, *height).await;
            let png = self.client.screenshot().await.unwrap();
            std::fs::write(dir.join(format!("{name}-{screen}.png")), png).unwrap();
        }
    }

    /// Sizes the window so that the page itself (the viewport) is `width`×`height`: WebDriver
    /// sizes the outer window, which includes the browser's own (invisible) chrome.
    pub async fn resize_viewport(&self, width: u32, height: u32) {
        self.client.set_window_size(width, height).await.unwrap();
        let inner = self
            .client
            .execute("return [window.innerWidth, window.innerHeight];", vec![])
            .await
            .unwrap();
        let extra = |i: usize, outer: u32| {
            let inner = inner[i].as_u64().unwrap_or(u64::from(outer));
            outer.saturating_sub(u32::try_from(inner).unwrap_or(outer))
        };
        let (extra_w, extra_h) = (extra(0, width), extra(1, height));
        self.client
            .set_window_size(width + extra_w, height + extra_h)
            .await
            .unwrap();
        // Layout settles on the next frame.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    /// Ends the session (Chromium quits) and the driver.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

/// Runs `action` again while it fails on an element that went stale: pages redraw parts of
/// themselves when an answer arrives, which can replace an element between finding and using it.
async fn until_fresh<F, Fut>(mut action: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), CmdError>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match action().await {
            Ok(()) => return,
            Err(e) if e.is_stale_element_reference() && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
}

impl Drop for Browser {
    /// Whatever the test did, no browser outlives it: the driver's whole process group goes.
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver_group)])
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
