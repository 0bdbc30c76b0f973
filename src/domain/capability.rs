//! Capabilities: `verb:resource` strings, where a pattern `prefix:*` matches
//! `prefix:anything`. A bare `*` is never allowed: nothing may hold everything.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::Invalid;

/// Longest capability string accepted.
pub const MAX_CAPABILITY_LEN: usize = 128;
/// Most capabilities one agent or request may list.
pub const MAX_CAPABILITIES: usize = 64;

/// A validated capability or capability pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Capability(String);

impl Capability {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let bad = |why: &str| {
            Err(Invalid::new(
                "invalid_capability",
                format!("capability {:?} {why}", truncate_for_message(s)),
            ))
        };
        if s.len() > MAX_CAPABILITY_LEN {
            return bad("is longer than 128 characters");
        }
        if s == "*" {
            return bad("is a bare wildcard; name a verb, as in read:*");
        }
        let Some((verb, resource)) = s.split_once(':') else {
            return bad("is not of the form verb:resource");
        };
        if !is_word(verb) {
            return bad("has a verb that is not lowercase letters, digits, '-' or '_'");
        }
        if resource == "*" {
            return Ok(Self(s.to_owned()));
        }
        // `read:crm:*` is a pattern over `read:crm:…`; the part before `:*` obeys the usual rules.
        let resource = resource.strip_suffix(":*").unwrap_or(resource);
        if resource.is_empty()
            || !resource.starts_with(|c: char| c.is_ascii_alphanumeric())
            || !resource
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_./:".contains(c))
        {
            return bad(
                "has a resource that is not lowercase letters, digits, '-', '_', '.', '/' or ':' (or a lone '*')",
            );
        }
        if resource.ends_with(':') {
            return bad("ends with ':'");
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is a `prefix:*` pattern.
    pub fn is_pattern(&self) -> bool {
        self.0.ends_with(":*")
    }

    /// Whether this capability (possibly a pattern) covers `other` (possibly a pattern).
    /// `read:*` covers `read:crm` and `read:*`; `read:crm` covers only itself, never `read:*`.
    pub fn covers(&self, other: &Capability) -> bool {
        if self.0 == other.0 {
            return true;
        }
        match self.0.strip_suffix('*') {
            // `prefix:` must be a prefix of the other, whose remainder is non-empty.
            Some(prefix) => other.0.len() > prefix.len() && other.0.starts_with(prefix),
            None => false,
        }
    }
}

fn is_word(s: &str) -> bool {
    !s.is_empty()
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn truncate_for_message(s: &str) -> String {
    s.chars().take(40).collect()
}

impl TryFrom<String> for Capability {
    type Error = Invalid;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Capability::parse(&s)
    }
}

impl From<Capability> for String {
    fn from(c: Capability) -> Self {
        c.0
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Validates a list from outside: each entry parses, no duplicates, at most 64.
pub fn parse_set<S: AsRef<str>>(items: &[S]) -> Result<Vec<Capability>, Invalid> {
    if items.len() > MAX_CAPABILITIES {
        return Err(Invalid::new(
            "too_many_capabilities",
            format!("at most {MAX_CAPABILITIES} capabilities are allowed"),
        ));
    }
    let mut out: Vec<Capability> = Vec::with_capacity(items.len());
    for item in items {
        let cap = Capability::parse(item.as_ref())?;
        if out.contains(&cap) {
            return Err(Invalid::new(
                "duplicate_capability",
                format!("capability {cap} is listed twice"),
            ));
        }
        out.push(cap);
    }
    out.sort();
    Ok(out)
}

/// Whether every capability in `wanted` is covered by some capability in `held`.
pub fn is_subset(wanted: &[Capability], held: &[Capability]) -> bool {
    wanted.iter().all(|w| held.iter().any(|h| h.covers(w)))
}

/// Joins capabilities into an OAuth `scope` string.
pub fn to_scope(caps: &[Capability]) -> String {
    caps.iter()
        .map(Capability::as_str)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(s: &str) -> Capability {
        Capability::parse(s).expect("a valid capability")
    }

    #[test]
    fn parses_and_refuses() {
        for good in [
            "read:customer-data",
            "read:*",
            "read:crm:*",
            "write:crm/accounts",
            "deploy:prod.eu",
        ] {
            assert!(Capability::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "*",
            "",
            "read",
            ":x",
            "read:",
            "Read:x",
            "read:X",
            "read:cust*",
            "read: x",
            "read:x:",
            "read:crm/*",
            "read::*",
            "a b:c",
        ] {
            assert!(Capability::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn covering() {
        assert!(cap("read:*").covers(&cap("read:crm")));
        assert!(cap("read:*").covers(&cap("read:*")));
        assert!(!cap("read:crm").covers(&cap("read:*")));
        assert!(!cap("read:*").covers(&cap("write:crm")));
        assert!(!cap("read:crm").covers(&cap("read:crm2")));
        assert!(cap("read:crm:*").covers(&cap("read:crm:accounts")));
        assert!(cap("read:*").covers(&cap("read:crm:*")));
        assert!(!cap("read:crm:*").covers(&cap("read:crm")));
        assert!(!cap("read:crm:*").covers(&cap("read:*")));
        assert!(is_subset(&[cap("read:a"), cap("read:b")], &[cap("read:*")]));
        assert!(!is_subset(&[cap("read:*")], &[cap("read:a")]));
    }

    #[test]
    fn sets_refuse_duplicates_and_excess() {
        assert!(parse_set(&["read:a", "read:a"]).is_err());
        let many: Vec<String> = (0..65).map(|i| format!("read:r{i}")).collect();
        assert!(parse_set(&many).is_err());
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    fn segment() -> impl Strategy<Value = String> {
        "[a-z][a-z0-9-]{0,5}"
    }

    /// Any valid capability or pattern: verb, 0–3 resource segments, maybe a `:*` tail.
    fn capability() -> impl Strategy<Value = Capability> {
        (
            segment(),
            prop::collection::vec(segment(), 0..4),
            any::<bool>(),
        )
            .prop_filter_map("needs a resource", |(verb, segs, wildcard)| {
                let text = match (segs.is_empty(), wildcard) {
                    (true, false) => return None,
                    (true, true) => format!("{verb}:*"),
                    (false, false) => format!("{verb}:{}", segs.join(":")),
                    (false, true) => format!("{verb}:{}:*", segs.join(":")),
                };
                Capability::parse(&text).ok()
            })
    }

    proptest! {
        #[test]
        fn parsing_round_trips(c in capability()) {
            prop_assert_eq!(Capability::parse(c.as_str()).ok(), Some(c.clone()));
        }

        #[test]
        fn covering_is_reflexive(c in capability()) {
            prop_assert!(c.covers(&c));
        }

        #[test]
        fn covering_is_transitive(a in capability(), b in capability(), c in capability()) {
            if a.covers(&b) && b.covers(&c) {
                prop_assert!(a.covers(&c));
            }
        }

        #[test]
        fn a_concrete_capability_covers_only_itself(a in capability(), b in capability()) {
            if !a.is_pattern() && a.covers(&b) {
                prop_assert_eq!(a, b);
            }
        }

        #[test]
        fn a_pattern_covers_exactly_what_extends_its_prefix(a in capability(), b in capability()) {
            if a.is_pattern() {
                let prefix = &a.as_str()[..a.as_str().len() - 1];
                let extends = b.as_str().starts_with(prefix) && b.as_str().len() > prefix.len();
                prop_assert_eq!(a.covers(&b), a == b || extends);
            }
        }

        #[test]
        fn wildcards_never_broaden(a in capability(), b in capability()) {
            // If a pattern is covered by something, every capability it covers is too.
            if a.is_pattern() && b.covers(&a) {
                let prefix = &a.as_str()[..a.as_str().len() - 1];
                let example = Capability::parse(&format!("{prefix}x")).ok();
                if let Some(x) = example {
                    prop_assert!(b.covers(&x));
                }
            }
            // A concrete capability never covers a pattern.
            if !b.is_pattern() && a.is_pattern() {
                prop_assert!(!b.covers(&a));
            }
        }

        #[test]
        fn the_subset_rule(
            wanted in prop::collection::vec(capability(), 0..6),
            held in prop::collection::vec(capability(), 0..6),
            extra in capability(),
        ) {
            let expected = wanted.iter().all(|w| held.iter().any(|h| h.covers(w)));
            prop_assert_eq!(is_subset(&wanted, &held), expected);
            // Holding more never makes a subset stop being one.
            if expected {
                let mut more = held.clone();
                more.push(extra);
                prop_assert!(is_subset(&wanted, &more));
            }
            // Everything is a subset of itself, and the empty set of anything.
            prop_assert!(is_subset(&held, &held));
            prop_assert!(is_subset(&[], &held));
        }
    }
}
