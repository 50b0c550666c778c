//! The schema as SDL, printed from the schema's own introspection answer the way
//! graphql-js's `printSchema(buildClientSchema(…))` prints it, so `schema.graphql`
//! is what every stock client sees (async-graphql's `sdl()` drops `@specifiedBy`
//! and formats differently). CI checks the two agree with graphql-js itself.

use serde_json::Value;

const INTROSPECTION: &str = r#"{
  __schema {
    queryType { name } mutationType { name } subscriptionType { name }
    types {
      kind name description specifiedByURL
      fields(includeDeprecated: true) { name description args(includeDeprecated: true) { ...Input } type { ...Ref } isDeprecated deprecationReason }
      inputFields(includeDeprecated: true) { ...Input }
      interfaces { name }
      enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
      possibleTypes { name }
    }
    directives { name description isRepeatable locations args(includeDeprecated: true) { ...Input } }
  }
}
fragment Input on __InputValue { name description type { ...Ref } defaultValue isDeprecated deprecationReason }
fragment Ref on __Type { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } }"#;

const BUILT_IN_SCALARS: [&str; 5] = ["String", "Int", "Float", "Boolean", "ID"];
const SPECIFIED_DIRECTIVES: [&str; 5] = ["include", "skip", "deprecated", "specifiedBy", "oneOf"];

/// The SDL of `schema`, with one trailing newline.
pub async fn print<Q, M, S>(schema: &async_graphql::Schema<Q, M, S>) -> Result<String, String>
where
    Q: async_graphql::ObjectType + 'static,
    M: async_graphql::ObjectType + 'static,
    S: async_graphql::SubscriptionType + 'static,
{
    let response = schema.execute(INTROSPECTION).await;
    if let Some(e) = response.errors.first() {
        return Err(format!("introspection failed: {}", e.message));
    }
    let data = response
        .data
        .into_json()
        .map_err(|e| format!("introspection answer: {e}"))?;
    Ok(print_introspection(&data["__schema"]) + "\n")
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn list<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn print_introspection(schema: &Value) -> String {
    let mut blocks = Vec::new();
    let root = |key: &str| schema.get(key).and_then(|t| str_of(t, "name"));
    let (query, mutation, subscription) = (
        root("queryType"),
        root("mutationType"),
        root("subscriptionType"),
    );
    let conventional = query.is_none_or(|q| q == "Query")
        && mutation.is_none_or(|m| m == "Mutation")
        && subscription.is_none_or(|s| s == "Subscription");
    // The schema has no description (async-graphql's `__Schema.description` is the
    // type's own text; /graphql answers null, see `shape`), so it is not asked for.
    if !conventional {
        let ops: Vec<String> = [
            ("query", query),
            ("mutation", mutation),
            ("subscription", subscription),
        ]
        .into_iter()
        .filter_map(|(op, name)| name.map(|n| format!("  {op}: {n}")))
        .collect();
        blocks.push(format!("schema {{\n{}\n}}", ops.join("\n")));
    }
    for d in list(schema, "directives") {
        let name = str_of(d, "name").unwrap_or("");
        if SPECIFIED_DIRECTIVES.contains(&name) {
            continue;
        }
        let locations: Vec<&str> = list(d, "locations")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let repeatable = if d["isRepeatable"] == Value::Bool(true) {
            " repeatable"
        } else {
            ""
        };
        blocks.push(format!(
            "{}directive @{name}{}{repeatable} on {}",
            description(d, "", true),
            args(list(d, "args"), ""),
            locations.join(" | ")
        ));
    }
    for t in list(schema, "types") {
        let name = str_of(t, "name").unwrap_or("");
        if name.starts_with("__") || BUILT_IN_SCALARS.contains(&name) {
            continue;
        }
        blocks.push(print_type(t, name));
    }
    blocks.join("\n\n")
}

fn print_type(t: &Value, name: &str) -> String {
    let desc = description(t, "", true);
    let interfaces = || {
        let names: Vec<&str> = list(t, "interfaces")
            .iter()
            .filter_map(|i| str_of(i, "name"))
            .collect();
        if names.is_empty() {
            String::new()
        } else {
            format!(" implements {}", names.join(" & "))
        }
    };
    match str_of(t, "kind").unwrap_or("") {
        "SCALAR" => {
            let by = str_of(t, "specifiedByURL")
                .map(|url| format!(" @specifiedBy(url: {})", quoted(url)))
                .unwrap_or_default();
            format!("{desc}scalar {name}{by}")
        }
        kind @ ("OBJECT" | "INTERFACE") => {
            let keyword = if kind == "OBJECT" {
                "type"
            } else {
                "interface"
            };
            let lines = list(t, "fields").iter().enumerate().map(|(i, f)| {
                format!(
                    "{}  {}{}: {}{}",
                    description(f, "  ", i == 0),
                    str_of(f, "name").unwrap_or(""),
                    args(list(f, "args"), "  "),
                    type_ref(&f["type"]),
                    deprecated(f)
                )
            });
            format!(
                "{desc}{keyword} {name}{}{}",
                interfaces(),
                block(lines.collect())
            )
        }
        "UNION" => {
            let members: Vec<&str> = list(t, "possibleTypes")
                .iter()
                .filter_map(|p| str_of(p, "name"))
                .collect();
            let eq = if members.is_empty() {
                String::new()
            } else {
                format!(" = {}", members.join(" | "))
            };
            format!("{desc}union {name}{eq}")
        }
        "ENUM" => {
            let lines = list(t, "enumValues").iter().enumerate().map(|(i, v)| {
                format!(
                    "{}  {}{}",
                    description(v, "  ", i == 0),
                    str_of(v, "name").unwrap_or(""),
                    deprecated(v)
                )
            });
            format!("{desc}enum {name}{}", block(lines.collect()))
        }
        "INPUT_OBJECT" => {
            let lines = list(t, "inputFields")
                .iter()
                .enumerate()
                .map(|(i, f)| format!("{}  {}", description(f, "  ", i == 0), input_value(f)));
            format!("{desc}input {name}{}", block(lines.collect()))
        }
        _ => String::new(),
    }
}

fn block(lines: Vec<String>) -> String {
    if lines.is_empty() {
        String::new()
    } else {
        format!(" {{\n{}\n}}", lines.join("\n"))
    }
}

fn args(args: &[Value], indentation: &str) -> String {
    if args.is_empty() {
        return String::new();
    }
    if args.iter().all(|a| str_of(a, "description").is_none()) {
        let inline: Vec<String> = args.iter().map(input_value).collect();
        return format!("({})", inline.join(", "));
    }
    let lines: Vec<String> = args
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let inner = format!("  {indentation}");
            format!(
                "{}{inner}{}",
                description(a, &inner, i == 0),
                input_value(a)
            )
        })
        .collect();
    format!("(\n{}\n{indentation})", lines.join("\n"))
}

fn input_value(v: &Value) -> String {
    let default = str_of(v, "defaultValue")
        .map(|d| format!(" = {d}"))
        .unwrap_or_default();
    format!(
        "{}: {}{default}{}",
        str_of(v, "name").unwrap_or(""),
        type_ref(&v["type"]),
        deprecated(v)
    )
}

fn type_ref(t: &Value) -> String {
    match str_of(t, "kind") {
        Some("NON_NULL") => format!("{}!", type_ref(&t["ofType"])),
        Some("LIST") => format!("[{}]", type_ref(&t["ofType"])),
        _ => str_of(t, "name").unwrap_or("").to_owned(),
    }
}

fn deprecated(v: &Value) -> String {
    if v.get("isDeprecated") != Some(&Value::Bool(true)) {
        return String::new();
    }
    match str_of(v, "deprecationReason") {
        Some(reason) if reason != "No longer supported" => {
            format!(" @deprecated(reason: {})", quoted(reason))
        }
        _ => " @deprecated".to_owned(),
    }
}

fn description(v: &Value, indentation: &str, first_in_block: bool) -> String {
    let Some(text) = str_of(v, "description") else {
        return String::new();
    };
    let printed = if printable_as_block(text) {
        block_string(text)
    } else {
        quoted(text)
    };
    let prefix = if !indentation.is_empty() && !first_in_block {
        format!("\n{indentation}")
    } else {
        indentation.to_owned()
    };
    format!(
        "{prefix}{}\n",
        printed.replace('\n', &format!("\n{indentation}"))
    )
}

/// A JSON-style quoted string, escaping what GraphQL's string syntax needs escaped.
fn quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || (0x7f..=0x9f).contains(&(c as u32)) => {
                out.push_str(&format!("\\u{:04X}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn is_blank(c: Option<char>) -> bool {
    matches!(c, Some(' ' | '\t'))
}

/// Whether `"""…"""` reproduces the text exactly (no control characters, no leading
/// blank line, no trailing blank line, no indentation common to every line).
fn printable_as_block(value: &str) -> bool {
    if value.is_empty() {
        return true;
    }
    let (mut empty_line, mut indent, mut common_indent, mut seen_non_empty) =
        (true, false, true, false);
    for c in value.chars() {
        match c {
            '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\r' => return false,
            '\n' => {
                if empty_line && !seen_non_empty {
                    return false;
                }
                seen_non_empty = true;
                empty_line = true;
                indent = false;
            }
            '\t' | ' ' => indent = indent || empty_line,
            _ => {
                common_indent = common_indent && indent;
                empty_line = false;
            }
        }
    }
    !(empty_line || (common_indent && seen_non_empty))
}

fn block_string(value: &str) -> String {
    let escaped = value.replace("\"\"\"", "\\\"\"\"");
    let lines: Vec<&str> = escaped.split('\n').collect();
    let single = lines.len() == 1;
    let force_leading = lines.len() > 1
        && lines[1..]
            .iter()
            .all(|l| l.is_empty() || is_blank(l.chars().next()));
    let trailing_triple = escaped.ends_with("\\\"\"\"");
    let trailing_quote = value.ends_with('"') && !trailing_triple;
    let force_trailing = trailing_quote || value.ends_with('\\');
    let multiple = !single
        || value.encode_utf16().count() > 70
        || force_trailing
        || force_leading
        || trailing_triple;
    let skip_leading = single && is_blank(value.chars().next());
    let mut out = String::from("\"\"\"");
    if (multiple && !skip_leading) || force_leading {
        out.push('\n');
    }
    out.push_str(&escaped);
    if multiple || force_trailing {
        out.push('\n');
    }
    out.push_str("\"\"\"");
    out
}
