//! `/graphql` over HTTP (POST JSON, GET query string) and the offline playground page.

use async_graphql::http::parse_query_string;
use async_graphql_axum::{GraphQLBatchRequest, GraphQLResponse};
use std::sync::Arc;

use axum::Extension;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

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

/// A self-contained playground: no CDN, so it works on an air-gapped laptop or cluster.
const PLAYGROUND: &str = include_str!("../assets/playground.html");

pub async fn graphql_post(
    State(state): State<AppState>,
    context: Context,
    request: GraphQLBatchRequest,
) -> GraphQLResponse {
    let mut batch = request.into_inner();
    if let Some(Extension(ctx)) = &context {
        batch = batch.data(ctx.clone());
    }
    state.schema.execute_batch(batch).await.into()
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
        if wants_html {
            return Html(PLAYGROUND).into_response();
        }
        return AppError::BadRequest(
            "GET /graphql needs a query parameter, e.g. /graphql?query={summary{users}}".into(),
        )
        .into_response();
    }
    match parse_query_string(&query) {
        Ok(request) => {
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
