//! The browser IDE on `GET /graphql`: GraphiQL from its pinned npm release, every
//! file served by the gateway itself (no CDN, so it works air-gapped).
//!
//! build.rs sets `cfg(graphiql_bundled)` when `npm ci --prefix assets/graphiql`
//! has put the release files into `assets/graphiql/node_modules`; without them
//! the simple offline playground (`assets/playground.html`) is served instead.
//! `GRAPHQL_PLAYGROUND=false` turns off the page and its assets alike.

use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::auth::{self, AuthConfig};
use crate::http::error::AppError;

/// Where the assets live: `/graphql/assets/<package>-<version>/<file>` for release
/// files (cached for a year: a new version is a new URL), `/graphql/assets/<file>` for ours.
pub const ASSETS: &str = "/graphql/assets";

/// Whether the gateway was built with the GraphiQL release files.
pub const BUNDLED: bool = cfg!(graphiql_bundled);

/// What the page may load: only the gateway itself. GraphiQL's styling library
/// (emotion) and CodeMirror write `<style>` elements and style attributes at
/// run time, so styles also allow 'unsafe-inline' (styles only, never scripts);
/// its fonts are `data:` URLs inside graphiql.min.css.
#[cfg(graphiql_bundled)]
pub const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     font-src 'self' data:; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// The fallback playground's own inline script and style, allowed by their hashes.
#[cfg(not(graphiql_bundled))]
static PAGE_CSP_FALLBACK: LazyLock<String> = LazyLock::new(|| {
    let hash = |open: &str, close: &str| {
        use base64::Engine;
        use sha2::Digest;
        let body = FALLBACK
            .split_once(open)
            .and_then(|(_, rest)| rest.split_once(close))
            .map_or("", |(body, _)| body);
        let digest = sha2::Sha256::digest(body.as_bytes());
        format!(
            "'sha256-{}'",
            base64::engine::general_purpose::STANDARD.encode(digest)
        )
    };
    format!(
        "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; base-uri 'none'; \
         form-action 'none'; frame-ancestors 'none'",
        hash("<script>", "</script>"),
        hash("<style>", "</style>")
    )
});

#[cfg(not(graphiql_bundled))]
const FALLBACK: &str = include_str!("../../assets/playground.html");

/// The Content-Security-Policy sent with the page.
pub fn page_csp() -> &'static str {
    #[cfg(graphiql_bundled)]
    {
        PAGE_CSP
    }
    #[cfg(not(graphiql_bundled))]
    {
        PAGE_CSP_FALLBACK.as_str()
    }
}

#[cfg(graphiql_bundled)]
mod bundle {
    pub const GRAPHIQL_VERSION: &str = env!("GRAPHIQL_VERSION");
    pub const REACT_VERSION: &str = env!("REACT_VERSION");
    pub const REACT_DOM_VERSION: &str = env!("REACT_DOM_VERSION");
    const JS: &str = "text/javascript; charset=utf-8";
    const CSS: &str = "text/css; charset=utf-8";
    const TEXT: &str = "text/plain; charset=utf-8";

    pub struct Asset {
        /// `<package>-<version>` for release files, empty for the gateway's own.
        pub dir: String,
        pub file: &'static str,
        pub content_type: &'static str,
        pub body: &'static [u8],
    }

    pub fn assets() -> Vec<Asset> {
        let graphiql = format!("graphiql-{GRAPHIQL_VERSION}");
        let react = format!("react-{REACT_VERSION}");
        let react_dom = format!("react-dom-{REACT_DOM_VERSION}");
        let a = |dir: &str, file, content_type, body| Asset {
            dir: dir.to_owned(),
            file,
            content_type,
            body,
        };
        vec![
            a(
                &graphiql,
                "graphiql.min.js",
                JS,
                include_bytes!(env!("GRAPHIQL_JS")),
            ),
            a(
                &graphiql,
                "graphiql.min.css",
                CSS,
                include_bytes!(env!("GRAPHIQL_CSS")),
            ),
            a(
                &graphiql,
                "LICENSE-graphiql.txt",
                TEXT,
                include_bytes!(env!("GRAPHIQL_LICENSE")),
            ),
            a(
                &graphiql,
                "THIRD-PARTY-LICENSES.txt",
                TEXT,
                include_bytes!(env!("GRAPHIQL_NOTICES")),
            ),
            a(
                &react,
                "react.production.min.js",
                JS,
                include_bytes!(env!("REACT_JS")),
            ),
            a(
                &react,
                "LICENSE-react.txt",
                TEXT,
                include_bytes!(env!("REACT_LICENSE")),
            ),
            a(
                &react_dom,
                "react-dom.production.min.js",
                JS,
                include_bytes!(env!("REACT_DOM_JS")),
            ),
            a(
                "",
                "init.js",
                JS,
                include_bytes!("../../assets/graphiql/init.js"),
            ),
            a(
                "",
                "page.css",
                CSS,
                include_bytes!("../../assets/graphiql/page.css"),
            ),
        ]
    }

    pub const PAGE: &str = include_str!("../../assets/graphiql/index.html");
}

#[cfg(graphiql_bundled)]
static ASSET_TABLE: LazyLock<Vec<bundle::Asset>> = LazyLock::new(bundle::assets);

#[cfg(graphiql_bundled)]
static PAGES: LazyLock<[String; 2]> = LazyLock::new(|| {
    let fill = |auth: &str| {
        bundle::PAGE
            .replace("{{GRAPHIQL_VERSION}}", bundle::GRAPHIQL_VERSION)
            .replace("{{REACT_VERSION}}", bundle::REACT_VERSION)
            .replace("{{REACT_DOM_VERSION}}", bundle::REACT_DOM_VERSION)
            .replace("{{AUTH}}", auth)
    };
    [fill("off"), fill("on")]
});

/// The IDE page; with authentication on, its headers editor opens with an `X-API-Key` entry.
pub fn page(auth_on: bool) -> Response {
    #[cfg(graphiql_bundled)]
    let body = PAGES[usize::from(auth_on)].clone();
    #[cfg(not(graphiql_bundled))]
    let body = {
        let _ = auth_on;
        FALLBACK.to_owned()
    };
    let mut response = axum::response::Html(body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(page_csp()),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// The asset routes, for the router's unauthenticated part (they carry no data).
/// Register them only when the playground is on.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/graphql/assets/{file}", get(own_asset))
        .route("/graphql/assets/{dir}/{file}", get(release_asset))
}

async fn own_asset(Path(file): Path<String>) -> Response {
    asset("", &file)
}

async fn release_asset(Path((dir, file)): Path<(String, String)>) -> Response {
    asset(&dir, &file)
}

#[cfg(graphiql_bundled)]
fn asset(dir: &str, file: &str) -> Response {
    let Some(found) = ASSET_TABLE.iter().find(|a| a.dir == dir && a.file == file) else {
        return AppError::NotFound.into_response();
    };
    // Release files carry their version in the URL: a new release is a new URL.
    let cache = if found.dir.is_empty() {
        "no-cache"
    } else {
        "public, max-age=31536000, immutable"
    };
    (
        [
            (header::CONTENT_TYPE, found.content_type),
            (header::CACHE_CONTROL, cache),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        found.body,
    )
        .into_response()
}

#[cfg(not(graphiql_bundled))]
fn asset(_dir: &str, _file: &str) -> Response {
    AppError::NotFound.into_response()
}

/// A browser asking for the IDE page: what `http::graphql::graphql_get` answers with [`page`].
fn is_page_request(method: &Method, headers: &HeaderMap, query: Option<&str>) -> bool {
    (method == Method::GET || method == Method::HEAD)
        && query.unwrap_or_default().is_empty()
        && headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|accept| accept.contains("text/html"))
}

/// State of [`require_auth_except_page`]: the auth settings and whether the page is on.
#[derive(Clone)]
pub struct AuthExceptPage {
    pub auth: Arc<AuthConfig>,
    pub page_on: bool,
}

/// [`auth::require`] for the data roads, except the IDE page itself: it carries
/// no data, so a browser can open it and then send `X-API-Key` from its headers editor.
pub async fn require_auth_except_page(
    State(state): State<AuthExceptPage>,
    req: Request,
    next: Next,
) -> Response {
    if state.page_on
        && req.uri().path() == "/graphql"
        && is_page_request(req.method(), req.headers(), req.uri().query())
    {
        return next.run(req).await;
    }
    auth::require(State(state.auth), req, next).await
}
