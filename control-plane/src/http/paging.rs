//! Cursor paging for lists: `page_size` and an opaque `page_token`; the next token comes back in
//! `X-Next-Page-Token` (and a `Link: rel="next"` header), the body stays a plain array. Cursors
//! are the sort key of the last item, so concurrent inserts neither repeat nor skip items.

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use serde::Deserialize;
use shared::validation::FieldError;

use super::error::ApiResult;

const DEFAULT_PAGE_SIZE: u32 = 100;
const MAX_PAGE_SIZE: u32 = 1000;
pub const NEXT_PAGE_TOKEN: HeaderName = HeaderName::from_static("x-next-page-token");

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page, 1 to 1000 (default 100).
    page_size: Option<u32>,
    /// The `X-Next-Page-Token` of the previous page.
    page_token: Option<String>,
}

/// A validated page request.
pub struct Page {
    pub size: u32,
    /// The sort key to continue after.
    pub after: Option<String>,
}

impl PageQuery {
    pub fn page(&self) -> ApiResult<Page> {
        let size = self.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
        if !(1..=MAX_PAGE_SIZE).contains(&size) {
            return Err(
                FieldError::new("page_size", format!("must be 1 to {MAX_PAGE_SIZE}")).into(),
            );
        }
        let after = self
            .page_token
            .as_deref()
            .map(|token| {
                hex::decode(token)
                    .ok()
                    .and_then(|bytes| String::from_utf8(bytes).ok())
                    .ok_or_else(|| FieldError::new("page_token", "is not a token this API issued"))
            })
            .transpose()?;
        Ok(Page { size, after })
    }
}

impl Page {
    /// The first item only: for reads of one object through a list query.
    pub fn single() -> Page {
        Page {
            size: 1,
            after: None,
        }
    }

    /// What SQL should fetch: one more than the page, to know whether another page follows.
    pub fn fetch_limit(&self) -> i64 {
        i64::from(self.size) + 1
    }

    /// Trims `items` (fetched with [`Page::fetch_limit`]) to the page and makes the headers that
    /// point at the next one; `key` gives an item's sort key. `path` is the list's URL path.
    pub fn finish<T>(
        &self,
        mut items: Vec<T>,
        path: &str,
        key: impl Fn(&T) -> String,
    ) -> (HeaderMap, Vec<T>) {
        let mut headers = HeaderMap::new();
        if items.len() > self.size as usize {
            items.truncate(self.size as usize);
            if let Some(last) = items.last() {
                let token = hex::encode(key(last));
                let link = format!(
                    "<{path}?page_size={}&page_token={token}>; rel=\"next\"",
                    self.size
                );
                if let (Ok(token), Ok(link)) =
                    (HeaderValue::from_str(&token), HeaderValue::from_str(&link))
                {
                    headers.insert(NEXT_PAGE_TOKEN, token);
                    headers.insert(header::LINK, link);
                }
            }
        }
        (headers, items)
    }
}
