//! `/graphql` over HTTP, as the GraphQL-over-HTTP spec says: POST with a JSON body,
//! GET with a query string (queries only), the answer's media type negotiated from
//! `Accept`, and the IDE page for browsers.

mod accept;
mod cached;
mod request;

use std::sync::Arc;

use async_graphql::parser::types::OperationType;
use async_graphql::{BatchRequest, BatchResponse};
use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

pub use accept::Media;
pub use cached::{BodyMemo, ResponseCache, body_memo, response_cache};

use crate::analytics::cache::Source;
use crate::analytics::reports::revalidating;
use crate::auth::Principal;
use crate::http::encoding;
use crate::http::error::AppError;
use crate::http::state::AppState;
use crate::telemetry::RequestContext;

/// The request context the middleware made, for GraphQL extensions to read and fill.
pub type Context = Option<Extension<Arc<RequestContext>>>;

pub fn with_context(request: async_graphql::Request, context: &Context) -> async_graphql::Request {
    match context {
        Some(Extension(ctx)) => request.data(ctx.clone()),
        None => request,
    }
}

/// The authenticated caller, when authentication is on.
type Caller = Option<Extension<Principal>>;

pub async fn graphql_post(
    State(state): State<AppState>,
    context: Context,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let media = match accept::negotiate(&headers) {
        Ok(media) => media,
        Err(message) => return AppError::NotAcceptable(message).into_response(),
    };
    if let Err(message) = json_content_type(&headers) {
        return AppError::UnsupportedMediaType(message).into_response();
    }
    let body = match read_body(body, state.config.max_body_bytes).await {
        Ok(body) => body,
        Err(e) => return e.into_response(),
    };
    let principal = caller.as_ref().map(|Extension(p)| p);
    // With the cache on, a body read before is not parsed again (see `cached::BodyMemo`).
    let memo =
        (!state.config.cache.ttl.is_zero()).then(|| (body.clone(), principal.map(|p| p.0.clone())));
    if let Some(memo) = &memo
        && let Some(asked) = state.bodies.get(memo).await
    {
        return through_cache(&state, &context, &headers, media, asked).await;
    }
    let batch = match request::from_json_body(&body, state.config.graphql_max_batch) {
        Ok(batch) => batch,
        Err(message) => return AppError::BadRequest(message).into_response(),
    };
    let batch = match batch {
        BatchRequest::Single(request) => {
            let asked = Arc::new(cached::Asked::new(request, principal));
            if let Some(memo) = memo {
                state.bodies.insert(memo, asked.clone()).await;
            }
            return through_cache(&state, &context, &headers, media, asked).await;
        }
        other => other,
    };
    let mut batch = batch;
    if let Some(Extension(ctx)) = &context {
        batch = batch.data(ctx.clone());
    }
    let single = matches!(batch, BatchRequest::Single(_));
    match state.schema.execute_batch(batch).await {
        BatchResponse::Single(response) if single => respond(media, response),
        BatchResponse::Single(response) => respond_batch(vec![response]),
        BatchResponse::Batch(responses) => respond_batch(responses),
    }
}

pub async fn graphql_get(
    State(state): State<AppState>,
    context: Context,
    caller: Caller,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let raw = query.unwrap_or_default();
    if raw.is_empty() {
        let wants_html = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|accept| accept.contains("text/html"));
        if wants_html && state.config.graphql_playground {
            return crate::http::graphiql::page(state.auth.enabled());
        }
        return AppError::BadRequest(
            "GET /graphql needs a query parameter, e.g. /graphql?query={summary{users}}".into(),
        )
        .into_response();
    }
    let media = match accept::negotiate(&headers) {
        Ok(media) => media,
        Err(message) => return AppError::NotAcceptable(message).into_response(),
    };
    let request = match request::from_query_string(&raw) {
        Ok(request) => request,
        Err(message) => return AppError::BadRequest(message).into_response(),
    };
    // GET must not change state (GraphQL over HTTP); this schema has no mutations,
    // but the answer to asking for one on GET is still "use POST".
    if let Some(ty @ (OperationType::Mutation | OperationType::Subscription)) =
        request::operation_type(&request)
    {
        let what = if ty == OperationType::Mutation {
            "a mutation"
        } else {
            "a subscription"
        };
        return AppError::MethodNotAllowed(format!(
            "{what} cannot be sent with GET; send it with POST"
        ))
        .into_response();
    }
    let asked = cached::Asked::new(request, caller.as_ref().map(|Extension(p)| p));
    through_cache(&state, &context, &headers, media, Arc::new(asked)).await
}

/// One request through the whole-response cache (see `cached`; with the cache off, it is
/// executed and sent the same way, with its `ETag`): the stored answer when
/// it is fresh (or stale while it is refreshed), else executed once for every caller
/// asking the same at the same time; `Cache-Control: no-cache` executes it afresh (its
/// reports too) and stores that. The answer carries its `ETag` (and is `304` when
/// `If-None-Match` names it), freshness headers and the coding the client accepts.
async fn through_cache(
    state: &AppState,
    context: &Context,
    headers: &HeaderMap,
    media: Media,
    asked: Arc<cached::Asked>,
) -> Response {
    let key = asked.key.clone();
    let result = if state.config.cache.ttl.is_zero() {
        cached::execute(state, asked.request(), context).await
    } else if crate::http::encoding::wants_revalidation(headers) {
        let fresh = revalidating(cached::execute(state, asked.request(), context)).await;
        if let Ok(answer) = &fresh {
            state.responses.put(key.clone(), answer.clone()).await;
        }
        fresh
    } else {
        let (owned_state, owned_context, owned) = (state.clone(), context.clone(), asked.clone());
        let fetch = move || async move {
            cached::execute(&owned_state, owned.request(), &owned_context).await
        };
        state
            .responses
            .get(key.clone(), fetch)
            .await
            .map_err(|e| (*e).clone())
    };
    let answer = match result {
        Ok(answer) => answer,
        Err(unstored) => {
            let status = if media == Media::GraphqlResponse && unstored.request_error {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::OK
            };
            let mut out = (status, unstored.body.identity().clone()).into_response();
            let h = out.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(media.content_type()),
            );
            h.insert(header::VARY, HeaderValue::from_static(encoding::VARY));
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            return out;
        }
    };
    // An answer from the cache ran no operation: its label comes from the request.
    if answer.source != Source::Miss
        && let Some(Extension(ctx)) = context
    {
        ctx.set_operation(&state.metrics.operation_label(asked.operation()));
    }
    let policy = state.config.cache;
    let freshness = encoding::Freshness {
        age: answer.age,
        source: answer.source,
        ttl: policy.ttl,
        stale: policy.stale,
        private: state.auth.enabled(),
    };
    let held = answer.value.held_bytes();
    let (response, not_modified) = encoding::respond(
        headers,
        StatusCode::OK,
        HeaderValue::from_static(media.content_type()),
        &answer.value,
        freshness,
    )
    .await;
    if not_modified {
        state.metrics.http_not_modified.inc();
    }
    if answer.value.held_bytes() != held && !policy.ttl.is_zero() {
        state.responses.reweigh(&key).await;
    }
    response
}

/// `application/json` (any charset spelling of UTF-8) is the one request body type.
fn json_content_type(headers: &HeaderMap) -> Result<(), String> {
    let advice = "send the request as JSON with Content-Type: application/json";
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Err(format!("the request has no Content-Type; {advice}"));
    };
    let value = value.to_str().unwrap_or("").to_ascii_lowercase();
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or("").trim();
    if essence != "application/json" {
        let shown = crate::analytics::time::truncate(essence, 60);
        return Err(format!("Content-Type {shown:?} is not accepted; {advice}"));
    }
    for param in parts {
        if let Some((k, v)) = param.split_once('=')
            && k.trim() == "charset"
            && !matches!(v.trim().trim_matches('"'), "utf-8" | "utf8")
        {
            return Err(format!(
                "charset {:?} is not accepted: JSON is UTF-8; {advice}",
                crate::analytics::time::truncate(v.trim(), 30)
            ));
        }
    }
    Ok(())
}

/// The whole body, or 413 when it passes MAX_BODY_BYTES (`RequestBodyLimitLayer` cuts the stream).
async fn read_body(body: Body, max: usize) -> Result<Bytes, AppError> {
    axum::body::to_bytes(body, usize::MAX).await.map_err(|e| {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(err) = source {
            if err.is::<http_body_util::LengthLimitError>() {
                return AppError::PayloadTooLarge(max);
            }
            source = err.source();
        }
        AppError::BadRequest(format!(
            "the request body could not be read: {}",
            crate::analytics::time::truncate(&e.to_string(), 120)
        ))
    })
}

/// One GraphQL result as the spec frames it: no `data` entry when the request failed
/// before execution began (parse, validation, variable coercion).
#[derive(Serialize)]
struct Framed<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a async_graphql::Value>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    errors: &'a [async_graphql::ServerError],
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    extensions: &'a std::collections::BTreeMap<String, async_graphql::Value>,
}

/// Whether execution never began: such errors carry no path (field errors always do).
pub fn is_request_error(response: &async_graphql::Response) -> bool {
    matches!(response.data, async_graphql::Value::Null)
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty())
}

fn body_of(response: &async_graphql::Response) -> Framed<'_> {
    Framed {
        data: (!is_request_error(response)).then_some(&response.data),
        errors: &response.errors,
        extensions: &response.extensions,
    }
}

fn respond(media: Media, response: async_graphql::Response) -> Response {
    let status = if media == Media::GraphqlResponse && is_request_error(&response) {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let json = match serde_json::to_vec(&body_of(&response)) {
        Ok(json) => json,
        Err(e) => {
            return AppError::Internal(format!("serialising a response: {e}")).into_response();
        }
    };
    finish(status, media, json, &response)
}

/// Batches are not in the spec; every item keeps its own shape, the answer is 200 JSON.
fn respond_batch(responses: Vec<async_graphql::Response>) -> Response {
    let bodies: Vec<Framed<'_>> = responses.iter().map(body_of).collect();
    let json = match serde_json::to_vec(&bodies) {
        Ok(json) => json,
        Err(e) => {
            return AppError::Internal(format!("serialising a response: {e}")).into_response();
        }
    };
    let mut out = (StatusCode::OK, json).into_response();
    out.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(Media::Json.content_type()),
    );
    for response in &responses {
        out.headers_mut().extend(response.http_headers.clone());
    }
    out
}

fn finish(
    status: StatusCode,
    media: Media,
    json: Vec<u8>,
    response: &async_graphql::Response,
) -> Response {
    let mut out = (status, json).into_response();
    let headers = out.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(media.content_type()),
    );
    if response.is_ok()
        && let Some(value) = response.cache_control.value()
        && let Ok(value) = HeaderValue::from_str(&value)
    {
        headers.insert(header::CACHE_CONTROL, value);
    }
    headers.extend(response.http_headers.clone());
    // The media type, and with it the status, follows Accept.
    headers.insert(header::VARY, HeaderValue::from_static("accept"));
    out
}
