//! Checks async-graphql 7.2 leaves to execution or words poorly, done before execution
//! so each mistake gets one error, one line, with the spec's kind of error:
//! - argument literals of the wrong type (`first: true`, `id: 2147483648`) are
//!   validation errors, like every other wrong-typed literal;
//! - variable values are coerced to their declared types (a missing required
//!   variable is "variable $x was not provided"), a request error;
//! - the depth limit, measured so that introspection's `ofType` chains, which every
//!   stock client nests 7 to 9 deep, do not count: data queries keep the limit.

use async_graphql::Positioned;
use async_graphql::parser::types::{
    BaseType, ExecutableDocument, OperationDefinition, Selection, SelectionSet, Type,
};
use async_graphql::registry::{MetaType, MetaTypeName, Registry};
use async_graphql::{Name, Pos, ServerError, Value, Variables};
use async_graphql_value::Value as GqlValue;

use crate::analytics::time::truncate;

/// Wrong-typed argument literals anywhere in the document (operations and fragments).
pub fn argument_literals(registry: &Registry, doc: &ExecutableDocument) -> Vec<ServerError> {
    let mut errors = Vec::new();
    let mut walk = |set: &SelectionSet, ty: &str| walk_literals(registry, set, ty, &mut errors, 0);
    for (_, op) in doc.operations.iter() {
        let root = match op.node.ty {
            async_graphql::parser::types::OperationType::Query => {
                Some(registry.query_type.as_str())
            }
            async_graphql::parser::types::OperationType::Mutation => {
                registry.mutation_type.as_deref()
            }
            async_graphql::parser::types::OperationType::Subscription => {
                registry.subscription_type.as_deref()
            }
        };
        if let Some(root) = root {
            walk(&op.node.selection_set.node, root);
        }
    }
    for fragment in doc.fragments.values() {
        walk(
            &fragment.node.selection_set.node,
            fragment.node.type_condition.node.on.node.as_str(),
        );
    }
    errors
}

fn walk_literals(
    registry: &Registry,
    set: &SelectionSet,
    parent: &str,
    errors: &mut Vec<ServerError>,
    depth: usize,
) {
    if depth > 256 {
        return;
    }
    for item in &set.items {
        match &item.node {
            Selection::Field(field) => {
                let Some(meta) = registry
                    .types
                    .get(parent)
                    .and_then(|t| t.field_by_name(&field.node.name.node))
                else {
                    continue; // unknown field: validation reports it
                };
                for (name, value) in &field.node.arguments {
                    let Some(arg) = meta.args.get(name.node.as_str()) else {
                        continue;
                    };
                    if let Err(problem) = literal(registry, &value.node, &arg.ty) {
                        errors.push(ServerError::new(
                            format!(
                                "argument {} of {}: expected {}, got {}{problem}",
                                name.node,
                                field.node.name.node,
                                arg.ty,
                                truncate(&value.node.to_string(), 60)
                            ),
                            Some(value.pos),
                        ));
                    }
                }
                let child = MetaTypeName::concrete_typename(&meta.ty);
                walk_literals(
                    registry,
                    &field.node.selection_set.node,
                    child,
                    errors,
                    depth + 1,
                );
            }
            Selection::InlineFragment(inline) => {
                let ty = inline
                    .node
                    .type_condition
                    .as_ref()
                    .map_or(parent, |c| c.node.on.node.as_str());
                walk_literals(
                    registry,
                    &inline.node.selection_set.node,
                    ty,
                    errors,
                    depth + 1,
                );
            }
            // Fragment definitions are walked once each, from their own type condition.
            Selection::FragmentSpread(_) => {}
        }
    }
}

/// `Ok` when a literal fits `ty`; `Err` carries a hint to append (may be empty).
fn literal(registry: &Registry, value: &GqlValue, ty: &str) -> Result<(), String> {
    match (MetaTypeName::create(ty), value) {
        (_, GqlValue::Variable(_)) => Ok(()),
        (MetaTypeName::NonNull(_), GqlValue::Null) => Err(": this argument cannot be null".into()),
        (MetaTypeName::NonNull(inner), v) => literal(registry, v, inner),
        (_, GqlValue::Null) => Ok(()),
        (MetaTypeName::List(item), GqlValue::List(items)) => {
            items.iter().try_for_each(|v| literal(registry, v, item))
        }
        (MetaTypeName::List(item), v) => literal(registry, v, item),
        (MetaTypeName::Named(name), v) => named(registry, name, Scalarish::Literal(v)),
    }
}

/// A literal (may hold variables, already excluded) or a variable's JSON value.
enum Scalarish<'a> {
    Literal(&'a GqlValue),
    Const(&'a Value),
}

const INT_RANGE: &str = ": Int is a whole number from -2147483648 to 2147483647";

fn named(registry: &Registry, name: &str, value: Scalarish<'_>) -> Result<(), String> {
    use Scalarish::*;
    let int = |n: &async_graphql::Number| {
        n.as_i64()
            .is_some_and(|i| i32::try_from(i).is_ok())
            .then_some(())
            .ok_or_else(|| INT_RANGE.to_owned())
    };
    let wrong = || Err(String::new());
    match (registry.types.get(name), value) {
        (Some(MetaType::Scalar { .. }), value) => match (name, value) {
            ("Int", Literal(GqlValue::Number(n)) | Const(Value::Number(n))) => int(n),
            ("Float", Literal(GqlValue::Number(_)) | Const(Value::Number(_))) => Ok(()),
            ("Boolean", Literal(GqlValue::Boolean(_)) | Const(Value::Boolean(_))) => Ok(()),
            ("ID", Literal(GqlValue::Number(n)) | Const(Value::Number(n))) => {
                n.is_i64().then_some(()).ok_or_default()
            }
            ("Int" | "Float" | "Boolean", _) => wrong(),
            // String, ID and this schema's own scalars (Date, DateTime) are strings;
            // whether a date string is a real date is the resolver's to say.
            (_, Literal(GqlValue::String(_)) | Const(Value::String(_))) => Ok(()),
            _ => wrong(),
        },
        (Some(MetaType::Enum { enum_values, .. }), Literal(GqlValue::Enum(v))) => enum_values
            .contains_key(v.as_str())
            .then_some(())
            .ok_or_else(|| {
                format!(
                    ": one of {}",
                    enum_values.keys().cloned().collect::<Vec<_>>().join(", ")
                )
            }),
        (Some(MetaType::Enum { enum_values, .. }), Literal(GqlValue::String(s))) => {
            Err(if enum_values.contains_key(s.as_str()) {
                format!(": write the enum value without quotes, {s}")
            } else {
                format!(
                    ": one of {}",
                    enum_values.keys().cloned().collect::<Vec<_>>().join(", ")
                )
            })
        }
        (
            Some(MetaType::Enum { enum_values, .. }),
            Const(v @ (Value::String(_) | Value::Enum(_))),
        ) => {
            let s = match v {
                Value::String(s) => s.as_str(),
                Value::Enum(s) => s.as_str(),
                _ => "",
            };
            enum_values.contains_key(s).then_some(()).ok_or_else(|| {
                format!(
                    ": one of {}",
                    enum_values.keys().cloned().collect::<Vec<_>>().join(", ")
                )
            })
        }
        (Some(MetaType::InputObject { input_fields, .. }), Literal(GqlValue::Object(map))) => {
            for (k, v) in map {
                let Some(f) = input_fields.get(k.as_str()) else {
                    return Err(format!(": {name} has no field {k}"));
                };
                literal(registry, v, &f.ty).map_err(|p| format!(": field {k}{p}"))?;
            }
            required_fields(input_fields, |k| map.contains_key(k), name)
        }
        (Some(MetaType::InputObject { input_fields, .. }), Const(Value::Object(map))) => {
            for (k, v) in map {
                let Some(f) = input_fields.get(k.as_str()) else {
                    return Err(format!(": {name} has no field {k}"));
                };
                coerce(registry, v, &f.ty).map_err(|p| format!(": field {k}{p}"))?;
            }
            required_fields(input_fields, |k| map.contains_key(k), name)
        }
        // Unknown type names are validation's to report.
        (None, _) => Ok(()),
        _ => wrong(),
    }
}

trait OkOrDefault {
    fn ok_or_default(self) -> Result<(), String>;
}

impl OkOrDefault for Option<()> {
    fn ok_or_default(self) -> Result<(), String> {
        self.ok_or_else(String::new)
    }
}

fn required_fields(
    fields: &indexmap::IndexMap<String, async_graphql::registry::MetaInputValue>,
    present: impl Fn(&str) -> bool,
    name: &str,
) -> Result<(), String> {
    match fields
        .values()
        .find(|f| f.ty.ends_with('!') && f.default_value.is_none() && !present(&f.name))
    {
        Some(f) => Err(format!(": {name} needs its field {}", f.name)),
        None => Ok(()),
    }
}

/// A variable's value against its declared type, as the spec's CoerceVariableValues.
fn coerce(registry: &Registry, value: &Value, ty: &str) -> Result<(), String> {
    match (MetaTypeName::create(ty), value) {
        (MetaTypeName::NonNull(_), Value::Null) => Err(": null is not allowed".into()),
        (MetaTypeName::NonNull(inner), v) => coerce(registry, v, inner),
        (_, Value::Null) => Ok(()),
        (MetaTypeName::List(item), Value::List(items)) => {
            items.iter().try_for_each(|v| coerce(registry, v, item))
        }
        (MetaTypeName::List(item), v) => coerce(registry, v, item),
        (MetaTypeName::Named(name), v) => named(registry, name, Scalarish::Const(v)),
    }
}

fn type_string(ty: &Type) -> String {
    let base = match &ty.base {
        BaseType::Named(name) => name.to_string(),
        BaseType::List(inner) => format!("[{}]", type_string(inner)),
    };
    if ty.nullable {
        base
    } else {
        format!("{base}!")
    }
}

/// The variables of `operation` coerced: errors, and the values with defaults applied.
pub fn variables(
    registry: &Registry,
    operation: &OperationDefinition,
    given: &Variables,
) -> (Vec<ServerError>, Variables) {
    let mut errors = Vec::new();
    let mut effective = Variables::default();
    for def in &operation.variable_definitions {
        let name = &def.node.name.node;
        let ty = type_string(&def.node.var_type.node);
        match given.get(name) {
            None => match def.node.default_value() {
                Some(default) => {
                    effective.insert(name.clone(), default.clone());
                }
                None if !def.node.var_type.node.nullable => errors.push(variable_error(
                    format!("variable ${name} was not provided; it is required ({ty})"),
                    def.pos,
                    name,
                )),
                None => {}
            },
            Some(value) => {
                match coerce(registry, value, &ty) {
                    Ok(()) => {}
                    Err(problem) => errors.push(variable_error(
                        format!(
                            "variable ${name}: expected {ty}, got {}{problem}",
                            truncate(&value.to_string(), 60)
                        ),
                        def.pos,
                        name,
                    )),
                }
                effective.insert(name.clone(), value.clone());
            }
        }
    }
    (errors, effective)
}

fn variable_error(message: String, pos: Pos, name: &Name) -> ServerError {
    let mut e = ServerError::new(message, Some(pos));
    e.extensions
        .get_or_insert_with(Default::default)
        .set("variable", name.as_str());
    e
}

/// How many nested `ofType` levels are free: stock clients' introspection queries
/// (graphql-js, graphql-core, gql, GraphiQL) nest 7 to 9; no type here nests deeper than 3.
pub const FREE_OF_TYPE: usize = 10;

/// The deepest field nesting of `operation`, fragments expanded; inside `__schema`
/// and `__type`, the first FREE_OF_TYPE levels of an `ofType` chain add none (each
/// walks one type reference, never a list), so data queries keep the whole limit.
pub fn depth(doc: &ExecutableDocument, operation: &OperationDefinition) -> usize {
    fn go(
        doc: &ExecutableDocument,
        set: &SelectionSet,
        introspection: Option<usize>,
        guard: usize,
    ) -> usize {
        if guard > 512 {
            return guard;
        }
        set.items
            .iter()
            .map(|item: &Positioned<Selection>| match &item.node {
                Selection::Field(f) => {
                    let name = f.node.name.node.as_str();
                    // Inside introspection: how many ofType levels this chain has used.
                    let (own, chain) = match (introspection, name) {
                        (Some(n), "ofType") => (usize::from(n >= FREE_OF_TYPE), Some(n + 1)),
                        (Some(_), _) => (1, Some(0)),
                        (None, "__schema" | "__type") => (1, Some(0)),
                        (None, _) => (1, None),
                    };
                    own + go(doc, &f.node.selection_set.node, chain, guard + 1)
                }
                Selection::InlineFragment(i) => {
                    go(doc, &i.node.selection_set.node, introspection, guard + 1)
                }
                Selection::FragmentSpread(s) => doc
                    .fragments
                    .get(&s.node.fragment_name.node)
                    .map_or(0, |f| {
                        go(doc, &f.node.selection_set.node, introspection, guard + 1)
                    }),
            })
            .max()
            .unwrap_or(0)
    }
    go(doc, &operation.selection_set.node, None, 0)
}

/// Where `operation` asks for `__schema` or `__type` (fragments on the root expanded).
pub fn introspection_at(doc: &ExecutableDocument, operation: &OperationDefinition) -> Option<Pos> {
    fn find(doc: &ExecutableDocument, set: &SelectionSet, guard: usize) -> Option<Pos> {
        if guard > 64 {
            return None;
        }
        set.items.iter().find_map(|item| match &item.node {
            Selection::Field(f) => {
                matches!(f.node.name.node.as_str(), "__schema" | "__type").then_some(f.pos)
            }
            Selection::InlineFragment(i) => find(doc, &i.node.selection_set.node, guard + 1),
            Selection::FragmentSpread(s) => doc
                .fragments
                .get(&s.node.fragment_name.node)
                .and_then(|f| find(doc, &f.node.selection_set.node, guard + 1)),
        })
    }
    find(doc, &operation.selection_set.node, 0)
}
