//! `snippet ACCOUNT ENDPOINT`: ready-to-run curl and Python `requests` calls of an endpoint
//! through a data plane, as a dashboard's "usage code" button would show. The endpoint is
//! looked up first, so a typo fails here rather than as a 404 later; the key appears as
//! `$GATEHOUSE_API_KEY`, never as its value.

use crate::CliResult;
use crate::client::Client;
use crate::error::CliError;
use crate::kinds::Kind;

pub fn snippet(
    client: &Client,
    account: &str,
    endpoint: &str,
    gateway_url: &str,
    path: &str,
    method: &str,
) -> CliResult {
    client.get(&Kind::Integrations.item(Some(account), endpoint)?)?;
    let method = method.to_ascii_uppercase();
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(CliError::Usage(format!(
            "--method {method} is not an HTTP method"
        )));
    }
    let url = proxy_url(gateway_url, account, endpoint, path);
    println!("{}", render(&url, &method));
    Ok(0)
}

/// `{gateway}/proxy-api/{account}/{endpoint}[/{path}]`.
fn proxy_url(gateway_url: &str, account: &str, endpoint: &str, path: &str) -> String {
    let base = format!(
        "{}/proxy-api/{account}/{endpoint}",
        gateway_url.trim_end_matches('/')
    );
    match path.trim_start_matches('/') {
        "" => base,
        rest => format!("{base}/{rest}"),
    }
}

fn render(url: &str, method: &str) -> String {
    let has_body = !matches!(method, "GET" | "HEAD" | "DELETE" | "OPTIONS");
    let mut curl = format!(
        "curl -sS -X {method} '{url}' \\\n  -H \"Authorization: Bearer $GATEHOUSE_API_KEY\""
    );
    let mut python_body = String::new();
    if has_body {
        curl.push_str(" \\\n  -H 'Content-Type: application/json' \\\n  -d '{}'");
        python_body.push_str("    json={},\n");
    }
    format!(
        "# curl\n{curl}\n\n# Python (requests)\nimport os\n\nimport requests\n\nresponse = requests.request(\n    \"{method}\",\n    \"{url}\",\n    headers={{\"Authorization\": f\"Bearer {{os.environ['GATEHOUSE_API_KEY']}}\"}},\n{python_body}    timeout=60,\n)\nprint(response.status_code)\nprint(response.text)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_join_cleanly_and_the_key_stays_a_placeholder() {
        assert_eq!(
            proxy_url("http://gw/", "acme", "svc", ""),
            "http://gw/proxy-api/acme/svc"
        );
        assert_eq!(
            proxy_url("http://gw", "acme", "svc", "/v1/x?a=1"),
            "http://gw/proxy-api/acme/svc/v1/x?a=1"
        );
        let text = render("http://gw/proxy-api/acme/svc", "POST");
        assert!(
            text.contains("$GATEHOUSE_API_KEY") && text.contains("os.environ['GATEHOUSE_API_KEY']")
        );
        assert!(text.contains("-d '{}'") && text.contains("json={},"));
        assert!(!render("http://gw/x", "GET").contains("-d "));
    }
}
