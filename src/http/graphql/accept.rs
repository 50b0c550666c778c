//! Content negotiation for `/graphql` (GraphQL over HTTP, "Accept"): the two media
//! types a GraphQL response can have, chosen from the client's `Accept` header.

use axum::http::{HeaderMap, header};

/// How an answer is framed; the choice changes status codes, not the body's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Media {
    /// `application/json`: the default, for `*/*` and for clients that send no
    /// `Accept`; a well-formed request is answered 200 whatever its errors.
    Json,
    /// `application/graphql-response+json`: request errors (parse, validation,
    /// variable coercion) are 400 and carry no `data`.
    GraphqlResponse,
}

impl Media {
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::GraphqlResponse => "application/graphql-response+json",
        }
    }
}

/// What the client accepts of the two, best first; `Err` when it names media types
/// but neither of ours (the answer is then 406, naming what we can send).
pub fn negotiate(headers: &HeaderMap) -> Result<Media, String> {
    let values: Vec<&str> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if values.iter().all(|v| v.trim().is_empty()) {
        return Ok(Media::Json);
    }
    // (q, specificity, -position) of the best range matching each of ours.
    let mut best: [Option<(u16, u8, i64)>; 2] = [None, None];
    let ranges = values.iter().flat_map(|v| v.split(','));
    for (position, range) in ranges.enumerate() {
        let mut parts = range.split(';');
        let media_range = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        if media_range.is_empty() {
            continue;
        }
        let q = parts
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
            .map_or(Some(1000), |(_, v)| quality(v.trim()));
        let Some(q) = q else { continue };
        for (slot, ours) in [Media::Json, Media::GraphqlResponse]
            .into_iter()
            .enumerate()
        {
            let specificity = match media_range.as_str() {
                r if r == ours.content_type() => 3,
                "application/*" => 2,
                "*/*" => 1,
                _ => continue,
            };
            let candidate = (q, specificity, -(position as i64));
            // The most specific range that matches decides the quality (RFC 9110 12.5.1).
            if best[slot].is_none_or(|b| (b.1, b.2) < (candidate.1, candidate.2)) {
                best[slot] = Some(candidate);
            }
        }
    }
    let score = |b: Option<(u16, u8, i64)>| b.filter(|b| b.0 > 0);
    match (score(best[0]), score(best[1])) {
        (None, None) => Err(format!(
            "this endpoint answers {} or {}; the request's Accept header allows neither",
            Media::Json.content_type(),
            Media::GraphqlResponse.content_type()
        )),
        (Some(_), None) => Ok(Media::Json),
        (None, Some(_)) => Ok(Media::GraphqlResponse),
        // Equal quality: `*/*` and `application/*` mean the default (application/json);
        // two explicit entries are taken in the order the client listed them.
        (Some(j), Some(g)) => Ok(if (g.0, g.1, g.2) > (j.0, j.1, j.2) {
            Media::GraphqlResponse
        } else {
            Media::Json
        }),
    }
}

/// A `q` value in thousandths; `None` for a malformed one (that range is ignored).
fn quality(v: &str) -> Option<u16> {
    let (whole, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac: u16 = format!("{frac:0<3}").parse().ok()?;
    match whole {
        "0" => Some(frac),
        "1" if frac == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn pick(accept: Option<&'static str>) -> Result<Media, String> {
        let mut h = HeaderMap::new();
        if let Some(a) = accept {
            h.insert(header::ACCEPT, HeaderValue::from_static(a));
        }
        negotiate(&h)
    }

    #[test]
    fn chooses_by_quality_then_specificity_then_order() {
        use Media::*;
        assert_eq!(pick(None), Ok(Json));
        assert_eq!(pick(Some("*/*")), Ok(Json));
        assert_eq!(pick(Some("application/*")), Ok(Json));
        assert_eq!(pick(Some("application/json")), Ok(Json));
        assert_eq!(
            pick(Some("application/graphql-response+json")),
            Ok(GraphqlResponse)
        );
        assert_eq!(
            pick(Some(
                "application/graphql-response+json, application/json;q=0.9"
            )),
            Ok(GraphqlResponse)
        );
        assert_eq!(
            pick(Some(
                "application/json;q=0.9, application/graphql-response+json"
            )),
            Ok(GraphqlResponse)
        );
        assert_eq!(
            pick(Some("application/json, application/graphql-response+json")),
            Ok(Json)
        );
        assert_eq!(
            pick(Some("application/graphql-response+json, */*;q=0.5")),
            Ok(GraphqlResponse)
        );
        assert_eq!(pick(Some("text/html, */*;q=0.8")), Ok(Json));
        assert_eq!(
            pick(Some(
                "application/json;q=0, application/graphql-response+json;q=0.1"
            )),
            Ok(GraphqlResponse)
        );
        assert!(pick(Some("text/html")).is_err());
        assert!(pick(Some("application/json;q=0")).is_err());
        // A malformed q ignores that range only.
        assert_eq!(pick(Some("application/json;q=x, */*;q=0.1")), Ok(Json));
    }
}
