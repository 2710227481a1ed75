//! Shell-style globs (`prod-*`, `system:serviceaccount:ops:*`), compiled once at
//! load time.

use serde::Deserialize;

/// A list of compiled globs; a string matches the list when it matches any.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(try_from = "Vec<String>")]
pub struct Globs(Vec<Glob>);

#[derive(Clone, Debug)]
struct Glob {
    /// A pattern without metacharacters is compared directly (the common case).
    literal: Option<String>,
    /// The text before the first metacharacter and after the last one: a
    /// string that does not start and end with them cannot match, which is
    /// checked before the pattern (most candidates fail there).
    prefix: String,
    suffix: String,
    pattern: glob::Pattern,
}

impl Globs {
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, String> {
        patterns
            .iter()
            .map(|p| {
                let p = p.as_ref();
                let pattern = glob::Pattern::new(p).map_err(|e| format!("invalid glob {p:?}: {}", e.msg))?;
                let literal = (!p.contains(['*', '?', '['])).then(|| p.to_owned());
                const META: [char; 4] = ['*', '?', '[', ']'];
                let prefix = p.find(META).map_or(p, |end| &p[..end]).to_owned();
                let suffix = p.rfind(META).map_or("", |start| &p[start + 1..]).to_owned();
                Ok(Glob { literal, prefix, suffix, pattern })
            })
            .collect::<Result<_, _>>()
            .map(Globs)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn matches(&self, candidate: &str) -> bool {
        self.0.iter().any(|glob| match &glob.literal {
            Some(literal) => literal == candidate,
            None => {
                candidate.starts_with(&glob.prefix)
                    && candidate.ends_with(&glob.suffix)
                    && glob.pattern.matches(candidate)
            }
        })
    }

    /// The patterns as written, for listings.
    pub fn patterns(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|glob| glob.pattern.as_str())
    }
}

impl TryFrom<Vec<String>> for Globs {
    type Error = String;
    fn try_from(patterns: Vec<String>) -> Result<Self, String> {
        Globs::new(&patterns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_literals_and_wildcards() {
        let globs = Globs::new(&["production", "prod-*", "*-prod"]).unwrap();
        assert!(globs.matches("production"));
        assert!(globs.matches("prod-eu"));
        assert!(globs.matches("shop-prod"));
        assert!(!globs.matches("prod"));
        assert!(!globs.matches("production-1"));
        assert!(!globs.matches("dev"));
    }

    #[test]
    fn wildcards_match_only_between_their_literal_ends() {
        let globs = Globs::new(&["*-snippet", "nginx.org/*-snippets", "team-?", "a[bc]d*x"]).unwrap();
        for (candidate, matches) in [
            ("nginx.ingress.kubernetes.io/server-snippet", true),
            ("-snippet", true),
            ("snippet", false),
            ("nginx.org/location-snippets", true),
            ("nginx.org/location-snippetz", false),
            ("team-a", true),
            ("team-", false),
            ("team-ab", false),
            ("abdx", true),
            ("acd-x", true),
            ("aed-x", false),
            ("abd", false),
        ] {
            assert_eq!(globs.matches(candidate), matches, "{candidate}");
        }
    }

    #[test]
    fn rejects_a_bad_glob() {
        let err = Globs::new(&["prod-[a"]).unwrap_err();
        assert_eq!(err, "invalid glob \"prod-[a\": invalid range pattern");
    }
}
