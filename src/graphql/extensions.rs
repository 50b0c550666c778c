//! Schema extensions: per-request DataLoaders, a code on every error (by its kind or
//! phase, never its text), the alias limit, operation metrics and logs.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextPrepareRequest,
    NextRequest,
};
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationType, Selection, SelectionSet,
};
use async_graphql::{Request, Response, ServerResult, Variables};

use super::errors::{code_each, code_of, coded};
use super::loaders::Loaders;
use crate::analytics::Analytics;
use crate::codes;
use crate::metrics::Metrics;
use crate::telemetry::RequestContext;

/// Gives every request, whichever road it came by, its own DataLoaders.
pub struct PerRequestLoaders;

impl ExtensionFactory for PerRequestLoaders {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(PerRequestLoaders)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for PerRequestLoaders {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        let request = match ctx.data_opt::<Analytics>() {
            Some(analytics) => request.data(Loaders::new(analytics.clone())),
            None => request,
        };
        next.run(ctx, request).await
    }
}

/// Gives every error a `code`, including the ones async-graphql raises itself, which
/// carry none. Our own errors are coded where they are made (resolvers, the parse,
/// validation and coercion checks, the alias limit, persisted queries); what is left
/// is coded by the phase it came from, never by its text: async-graphql's errors while
/// executing are `INTERNAL`, those before execution began (an unknown operation
/// name, …) `GRAPHQL_VALIDATION_FAILED`.
pub struct ErrorCodes;

impl ExtensionFactory for ErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorCodes)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for ErrorCodes {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let mut response = next.run(ctx).await;
        // One mistake, one error: async-graphql reports some validation errors twice.
        let mut seen = std::collections::HashSet::new();
        response
            .errors
            .retain(|e| seen.insert((e.message.clone(), format!("{:?}{:?}", e.locations, e.path))));
        // Execution coded its own (below): these failed before it began.
        code_each(&mut response.errors, codes::GRAPHQL_VALIDATION_FAILED);
        response
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let mut response = next.run(ctx, operation_name).await;
        code_each(&mut response.errors, codes::INTERNAL);
        response
    }
}

/// Refuses documents with more aliased fields than the limit: aliases multiply the
/// work of one field without adding depth, so the depth limit does not see them.
pub struct AliasLimit(pub usize);

impl ExtensionFactory for AliasLimit {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(AliasLimit(self.0))
    }
}

fn count_aliases(set: &SelectionSet) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(f) => {
                usize::from(f.node.alias.is_some()) + count_aliases(&f.node.selection_set.node)
            }
            Selection::InlineFragment(f) => count_aliases(&f.node.selection_set.node),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}

#[async_graphql::async_trait::async_trait]
impl Extension for AliasLimit {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let doc = next.run(ctx, query, variables).await?;
        let in_operations: usize = doc
            .operations
            .iter()
            .map(|(_, op)| count_aliases(&op.node.selection_set.node))
            .sum();
        let in_fragments: usize = doc
            .fragments
            .values()
            .map(|f| count_aliases(&f.node.selection_set.node))
            .sum();
        let total = in_operations + in_fragments;
        if total > self.0 {
            return Err(coded(
                format!(
                    "the document has {total} aliases; the limit is {} (GRAPHQL_MAX_ALIASES)",
                    self.0
                ),
                codes::GRAPHQL_VALIDATION_FAILED,
            ));
        }
        Ok(doc)
    }
}

/// Counts and times operations under a bounded name, logs their errors, and
/// tells the HTTP layer the name for its access log line.
pub struct OperationMetrics;

impl ExtensionFactory for OperationMetrics {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(OperationMetricsExtension::default())
    }
}

#[derive(Default)]
struct OperationMetricsExtension {
    /// (name in the document, type), learnt while parsing.
    seen: Mutex<Option<(Option<String>, &'static str)>>,
    /// The HTTP request's context; request data is only visible from parsing on.
    request: Mutex<Option<Arc<RequestContext>>>,
}

fn type_name(ty: OperationType) -> &'static str {
    match ty {
        OperationType::Query => "query",
        OperationType::Mutation => "mutation",
        OperationType::Subscription => "subscription",
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for OperationMetricsExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        if let (Some(request), Ok(mut slot)) =
            (ctx.data_opt::<Arc<RequestContext>>(), self.request.lock())
        {
            *slot = Some(request.clone());
        }
        let doc = next.run(ctx, query, variables).await?;
        let seen = match &doc.operations {
            DocumentOperations::Single(op) => (None, type_name(op.node.ty)),
            DocumentOperations::Multiple(ops) if ops.len() == 1 => match ops.iter().next() {
                Some((name, op)) => (Some(name.to_string()), type_name(op.node.ty)),
                None => (None, "unknown"),
            },
            // Several named operations: the request's operationName picks one (see `execute`).
            DocumentOperations::Multiple(_) => (None, "unknown"),
        };
        if let Ok(mut slot) = self.seen.lock() {
            *slot = Some(seen);
        }
        Ok(doc)
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        if let (Some(name), Ok(mut slot)) = (operation_name, self.seen.lock())
            && let Some((doc_name, ty)) = slot.as_mut()
            && doc_name.is_none()
        {
            *doc_name = Some(name.to_owned());
            if *ty == "unknown" {
                *ty = "query";
            }
        }
        next.run(ctx, operation_name).await
    }

    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let started = Instant::now();
        let response = next.run(ctx).await;
        let seen = self.seen.lock().ok().and_then(|s| s.clone());
        let Some(metrics) = ctx.data_opt::<Arc<Metrics>>() else {
            return response;
        };
        let (label, ty) = match &seen {
            Some((name, ty)) => (metrics.operation_label(name.as_deref()), *ty),
            // The document did not parse: no name to trust.
            None => ("invalid".to_owned(), "unknown"),
        };
        let outcome = if response.errors.is_empty() {
            "ok"
        } else {
            "error"
        };
        metrics
            .graphql_operations
            .with_label_values(&[label.as_str(), ty, outcome])
            .inc();
        metrics
            .graphql_duration
            .with_label_values(&[label.as_str(), ty])
            .observe(started.elapsed().as_secs_f64());
        let request = self.request.lock().ok().and_then(|r| r.clone());
        if let Some(request) = &request {
            request.set_operation(&label);
        }
        let request_id = request.as_ref().map_or("", |r| r.request_id.as_str());
        for error in &response.errors {
            let code = code_of(error);
            match code {
                codes::DATABASE_UNAVAILABLE => {
                    metrics.db_errors.with_label_values(&["unavailable"]).inc()
                }
                codes::TIMEOUT => metrics.db_errors.with_label_values(&["timeout"]).inc(),
                codes::INTERNAL => metrics.db_errors.with_label_values(&["other"]).inc(),
                _ => {}
            }
            if matches!(
                code,
                codes::DATABASE_UNAVAILABLE | codes::TIMEOUT | codes::INTERNAL
            ) {
                tracing::warn!(request_id, operation = %label, code, error = %error.message, "graphql error");
            } else {
                tracing::info!(request_id, operation = %label, code, error = %error.message, "graphql error");
            }
        }
        response
    }
}
