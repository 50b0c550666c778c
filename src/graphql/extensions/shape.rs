//! Completes a response the way the GraphQL spec's "ExecuteSelectionSet" describes
//! and async-graphql 7.2 does not: every object's fields in the order the request
//! selected them (async-graphql collects them in completion order), and an error in
//! a non-null field nulls its parent up to the nearest nullable field (async-graphql
//! drops the failed key and keeps its siblings).

use async_graphql::Positioned;
use async_graphql::parser::types::{
    Directive, ExecutableDocument, Field, OperationDefinition, Selection, SelectionSet,
};
use async_graphql::registry::{MetaType, MetaTypeName, Registry};
use async_graphql::{Name, Value, Variables};
use async_graphql_value::Value as GqlValue;
use indexmap::IndexMap;

/// A field's value must be null but its type is non-null: the parent becomes null.
pub struct Propagate;

pub struct Shaper<'a> {
    registry: &'a Registry,
    doc: &'a ExecutableDocument,
    variables: &'a Variables,
}

type Collected<'a> = IndexMap<&'a str, Vec<&'a Field>>;

impl<'a> Shaper<'a> {
    pub fn new(
        registry: &'a Registry,
        doc: &'a ExecutableDocument,
        variables: &'a Variables,
    ) -> Self {
        Self {
            registry,
            doc,
            variables,
        }
    }

    /// Reorders and null-propagates `data`, the result of `operation`.
    pub fn complete_root(&self, operation: &'a OperationDefinition, data: &mut Value) {
        let root = self.registry.query_type.as_str();
        let Value::Object(map) = data else { return };
        let sets = [&operation.selection_set.node];
        if self.complete_object(map, Some(root), &sets).is_err() {
            *data = Value::Null;
        }
    }

    fn complete(
        &self,
        value: &mut Value,
        ty: &str,
        sets: &[&'a SelectionSet],
    ) -> Result<(), Propagate> {
        match MetaTypeName::create(ty) {
            MetaTypeName::NonNull(inner) => {
                if matches!(value, Value::Null) {
                    return Err(Propagate);
                }
                self.complete_nullable(value, inner, sets)
            }
            _ => {
                if self.complete_nullable(value, ty, sets).is_err() {
                    *value = Value::Null;
                }
                Ok(())
            }
        }
    }

    fn complete_nullable(
        &self,
        value: &mut Value,
        ty: &str,
        sets: &[&'a SelectionSet],
    ) -> Result<(), Propagate> {
        match (MetaTypeName::create(ty), value) {
            (_, Value::Null) => Ok(()),
            (MetaTypeName::List(item), Value::List(items)) => {
                for element in items {
                    self.complete(element, item, sets)?;
                }
                Ok(())
            }
            (MetaTypeName::Named(name), Value::Object(map)) => {
                // An abstract type's members are not known here: every fragment applies.
                let concrete = match self.registry.types.get(name) {
                    Some(MetaType::Object { .. }) => Some(name),
                    _ => None,
                };
                self.complete_object(map, concrete, sets)
            }
            _ => Ok(()),
        }
    }

    fn complete_object(
        &self,
        map: &mut IndexMap<Name, Value>,
        type_name: Option<&str>,
        sets: &[&'a SelectionSet],
    ) -> Result<(), Propagate> {
        let mut collected = Collected::new();
        for set in sets {
            self.collect(type_name, set, &mut collected, 0);
        }
        let mut old = std::mem::take(map);
        let mut failed = false;
        for (key, fields) in &collected {
            let name = fields[0].name.node.as_str();
            let ty = type_name.and_then(|t| self.field_type(t, name));
            let child_sets: Vec<&SelectionSet> =
                fields.iter().map(|f| &f.selection_set.node).collect();
            let value = match old.shift_remove(*key) {
                // `__Schema.description` is the schema's description; this schema has none
                // (async-graphql answers the `__Schema` type's own text).
                Some(_) if type_name == Some("__Schema") && name == "description" => Value::Null,
                Some(mut value) => {
                    match ty.as_deref() {
                        Some(ty) => {
                            if self.complete(&mut value, ty, &child_sets).is_err() {
                                failed = true;
                            }
                        }
                        None => self.reorder_untyped(&mut value, &child_sets),
                    }
                    value
                }
                // The field's resolver failed (its error is in `errors`).
                None => {
                    if ty.as_deref().is_some_and(|t| t.ends_with('!')) {
                        failed = true;
                    }
                    Value::Null
                }
            };
            map.insert(Name::new(*key), value);
        }
        // Nothing should be left; keep whatever is, after the selected fields.
        map.extend(old);
        if failed { Err(Propagate) } else { Ok(()) }
    }

    /// Order only, where the schema does not say the type (introspection internals).
    fn reorder_untyped(&self, value: &mut Value, sets: &[&'a SelectionSet]) {
        match value {
            Value::List(items) => items.iter_mut().for_each(|v| self.reorder_untyped(v, sets)),
            Value::Object(map) => {
                let mut collected = Collected::new();
                for set in sets {
                    self.collect(None, set, &mut collected, 0);
                }
                let mut old = std::mem::take(map);
                for (key, fields) in &collected {
                    if let Some(mut v) = old.shift_remove(*key) {
                        let child: Vec<&SelectionSet> =
                            fields.iter().map(|f| &f.selection_set.node).collect();
                        self.reorder_untyped(&mut v, &child);
                        map.insert(Name::new(*key), v);
                    }
                }
                map.extend(old);
            }
            _ => {}
        }
    }

    fn field_type(&self, type_name: &str, field: &str) -> Option<String> {
        match field {
            "__typename" => Some("String!".into()),
            "__schema" => Some("__Schema!".into()),
            "__type" => Some("__Type".into()),
            _ => self
                .registry
                .types
                .get(type_name)
                .and_then(|t| t.field_by_name(field))
                .map(|f| f.ty.clone()),
        }
    }

    /// The spec's CollectFields: response keys in document order, fragments expanded
    /// where their type condition applies and `@skip`/`@include` allow.
    fn collect(
        &self,
        type_name: Option<&str>,
        set: &'a SelectionSet,
        out: &mut Collected<'a>,
        depth: usize,
    ) {
        // Validation has refused fragment cycles; the bound only guards against surprises.
        if depth > 64 {
            return;
        }
        for item in &set.items {
            let directives = match &item.node {
                Selection::Field(f) => &f.node.directives,
                Selection::FragmentSpread(f) => &f.node.directives,
                Selection::InlineFragment(f) => &f.node.directives,
            };
            if !self.included(directives) {
                continue;
            }
            match &item.node {
                Selection::Field(f) => out
                    .entry(f.node.response_key().node.as_str())
                    .or_default()
                    .push(&f.node),
                Selection::FragmentSpread(spread) => {
                    if let Some(fragment) = self.doc.fragments.get(&spread.node.fragment_name.node)
                        && self.applies(
                            Some(fragment.node.type_condition.node.on.node.as_str()),
                            type_name,
                        )
                    {
                        self.collect(type_name, &fragment.node.selection_set.node, out, depth + 1);
                    }
                }
                Selection::InlineFragment(inline) => {
                    let condition = inline
                        .node
                        .type_condition
                        .as_ref()
                        .map(|c| c.node.on.node.as_str());
                    if self.applies(condition, type_name) {
                        self.collect(type_name, &inline.node.selection_set.node, out, depth + 1);
                    }
                }
            }
        }
    }

    fn applies(&self, condition: Option<&str>, type_name: Option<&str>) -> bool {
        match (condition, type_name) {
            (None, _) | (_, None) => true,
            (Some(c), Some(t)) => {
                c == t
                    || self
                        .registry
                        .types
                        .get(c)
                        .is_some_and(|ct| ct.is_possible_type(t))
            }
        }
    }

    fn included(&self, directives: &[Positioned<Directive>]) -> bool {
        directives.iter().all(|d| {
            let condition = match d.node.get_argument("if").map(|v| &v.node) {
                Some(GqlValue::Boolean(b)) => Some(*b),
                Some(GqlValue::Variable(name)) => match self.variables.get(name) {
                    Some(Value::Boolean(b)) => Some(*b),
                    _ => None,
                },
                _ => None,
            };
            !matches!(
                (d.node.name.node.as_str(), condition),
                ("skip", Some(true)) | ("include", Some(false))
            )
        })
    }
}
