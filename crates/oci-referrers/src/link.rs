//! The `Link: <…>; rel="next"` header: reading an upstream's, writing ours.

use url::Url;

use crate::digest::Digest;
use crate::media_type::ArtifactType;
use crate::name::RepositoryName;
use crate::query::encode_query_value;

/// Why a `Link` header could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// A link-value does not start with `<`.
    #[error("Link header: expected '<' at byte {position}")]
    ExpectedUriReference {
        /// Byte offset in the header value.
        position: usize,
    },
    /// A `<` without its `>`.
    #[error("Link header: unterminated URI reference")]
    UnterminatedUriReference,
    /// Whitespace or a control character inside `<…>`.
    #[error("Link header: invalid character in URI reference at byte {position}")]
    InvalidUriCharacter {
        /// Byte offset in the header value.
        position: usize,
    },
    /// Something other than `; param`, `,` or the end after a link-value part.
    #[error("Link header: unexpected character at byte {position}")]
    UnexpectedCharacter {
        /// Byte offset in the header value.
        position: usize,
    },
    /// A parameter without a name, or `=` without a value.
    #[error("Link header: malformed parameter at byte {position}")]
    MalformedParameter {
        /// Byte offset in the header value.
        position: usize,
    },
    /// A `"` without its closing `"`.
    #[error("Link header: unterminated quoted string")]
    UnterminatedQuotedString,
    /// The `rel="next"` target does not resolve against the request URL.
    #[error("Link header: next target {target:?} is not a valid URI: {source}")]
    InvalidTarget {
        /// The target as written.
        target: String,
        /// Why it did not resolve.
        #[source]
        source: url::ParseError,
    },
}

/// The `rel="next"` target of the `Link` headers of a response, resolved against `base`
/// (the URL that was requested), or `None` when there is no next page.
///
/// Several link-values per header and several headers are read; `rel` may be quoted or a
/// bare token and may list several relation types (`rel="prev next"`); other parameters are
/// ignored. When more than one link is `next`, the first wins. The caller still has to check
/// that the target stays on the same origin.
///
/// # Errors
///
/// [`LinkError`] when any header is not a well-formed `Link` value, or the `next` target
/// does not resolve.
///
/// REF: <https://www.rfc-editor.org/rfc/rfc8288#section-3>
/// REF: <https://github.com/opencontainers/distribution-spec/blob/main/spec.md#listing-referrers>
pub fn parse_next_link(header_values: &[&str], base: &Url) -> Result<Option<Url>, LinkError> {
    let mut next = None;
    for header in header_values {
        for link in LinkValues::new(header) {
            let link = link?;
            if next.is_none() && link.is_next {
                next = Some(link.target);
            }
        }
    }
    next.map(|target| {
        base.join(target)
            .map_err(|source| LinkError::InvalidTarget {
                target: target.to_owned(),
                source,
            })
    })
    .transpose()
}

/// Our `Link` header value for the page after `last`:
/// `</v2/<name>/referrers/<digest>?n=<n>&last=<last>&artifactType=<type>…>; rel="next"`.
///
/// `n` is left out when the client gave none (pages are then sized in bytes), and the filter
/// is repeated so the next page is filtered the same way. Query values are percent-encoded
/// with [`encode_query_value`], so `+` travels as `%2B` and survives form decoders.
///
/// REF: <https://github.com/opencontainers/distribution-spec/blob/main/spec.md#listing-referrers>
#[must_use]
pub fn build_next_link(
    name: &RepositoryName,
    digest: &Digest,
    n: Option<usize>,
    last: &Digest,
    artifact_types: &[ArtifactType],
) -> String {
    let mut link = format!("</v2/{name}/referrers/{digest}?");
    if let Some(n) = n {
        link.push_str("n=");
        link.push_str(&n.to_string());
        link.push('&');
    }
    link.push_str("last=");
    link.push_str(&encode_query_value(last.as_str()));
    for artifact_type in artifact_types {
        link.push_str("&artifactType=");
        link.push_str(&encode_query_value(artifact_type.as_str()));
    }
    link.push_str(">; rel=\"next\"");
    link
}

/// One link-value, reduced to what we need.
struct LinkValue<'a> {
    target: &'a str,
    is_next: bool,
}

/// Iterates the link-values of one header value; stops after the first error.
struct LinkValues<'a> {
    text: &'a str,
    position: usize,
    failed: bool,
}

/// RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

impl<'a> LinkValues<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            text,
            position: 0,
            failed: false,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.position).copied()
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.position += 1;
        }
    }

    fn token(&mut self) -> &'a str {
        let start = self.position;
        while self.peek().is_some_and(is_tchar) {
            self.position += 1;
        }
        &self.text[start..self.position]
    }

    /// Reads a quoted-string and returns its content with quoted-pairs unescaped.
    fn quoted_string(&mut self) -> Result<String, LinkError> {
        self.position += 1; // the opening quote
        let mut content = String::new();
        let mut chars = self.text[self.position..].char_indices();
        while let Some((offset, c)) = chars.next() {
            match c {
                '"' => {
                    self.position += offset + 1;
                    return Ok(content);
                }
                '\\' => match chars.next() {
                    Some((_, escaped)) => content.push(escaped),
                    None => break,
                },
                c => content.push(c),
            }
        }
        Err(LinkError::UnterminatedQuotedString)
    }

    fn target(&mut self) -> Result<&'a str, LinkError> {
        if self.peek() != Some(b'<') {
            return Err(LinkError::ExpectedUriReference {
                position: self.position,
            });
        }
        let start = self.position + 1;
        let len = self.text[start..]
            .find('>')
            .ok_or(LinkError::UnterminatedUriReference)?;
        let target = &self.text[start..start + len];
        if let Some(offset) = target.find(|c: char| c.is_whitespace() || c.is_control()) {
            return Err(LinkError::InvalidUriCharacter {
                position: start + offset,
            });
        }
        self.position = start + len + 1;
        Ok(target)
    }

    /// Reads `*( OWS ";" OWS link-param )` and reports whether the first `rel` lists `next`
    /// (RFC 8288: later `rel` parameters are ignored).
    fn parameters(&mut self) -> Result<bool, LinkError> {
        let mut rel: Option<String> = None;
        loop {
            self.skip_whitespace();
            match self.peek() {
                None | Some(b',') => break,
                Some(b';') => self.position += 1,
                Some(_) => {
                    return Err(LinkError::UnexpectedCharacter {
                        position: self.position,
                    });
                }
            }
            self.skip_whitespace();
            if matches!(self.peek(), None | Some(b',' | b';')) {
                // An empty parameter (`<…>;`): harmless, and some servers send it.
                continue;
            }
            let name_at = self.position;
            let name = self.token();
            if name.is_empty() {
                return Err(LinkError::MalformedParameter { position: name_at });
            }
            self.skip_whitespace();
            let value = if self.peek() == Some(b'=') {
                self.position += 1;
                self.skip_whitespace();
                if self.peek() == Some(b'"') {
                    self.quoted_string()?
                } else {
                    let value_at = self.position;
                    let token = self.token();
                    if token.is_empty() {
                        return Err(LinkError::MalformedParameter { position: value_at });
                    }
                    token.to_owned()
                }
            } else {
                String::new()
            };
            if rel.is_none() && name.eq_ignore_ascii_case("rel") {
                rel = Some(value);
            }
        }
        Ok(rel.is_some_and(|rel| {
            rel.split_ascii_whitespace()
                .any(|relation| relation.eq_ignore_ascii_case("next"))
        }))
    }

    fn link_value(&mut self) -> Result<LinkValue<'a>, LinkError> {
        let target = self.target()?;
        let is_next = self.parameters()?;
        Ok(LinkValue { target, is_next })
    }
}

impl<'a> Iterator for LinkValues<'a> {
    type Item = Result<LinkValue<'a>, LinkError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        // `#rule` lists may have empty elements: `, ,<a>`.
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.position += 1;
        }
        self.peek()?;
        let link = self.link_value();
        self.failed = link.is_err();
        Some(link)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";
    const LAST: &str = "sha256:fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9";

    fn base() -> Url {
        Url::parse(&format!(
            "https://registry.example.org/v2/library/alpine/referrers/{DIGEST}?n=2"
        ))
        .unwrap()
    }

    fn next(headers: &[&str]) -> Result<Option<String>, LinkError> {
        parse_next_link(headers, &base()).map(|url| url.map(String::from))
    }

    #[test]
    fn quoted_and_bare_rel() {
        let expected = Some("https://registry.example.org/v2/x/referrers/y?last=z".to_owned());
        assert_eq!(
            next(&[r#"</v2/x/referrers/y?last=z>; rel="next""#]).unwrap(),
            expected
        );
        assert_eq!(
            next(&["</v2/x/referrers/y?last=z>; rel=next"]).unwrap(),
            expected
        );
        assert_eq!(
            next(&["</v2/x/referrers/y?last=z>;rel=NEXT"]).unwrap(),
            expected
        );
        assert_eq!(
            next(&["</v2/x/referrers/y?last=z> ; REL = \"next\""]).unwrap(),
            expected
        );
    }

    #[test]
    fn relative_and_absolute_targets_resolve_against_the_request() {
        assert_eq!(
            next(&[r#"<?last=abc&n=2>; rel="next""#]).unwrap().unwrap(),
            format!(
                "https://registry.example.org/v2/library/alpine/referrers/{DIGEST}?last=abc&n=2"
            )
        );
        assert_eq!(
            next(&[r#"<page2>; rel="next""#]).unwrap().unwrap(),
            "https://registry.example.org/v2/library/alpine/referrers/page2"
        );
        assert_eq!(
            next(&[r#"<https://other.example/v2/a?b=c>; rel="next""#])
                .unwrap()
                .unwrap(),
            "https://other.example/v2/a?b=c"
        );
    }

    #[test]
    fn several_links_and_headers() {
        let headers = [
            r#"</first>; rel="prev", </docs>; rel=help; title="a, b; c""#,
            r#"</v2/second>; rel="prev next"; type="application/json", </third>; rel=next"#,
        ];
        assert_eq!(
            next(&headers).unwrap().unwrap(),
            "https://registry.example.org/v2/second"
        );
    }

    #[test]
    fn uri_may_contain_commas_and_semicolons() {
        assert_eq!(
            next(&[r#"</a;b,c?d=e,f>; rel="next""#]).unwrap().unwrap(),
            "https://registry.example.org/a;b,c?d=e,f"
        );
    }

    #[test]
    fn only_the_first_rel_counts() {
        assert_eq!(next(&[r#"</a>; rel="prev"; rel="next""#]).unwrap(), None);
        assert_eq!(next(&[r#"</a>; rel="nextpage""#]).unwrap(), None);
    }

    #[test]
    fn no_next_is_none() {
        assert_eq!(next(&[]).unwrap(), None);
        assert_eq!(next(&[""]).unwrap(), None);
        assert_eq!(next(&[r#"</a>; rel="prev""#, "</b>"]).unwrap(), None);
    }

    #[test]
    fn quoted_pairs_are_unescaped() {
        assert_eq!(
            next(&[r#"</a>; title="say \"hi\", then; go"; rel="n\ext""#])
                .unwrap()
                .unwrap(),
            "https://registry.example.org/a"
        );
    }

    #[test]
    fn malformed_headers_are_errors() {
        assert_eq!(
            next(&[r#"/v2/a; rel="next""#]),
            Err(LinkError::ExpectedUriReference { position: 0 })
        );
        assert_eq!(
            next(&[r#"</v2/a; rel="next""#]),
            Err(LinkError::UnterminatedUriReference)
        );
        assert_eq!(
            next(&[r#"</v2/a>; rel="next"#]),
            Err(LinkError::UnterminatedQuotedString)
        );
        assert!(matches!(
            next(&[r#"</v2/a> rel="next""#]),
            Err(LinkError::UnexpectedCharacter { .. })
        ));
        assert!(matches!(
            next(&[r#"</v2/a>; ="next""#]),
            Err(LinkError::MalformedParameter { .. })
        ));
        assert!(matches!(
            next(&["</v2/a>; rel="]),
            Err(LinkError::MalformedParameter { .. })
        ));
        assert!(matches!(
            next(&[r#"</v2/a b>; rel="next""#]),
            Err(LinkError::InvalidUriCharacter { .. })
        ));
        assert!(matches!(
            next(&[r#"<http://[::1>; rel="next""#]),
            Err(LinkError::InvalidTarget { .. })
        ));
        // A malformed second header fails even after a good `next`.
        assert!(next(&[r#"</a>; rel="next""#, "garbage"]).is_err());
    }

    #[test]
    fn builds_our_next_link() {
        let name: RepositoryName = "proxy/library/alpine".parse().unwrap();
        let digest: Digest = DIGEST.parse().unwrap();
        let last: Digest = LAST.parse().unwrap();
        let types: Vec<ArtifactType> = vec![
            "application/vnd.cncf.notary.signature".parse().unwrap(),
            "application/vnd.dev.cosign.artifact.sig.v1+json"
                .parse()
                .unwrap(),
        ];
        let encoded_last = LAST.replace(':', "%3A");
        assert_eq!(
            build_next_link(&name, &digest, Some(25), &last, &types),
            format!(
                "</v2/proxy/library/alpine/referrers/{DIGEST}?n=25&last={encoded_last}\
                 &artifactType=application%2Fvnd.cncf.notary.signature\
                 &artifactType=application%2Fvnd.dev.cosign.artifact.sig.v1%2Bjson>; rel=\"next\""
            )
        );
        assert_eq!(
            build_next_link(&name, &digest, None, &last, &[]),
            format!(
                "</v2/proxy/library/alpine/referrers/{DIGEST}?last={encoded_last}>; rel=\"next\""
            )
        );
    }

    #[test]
    fn our_link_reads_back() {
        let name: RepositoryName = "proxy/alpine".parse().unwrap();
        let digest: Digest = DIGEST.parse().unwrap();
        let last: Digest = LAST.parse().unwrap();
        let types = vec!["application/vnd.foo+json".parse().unwrap()];
        let header = build_next_link(&name, &digest, Some(3), &last, &types);
        let url = parse_next_link(&[&header], &base()).unwrap().unwrap();
        assert_eq!(url.path(), format!("/v2/proxy/alpine/referrers/{DIGEST}"));
        let query = crate::query::ReferrersQuery::parse(url.query().unwrap()).unwrap();
        assert_eq!(query.n, Some(3));
        assert_eq!(query.last, Some(last));
        assert_eq!(query.artifact_types, types);
    }
}
