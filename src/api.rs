//! `/graphql` over HTTP (POST JSON, GET query string) and the offline playground page.

use async_graphql::http::parse_query_string;
use async_graphql::{BatchRequest, ParseRequestError};
use async_graphql_axum::{GraphQLBatchRequest, GraphQLResponse};
use axum::Json;
use serde_json::json;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::AppError;
use crate::startup::AppState;
use crate::telemetry::RequestContext;

/// The request context the middleware made, for GraphQL extensions to read and fill.
pub type Context = Option<Extension<Arc<RequestContext>>>;

pub fn with_context(request: async_graphql::Request, context: &Context) -> async_graphql::Request {
    match context {
        Some(Extension(ctx)) => request.data(ctx.clone()),
        None => request,
    }
}

/// The GraphQL extractor's rejections as JSON errors a person can act on.
pub struct JsonRejection(ParseRequestError);

impl From<ParseRequestError> for JsonRejection {
    fn from(e: ParseRequestError) -> Self {
        Self(e)
    }
}

impl IntoResponse for JsonRejection {
    fn into_response(self) -> Response {
        let text = format!("{}", self.0);
        // A streamed body cut off by MAX_BODY_BYTES surfaces as an I/O error.
        if matches!(self.0, ParseRequestError::PayloadTooLarge)
            || text.contains("length limit exceeded")
        {
            let body = json!({ "error": { "code": "PAYLOAD_TOO_LARGE", "message": "the request body is over the limit (MAX_BODY_BYTES)" } });
            return (StatusCode::PAYLOAD_TOO_LARGE, Json(body)).into_response();
        }
        AppError::BadRequest(format!(
            "invalid GraphQL request body: {}; send JSON like {{\"query\": \"{{ summary {{ users }} }}\"}}",
            crate::analytics::time::truncate(&text, 200)
        ))
        .into_response()
    }
}

pub async fn graphql_post(
    State(state): State<AppState>,
    context: Context,
    request: GraphQLBatchRequest<JsonRejection>,
) -> Response {
    let mut batch = request.into_inner();
    // An empty JSON array arrives as one request with no query and no persisted hash.
    if let BatchRequest::Single(r) = &batch
        && r.query.trim().is_empty()
        && !r.extensions.contains_key("persistedQuery")
    {
        return AppError::BadRequest(
            "empty GraphQL request: send {\"query\": \"…\"} or a batch of 1 to GRAPHQL_MAX_BATCH operations".into(),
        )
        .into_response();
    }
    if let BatchRequest::Batch(requests) = &batch {
        let max = state.config.graphql_max_batch;
        if requests.is_empty() || requests.len() > max {
            return AppError::BadRequest(format!(
                "a batch holds {} operations; send 1 to {max} (GRAPHQL_MAX_BATCH)",
                requests.len()
            ))
            .into_response();
        }
    }
    if let Some(Extension(ctx)) = &context {
        batch = batch.data(ctx.clone());
    }
    GraphQLResponse::from(state.schema.execute_batch(batch).await).into_response()
}

pub async fn graphql_get(
    State(state): State<AppState>,
    context: Context,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    let query = query.unwrap_or_default();
    if query.is_empty() {
        if wants_html && state.config.graphql_playground {
            return crate::graphiql::page(state.auth.enabled());
        }
        return AppError::BadRequest(
            "GET /graphql needs a query parameter, e.g. /graphql?query={summary{users}}".into(),
        )
        .into_response();
    }
    match parse_query_string(&query) {
        Ok(mut request) => {
            // The GraphQL-over-HTTP spec names it `operationName`; the parser only reads
            // `operation_name`, so stock clients' GETs would run the wrong operation.
            if let Some((_, name)) =
                url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "operationName")
            {
                request.operation_name = Some(name.into_owned());
            }
            let request = with_context(request, &context);
            GraphQLResponse::from(state.schema.execute(request).await).into_response()
        }
        Err(e) => (
            StatusCode::BAD_REQUEST,
            AppError::BadRequest(format!("invalid GraphQL GET request: {e}")),
        )
            .into_response(),
    }
}
