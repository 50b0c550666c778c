//! Reading a GraphQL request from HTTP: a POST's JSON body or a GET's query string,
//! with errors that say which parameter is wrong and what to send instead.

use async_graphql::parser::types::OperationType;
use async_graphql::{BatchRequest, Request, Variables};
use serde_json::Value;

/// The JSON types, as a person would name them in an error message.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

const EXAMPLE: &str = "send JSON like {\"query\": \"{ summary { users } }\"}";

/// A POST body: one request object, or a batch (a JSON array) of 1 to `max_batch`.
pub fn from_json_body(body: &[u8], max_batch: usize) -> Result<BatchRequest, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        format!(
            "the body is not valid JSON ({}); {EXAMPLE}",
            crate::analytics::time::truncate(&e.to_string(), 120)
        )
    })?;
    match value {
        Value::Object(_) => from_object(value, None).map(BatchRequest::Single),
        Value::Array(items) => {
            if items.is_empty() || items.len() > max_batch {
                return Err(format!(
                    "a batch holds {} operations; send 1 to {max_batch} (GRAPHQL_MAX_BATCH)",
                    items.len()
                ));
            }
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| from_object(item, Some(i)))
                .collect::<Result<Vec<_>, _>>()
                .map(BatchRequest::Batch)
        }
        other => Err(format!(
            "the body is {}, not a GraphQL request object; {EXAMPLE}",
            kind(&other)
        )),
    }
}

fn from_object(value: Value, index: Option<usize>) -> Result<Request, String> {
    let at = index.map_or_else(String::new, |i| format!("batch item {i}: "));
    let Value::Object(mut map) = value else {
        return Err(format!(
            "{at}each batch item must be a request object, got {}",
            kind(&value)
        ));
    };
    let take = |map: &mut serde_json::Map<String, Value>, key: &str| {
        map.remove(key).filter(|v| !v.is_null())
    };
    let query = take(&mut map, "query");
    let variables = take(&mut map, "variables");
    let operation_name = take(&mut map, "operationName");
    let extensions = take(&mut map, "extensions");
    let fields = Fields {
        query: match query {
            None => None,
            Some(Value::String(q)) => Some(q),
            Some(other) => {
                return Err(format!(
                    "{at}query must be a string holding a GraphQL document, got {}",
                    kind(&other)
                ));
            }
        },
        variables: match variables {
            None => None,
            Some(v @ Value::Object(_)) => Some(v),
            Some(other) => {
                return Err(format!(
                    "{at}variables must be an object of variable names to values, got {}",
                    kind(&other)
                ));
            }
        },
        operation_name: match operation_name {
            None => None,
            Some(Value::String(n)) => Some(n),
            Some(other) => {
                return Err(format!(
                    "{at}operationName must be a string, got {}",
                    kind(&other)
                ));
            }
        },
        extensions: match extensions {
            None => None,
            Some(v @ Value::Object(_)) => Some(v),
            Some(other) => {
                return Err(format!(
                    "{at}extensions must be an object, got {}",
                    kind(&other)
                ));
            }
        },
    };
    fields.into_request().map_err(|e| format!("{at}{e}"))
}

/// The parameters of one request, checked for type, from whichever road.
struct Fields {
    query: Option<String>,
    variables: Option<Value>,
    operation_name: Option<String>,
    extensions: Option<Value>,
}

impl Fields {
    fn into_request(self) -> Result<Request, String> {
        let extensions = match self.extensions {
            Some(Value::Object(map)) => map
                .into_iter()
                .map(|(k, v)| {
                    async_graphql::Value::from_json(v)
                        .map(|v| (k, v))
                        .map_err(|e| format!("extensions are not valid: {e}"))
                })
                .collect::<Result<_, _>>()?,
            _ => Default::default(),
        };
        let persisted = extensions_have_persisted_query(&extensions);
        let query = match self.query {
            Some(q) => q,
            None if persisted => String::new(),
            None => return Err(format!("the request has no query; {EXAMPLE}")),
        };
        if query.trim().is_empty() && !persisted {
            return Err(format!("the query is empty; {EXAMPLE}"));
        }
        let mut request = Request::new(query);
        if let Some(v) = self.variables {
            request = request.variables(Variables::from_json(v));
        }
        if let Some(name) = self.operation_name {
            request = request.operation_name(name);
        }
        request.extensions.0 = extensions;
        Ok(request)
    }
}

fn extensions_have_persisted_query(
    extensions: &std::collections::HashMap<String, async_graphql::Value>,
) -> bool {
    extensions.contains_key("persistedQuery")
}

/// A GET's query string: `query`, `variables` and `extensions` (JSON text) and
/// `operationName` (`operation_name` is read too, as older clients send it).
pub fn from_query_string(raw: &str) -> Result<Request, String> {
    let mut fields = Fields {
        query: None,
        variables: None,
        operation_name: None,
        extensions: None,
    };
    for (key, value) in url::form_urlencoded::parse(raw.as_bytes()) {
        let json = |name: &str| -> Result<Option<Value>, String> {
            if value.trim().is_empty() {
                return Ok(None);
            }
            match serde_json::from_str::<Value>(&value) {
                Ok(Value::Null) => Ok(None),
                Ok(v @ Value::Object(_)) => Ok(Some(v)),
                Ok(other) => Err(format!(
                    "the {name} parameter must be a JSON object, got {}",
                    kind(&other)
                )),
                Err(_) => Err(format!(
                    "the {name} parameter is not valid JSON: send a URL-encoded JSON object, e.g. {name}={{\"id\":1}}"
                )),
            }
        };
        match key.as_ref() {
            "query" => fields.query = Some(value.clone().into_owned()),
            "variables" => fields.variables = json("variables")?,
            "extensions" => fields.extensions = json("extensions")?,
            "operationName" => fields.operation_name = Some(value.clone().into_owned()),
            "operation_name" if fields.operation_name.is_none() => {
                fields.operation_name = Some(value.clone().into_owned())
            }
            _ => {}
        }
    }
    fields.operation_name = fields.operation_name.filter(|n| !n.is_empty());
    fields.into_request()
}

/// The type of the operation a request would run, when its document parses and the
/// operation is found (the executor reports every other case itself).
pub fn operation_type(request: &Request) -> Option<OperationType> {
    let doc = async_graphql::parser::parse_query(&request.query).ok()?;
    crate::graphql::select_operation(&doc, request.operation_name.as_deref()).map(|op| op.ty)
}
