//! Harbor 2.16's repository allowlist for proxy-cache projects (`proxy_cache_filter_pattern`
//! and `proxy_cache_filter_kind` in the project metadata), matched as Harbor matches it: an
//! empty pattern allows every repository, a `regex` pattern must match the whole name, a
//! `doublestar` pattern (the default) is a glob whose `*` stays within one path segment, and an
//! invalid pattern or an unknown kind allows none.

use std::fmt;

use globset::{GlobBuilder, GlobMatcher};
use regex::Regex;

/// The metadata key of the pattern (absent or blank: no allowlist).
pub const FILTER_PATTERN_KEY: &str = "proxy_cache_filter_pattern";
/// The metadata key of the pattern's kind: `doublestar` (default) or `regex`.
pub const FILTER_KIND_KEY: &str = "proxy_cache_filter_kind";

/// Which repositories of a proxy-cache project Harbor proxies.
#[derive(Clone, Default)]
pub enum RepositoryFilter {
    /// No pattern: every repository.
    #[default]
    All,
    /// A glob; `*`, `?` and classes never match `/`, `**` spans segments.
    Doublestar { pattern: String, glob: GlobMatcher },
    /// A regular expression anchored at both ends.
    Regex { pattern: String, regex: Regex },
    /// A pattern Harbor cannot use (or an unknown kind): Harbor proxies no repository.
    Invalid { pattern: String, reason: String },
}

impl RepositoryFilter {
    /// The filter that `pattern` and `kind` (the metadata values, when present) describe.
    #[must_use]
    pub fn from_metadata(pattern: Option<&str>, kind: Option<&str>) -> Self {
        // Harbor trims the pattern, and an empty one lets everything through whatever the kind.
        let pattern = pattern.map(str::trim).unwrap_or_default();
        if pattern.is_empty() {
            return Self::All;
        }
        let invalid = |reason: String| Self::Invalid {
            pattern: pattern.to_owned(),
            reason,
        };
        // The kind is compared exactly, as Harbor does: `Regex` is an unknown kind.
        match kind.unwrap_or_default() {
            "regex" => match Regex::new(&format!("^(?:{pattern})$")) {
                Ok(regex) => Self::Regex {
                    pattern: pattern.to_owned(),
                    regex,
                },
                Err(error) => invalid(error.to_string()),
            },
            "doublestar" | "" => match doublestar_glob(pattern) {
                Ok(glob) => Self::Doublestar {
                    pattern: pattern.to_owned(),
                    glob,
                },
                Err(reason) => invalid(reason),
            },
            other => invalid(format!(
                "unknown {FILTER_KIND_KEY} {other:?} (doublestar or regex)"
            )),
        }
    }

    /// Whether Harbor proxies `repository`, the upstream repository name without the project
    /// prefix (`library/nginx`).
    #[must_use]
    pub fn allows(&self, repository: &str) -> bool {
        match self {
            Self::All => true,
            Self::Doublestar { glob, .. } => glob.is_match(repository),
            Self::Regex { regex, .. } => regex.is_match(repository),
            Self::Invalid { .. } => false,
        }
    }
}

impl fmt::Debug for RepositoryFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All => f.write_str("All"),
            Self::Doublestar { pattern, .. } => write!(f, "Doublestar({pattern:?})"),
            Self::Regex { pattern, .. } => write!(f, "Regex({pattern:?})"),
            Self::Invalid { pattern, reason } => write!(f, "Invalid({pattern:?}: {reason})"),
        }
    }
}

/// A glob that matches as Go's `bmatcuk/doublestar` v1 (Harbor's matcher) does, after the
/// checks Harbor makes before matching: classes closed and not empty, braces balanced, no
/// trailing backslash.
fn doublestar_glob(pattern: &str) -> Result<GlobMatcher, String> {
    check_like_harbor(pattern)?;
    GlobBuilder::new(&negation_as_doublestar_reads_it(pattern))
        .literal_separator(true)
        .backslash_escape(true)
        .empty_alternates(true)
        .build()
        .map(|glob| glob.compile_matcher())
        .map_err(|error| error.to_string())
}

/// Harbor refuses, before matching, a pattern whose class is empty or unclosed, whose braces
/// do not balance, or that ends in a lone backslash.
fn check_like_harbor(pattern: &str) -> Result<(), String> {
    let bytes = pattern.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => {
                i += 1;
                if i >= bytes.len() {
                    return Err("a backslash ends the pattern".into());
                }
            }
            b'[' => {
                i += 1;
                if matches!(bytes.get(i), Some(b'^' | b'!')) {
                    i += 1;
                }
                if matches!(bytes.get(i), None | Some(b']')) {
                    return Err("an empty or unclosed character class".into());
                }
                loop {
                    match bytes.get(i) {
                        None => return Err("an unclosed character class".into()),
                        Some(b'\\') => i += 2,
                        Some(b']') => break,
                        Some(_) => i += 1,
                    }
                }
            }
            b'{' => depth += 1,
            b'}' => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| "a closing brace without an opening one".to_owned())?;
            }
            _ => {}
        }
        i += 1;
    }
    if depth == 0 {
        Ok(())
    } else {
        Err("an unclosed brace".into())
    }
}

/// doublestar v1 negates a class with `^` only: `[!ab]` is the class of `!`, `a` and `b`,
/// where a glob would read a negation. The `!` moves to the class's end, where it is literal.
fn negation_as_doublestar_reads_it(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        match c {
            '\\' => out.extend(chars.next()),
            '[' => {
                let mut class = String::new();
                let mut escaped = false;
                for c in chars.by_ref() {
                    if c == ']' && !escaped {
                        break;
                    }
                    escaped = c == '\\' && !escaped;
                    class.push(c);
                }
                match class.strip_prefix('!') {
                    Some(rest) => {
                        out.push_str(rest);
                        out.push('!');
                    }
                    None => out.push_str(&class),
                }
                out.push(']');
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(pattern: &str, kind: &str, repository: &str) -> bool {
        RepositoryFilter::from_metadata(Some(pattern), Some(kind)).allows(repository)
    }

    /// The cases of Harbor's own tests of its matcher (`TestMatchRepositoryFilter`,
    /// `pattern.TestMatch`), as (repository, pattern, kind, allowed).
    #[test]
    fn harbors_cases_match_as_in_harbor() {
        let cases = [
            ("library/nginx", "", "", true),
            ("library/nginx", "   ", "doublestar", true),
            ("library/nginx", "", "regex", true),
            ("library/nginx", "^library/nginx$", "regex", true),
            ("library/nginx", "library/nginx", "regex", true),
            ("library/nginx", "nginx", "regex", false),
            ("library/nginx", "^library/", "regex", false),
            ("library/nginx", "library/", "regex", false),
            ("library/nginx", "^library/.*", "regex", true),
            ("library/nginx", "library/.*", "regex", true),
            ("library/nginx", "^other/", "regex", false),
            ("library/nginx", "[invalid", "regex", false),
            ("library/nginx", "[a-z", "regex", false),
            ("library/nginx", "library/nginx", "doublestar", true),
            ("library/nginx", "library/*", "doublestar", true),
            ("org/team/repo", "org/**", "doublestar", true),
            ("library/nginx", "**", "doublestar", true),
            ("library/nginx", "other/*", "doublestar", false),
            (
                "library/nginx",
                "library/{nginx,alpine}",
                "doublestar",
                true,
            ),
            ("library/nginx", "library/**", "", true),
            ("library/nginx", "library/[a-z", "doublestar", false),
            ("library/nginx", "library/[a-z", "", false),
            ("library/nginx", "library/**", "invalid_kind", false),
            // checkRepositoryFilter: the name without the project prefix.
            ("other/nginx", "other/**", "doublestar", true),
            ("other/nginx", "library/**", "doublestar", false),
            // The referrers middleware's case: a pattern that names another prefix.
            ("library/nginx", "allow-*", "doublestar", false),
        ];
        for (repository, pattern, kind, allowed) in cases {
            assert_eq!(
                allows(pattern, kind, repository),
                allowed,
                "{repository:?} against {pattern:?} ({kind:?})"
            );
        }
    }

    /// What Go's doublestar v1 does beyond Harbor's cases: one segment per `*`, `**` over
    /// segments (not over none at the end), alternatives across segments, `^` negation only.
    #[test]
    fn globs_match_as_doublestar_v1() {
        let cases = [
            ("library/nginx", "*", false),
            ("nginx", "*", true),
            ("library/nginx", "lib*/ngin?", true),
            ("library/nginx", "library/ngin?x", false),
            ("library", "library/**", false),
            ("a/b/c/d", "a/**/d", true),
            ("a/d", "a/**/d", true),
            ("a/b/c", "**/c", true),
            ("c", "**/c", true),
            ("library/nginx", "{library/nginx,team/*}", true),
            ("team/app", "{library/nginx,team/*}", true),
            ("team/app/x", "{library/nginx,team/*}", false),
            ("library/nginx", "library/{,n}ginx", true),
            ("library/ginx", "library/{,n}ginx", true),
            ("library/nginx", "library/[^a-m]ginx", true),
            ("library/nginx", "library/[^n]ginx", false),
            ("library/nginx", "library/[!a]ginx", false),
            ("library/!ginx", "library/[!a]ginx", true),
            ("library/nginx", "Library/nginx", false),
            ("library/n*nx", "library/n\\*nx", true),
            ("library/nginx", "library/n\\*nx", false),
            ("library/nginx", "library/{nginx,{alpine,redis}}", true),
            ("library/redis", "library/{nginx,{alpine,redis}}", true),
        ];
        for (repository, pattern, allowed) in cases {
            assert_eq!(
                allows(pattern, "doublestar", repository),
                allowed,
                "{repository:?} against {pattern:?}"
            );
        }
    }

    #[test]
    fn patterns_harbor_refuses_allow_nothing() {
        for pattern in [
            "library/[]",
            "library/[!]",
            "library/{a,b",
            "library/a}",
            "a\\",
        ] {
            let filter = RepositoryFilter::from_metadata(Some(pattern), None);
            assert!(
                matches!(filter, RepositoryFilter::Invalid { .. }),
                "{pattern:?}: {filter:?}"
            );
            assert!(!filter.allows("library/a"), "{pattern:?}");
        }
        // Kinds are compared exactly.
        assert!(!allows("library/**", "Regex", "library/nginx"));
        assert!(!allows("library/**", "DoubleStar", "library/nginx"));
    }

    #[test]
    fn no_pattern_allows_everything() {
        let filter = RepositoryFilter::from_metadata(None, Some("regex"));
        assert!(matches!(filter, RepositoryFilter::All));
        assert!(filter.allows("anything/at/all"));
        // Trimmed, as Harbor trims it.
        assert!(RepositoryFilter::from_metadata(Some(" team/* "), None).allows("team/app"));
    }
}
