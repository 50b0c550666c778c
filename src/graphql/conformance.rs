//! The extension that makes async-graphql answer as the GraphQL spec says: one-line
//! parse errors, wrong-typed literals as validation errors, variable coercion before
//! execution, the depth limit without introspection's `ofType` chains, and responses
//! in request order with non-null errors propagated (see `checks` and `shape`).

use std::sync::{Arc, Mutex};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextPrepareRequest,
    NextValidation,
};
use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, OperationDefinition};
use async_graphql::{
    IntrospectionMode, Request, Response, ServerError, ServerResult, ValidationResult, Variables,
};

use super::errors::with_code;
use super::{checks, shape};
use crate::codes;

pub struct Conformance {
    pub max_depth: usize,
}

impl ExtensionFactory for Conformance {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(PerRequest {
            max_depth: self.max_depth,
            state: Mutex::default(),
        })
    }
}

#[derive(Default)]
struct State {
    operation_name: Option<String>,
    variables: Variables,
    doc: Option<ExecutableDocument>,
    /// The variables with their defaults, once coerced.
    effective: Option<Variables>,
}

struct PerRequest {
    max_depth: usize,
    state: Mutex<State>,
}

/// A document that did not parse, coded by the parser's kind of error: a syntax error
/// is `GRAPHQL_PARSE_FAILED`, pest's multi-line drawing of it made one line (the
/// position stays in `locations`); the parser's other refusals (two anonymous
/// operations, a duplicate name, fragments nested past the recursion limit) are
/// validation rules in the spec.
fn parse_error(mut e: ServerError, query: &str) -> ServerError {
    // The hook hands over the parser's error as text only; parsing again, on failure
    // only, gives its kind.
    if !matches!(
        async_graphql::parser::parse_query(query),
        Err(async_graphql::parser::Error::Syntax { .. })
    ) {
        return with_code(e, codes::GRAPHQL_VALIDATION_FAILED);
    }
    let expected = e
        .message
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("= "))
        .collect::<Vec<_>>()
        .join("; ")
        .replace('_', " ");
    let at = e
        .locations
        .first()
        .map(|p| format!(" at line {}, column {}", p.line, p.column))
        .unwrap_or_default();
    e.message = if expected.is_empty() {
        format!("syntax error{at}")
    } else {
        format!("syntax error{at}: {expected}")
    };
    with_code(e, codes::GRAPHQL_PARSE_FAILED)
}

/// The operation a request runs: the named one, or the only one.
pub fn select<'d>(
    doc: &'d ExecutableDocument,
    name: Option<&str>,
) -> Option<&'d OperationDefinition> {
    match (&doc.operations, name) {
        (DocumentOperations::Single(op), None) => Some(&op.node),
        (DocumentOperations::Single(_), Some(_)) => None,
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name).map(|o| &o.node),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => {
            ops.values().next().map(|o| &o.node)
        }
        _ => None,
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for PerRequest {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        if let Ok(mut state) = self.state.lock() {
            state.operation_name = request.operation_name.clone();
            state.variables = request.variables.clone();
        }
        next.run(ctx, request).await
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let doc = next
            .run(ctx, query, variables)
            .await
            .map_err(|e| parse_error(e, query))?;
        if let Ok(mut state) = self.state.lock() {
            state.doc = Some(doc.clone());
        }
        Ok(doc)
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let theirs = next.run(ctx).await;
        let Ok(mut state) = self.state.lock() else {
            return theirs;
        };
        let Some(doc) = state.doc.take() else {
            return theirs;
        };
        let registry = &ctx.schema_env.registry;
        let literals = checks::argument_literals(registry, &doc);
        let validation = |errors: Vec<ServerError>| {
            Err(errors
                .into_iter()
                .map(|e| with_code(e, codes::GRAPHQL_VALIDATION_FAILED))
                .collect())
        };
        let operation = select(&doc, state.operation_name.as_deref());
        let (coercion, effective) = match operation {
            Some(op) => checks::variables(registry, op, &state.variables),
            None => (Vec::new(), Variables::default()),
        };
        let result = match theirs {
            Err(theirs) => {
                // async-graphql reports a bad argument value (a literal, or a variable's
                // value substituted into it) in its own words, once from the argument
                // rule and again from the complexity count; ours say it once per
                // mistake, so theirs are dropped, unless ours found nothing.
                let (values, other): (Vec<_>, Vec<_>) =
                    theirs.into_iter().partition(is_value_error);
                let mut errors = literals;
                errors.extend(other);
                if !errors.is_empty() {
                    validation(errors)
                } else if !coercion.is_empty() {
                    Err(bad_input(coercion))
                } else {
                    validation(values)
                }
            }
            Ok(_) if !literals.is_empty() => validation(literals),
            Ok(result) => {
                let depth = operation.map_or(0, |op| checks::depth(&doc, op));
                let introspection = operation
                    .filter(|_| registry.introspection_mode == IntrospectionMode::Disabled)
                    .and_then(|op| checks::introspection_at(&doc, op));
                if let Some(pos) = introspection {
                    validation(vec![ServerError::new(
                        "introspection is turned off on this server (GRAPHQL_INTROSPECTION=false); \
                         ask its operators for schema.graphql",
                        Some(pos),
                    )])
                } else if depth > self.max_depth {
                    validation(vec![ServerError::new(
                        format!(
                            "Query is nested too deep: {depth} levels of fields, the limit is {} (GRAPHQL_MAX_DEPTH)",
                            self.max_depth
                        ),
                        None,
                    )])
                } else if !coercion.is_empty() {
                    Err(bad_input(coercion))
                } else {
                    Ok(result)
                }
            }
        };
        state.effective = Some(effective);
        state.doc = Some(doc);
        result
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let mut response = next.run(ctx, operation_name).await;
        if matches!(response.data, async_graphql::Value::Null) {
            return response;
        }
        let Ok(state) = self.state.lock() else {
            return response;
        };
        if let (Some(doc), Some(vars)) = (&state.doc, &state.effective)
            && let Some(op) = select(doc, operation_name)
        {
            shape::Shaper::new(&ctx.schema_env.registry, doc, vars)
                .complete_root(op, &mut response.data);
        }
        response
    }
}

fn is_value_error(e: &ServerError) -> bool {
    [
        "Invalid value for argument",
        "Expected input type",
        "Failed to parse",
    ]
    .iter()
    .any(|p| e.message.starts_with(p))
}

fn bad_input(errors: Vec<ServerError>) -> Vec<ServerError> {
    errors
        .into_iter()
        .map(|e| with_code(e, codes::BAD_USER_INPUT))
        .collect()
}
