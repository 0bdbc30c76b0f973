//! The OData a client meets: `$filter` with `eq`/`ne` joined by `and` (enough for
//! `status eq 'PendingApproval'`), `$top`, `$count`, and paging with opaque `$skiptoken`s in
//! `@odata.nextLink` (other query options echoed), forced small by the page size.

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Call, Failure};

#[derive(Debug, Clone, PartialEq, Eq)]
struct Clause {
    field: String,
    equal: bool,
    value: String,
}

fn parse_filter(expr: &str) -> Result<Vec<Clause>, Failure> {
    let invalid = || Failure::bad_request(format!("Invalid filter clause: {expr}"));
    let mut clauses = Vec::new();
    let lower = expr.to_ascii_lowercase();
    let mut rest = expr;
    let mut rest_lower = lower.as_str();
    loop {
        let (part, next) = match rest_lower.find(" and ") {
            Some(at) => (&rest[..at], Some(at + 5)),
            None => (rest, None),
        };
        let mut words = part.trim().splitn(3, ' ');
        let field = words.next().filter(|f| !f.is_empty()).ok_or_else(invalid)?;
        let equal = match words.next().map(str::to_ascii_lowercase).as_deref() {
            Some("eq") => true,
            Some("ne") => false,
            _ => return Err(invalid()),
        };
        let raw = words.next().ok_or_else(invalid)?.trim();
        let value = match raw.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
            Some(quoted) => quoted.replace("''", "'"),
            None if !raw.contains('\'') && !raw.is_empty() => raw.to_owned(),
            None => return Err(invalid()),
        };
        clauses.push(Clause {
            field: field.to_owned(),
            equal,
            value,
        });
        match next {
            Some(at) => {
                rest = &rest[at..];
                rest_lower = &rest_lower[at..];
            }
            None => return Ok(clauses),
        }
    }
}

fn holds(item: &Value, clause: &Clause) -> bool {
    let mut field = item;
    for part in clause.field.split('/') {
        field = field.get(part).unwrap_or(&Value::Null);
    }
    let same = match field {
        Value::String(s) => s.eq_ignore_ascii_case(&clause.value),
        Value::Null => clause.value.eq_ignore_ascii_case("null"),
        other => other.to_string().eq_ignore_ascii_case(&clause.value),
    };
    same == clause.equal
}

/// Keeps the items `$filter` selects (all of them without one).
pub fn filter(call: &Call, items: Vec<Value>) -> Result<Vec<Value>, Failure> {
    let Some(expr) = call.param("filter").filter(|f| !f.trim().is_empty()) else {
        return Ok(items);
    };
    let clauses = parse_filter(expr)?;
    Ok(items
        .into_iter()
        .filter(|item| clauses.iter().all(|c| holds(item, c)))
        .collect())
}

/// One page of `items` with `@odata.context` and, when more remain, `@odata.nextLink`.
pub fn page(call: &Call, items: Vec<Value>, entity: &str) -> Result<Response, Failure> {
    let base = call.app.settings().base_url.clone();
    let mut world = call.app.world();
    let offset = match call.param("skiptoken") {
        Some(token) => *world
            .page_tokens
            .get(token)
            .ok_or_else(|| Failure::bad_request("The $skiptoken is not valid."))?,
        None => 0,
    };
    let top = match call.param("top") {
        Some(t) => t
            .parse::<usize>()
            .ok()
            .filter(|t| *t > 0)
            .ok_or_else(|| Failure::bad_request(format!("Invalid value for $top: {t}")))?,
        None => usize::MAX,
    };
    let size = top.min(world.page_size.max(1));
    let total = items.len();
    let end = offset.saturating_add(size).min(total);
    let value: Vec<Value> = items.into_iter().skip(offset).take(size).collect();
    let mut body = json!({
        "@odata.context": format!("{base}/{}/$metadata#Collection({entity})", call.version()),
    });
    if offset == 0
        && call
            .param("count")
            .is_some_and(|c| c.eq_ignore_ascii_case("true"))
    {
        body["@odata.count"] = json!(total);
    }
    body["value"] = Value::Array(value);
    if call.loop_next {
        let query = call
            .raw_query
            .as_deref()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        body["@odata.nextLink"] = json!(format!("{base}{}{query}", call.path));
    } else if end < total {
        let token = uuid::Uuid::new_v4().simple().to_string();
        world.page_tokens.insert(token.clone(), end);
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &call.query {
            if !k.trim_start_matches('$').eq_ignore_ascii_case("skiptoken") {
                query.append_pair(k, v);
            }
        }
        query.append_pair("$skiptoken", &token);
        body["@odata.nextLink"] = json!(format!("{base}{}?{}", call.path, query.finish()));
    }
    Ok(Json(body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_and_compare_case_insensitively() {
        let c = parse_filter("status eq 'PendingApproval' and action ne 'selfDeactivate'").unwrap();
        assert_eq!(c.len(), 2);
        let item = json!({"status": "pendingapproval", "action": "selfActivate", "a": {"b": "x"}});
        assert!(c.iter().all(|c| holds(&item, c)));
        let nested = parse_filter("a/b eq 'X'").unwrap();
        assert!(holds(&item, &nested[0]));
        let quoted = parse_filter("justification eq 'it''s'").unwrap();
        assert_eq!(quoted[0].value, "it's");
        for bad in ["status", "status gt 'x'", "status eq 'x", "status eq"] {
            assert!(parse_filter(bad).is_err(), "{bad}");
        }
    }
}
