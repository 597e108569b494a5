//! A project's repositories and their artifacts, listed page by page with the caller's own
//! credentials (`GET /api/v2.0/projects/{project}/repositories` and
//! `…/repositories/{repository}/artifacts`). Shapes follow Harbor's swagger (`Repository`,
//! `Artifact`): only the fields read are typed. Pages are Harbor's largest; whether another
//! follows is told by the `Link` header's `rel="next"`, and `X-Total-Count` counts them all.

use std::time::SystemTime;

use awc::http::header::HeaderMap;
use oci_referrers::Digest;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use serde::Deserialize;

use crate::api::{BasicAuth, CoreClient, project_path};
use crate::error::HarborError;

/// Items asked for per page: Harbor's largest `page_size`.
pub const PAGE_SIZE: u32 = 100;

/// Largest page read: an artifact carries its image's configuration (`extra_attrs`), a few KiB
/// each, and a page holds a hundred.
const PAGE_BODY_LIMIT: usize = 16 * 1024 * 1024;

/// What a path segment must not hold as is; `%` too, so that encoding twice escapes the first
/// encoding's `%`.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'?');

/// A repository (swagger `Repository`).
#[derive(Debug, Clone, Deserialize)]
pub struct Repository {
    /// `<project>/<repository>`, as Harbor names it.
    pub name: String,
    #[serde(default)]
    pub artifact_count: Option<i64>,
}

/// An artifact (swagger `Artifact`).
#[derive(Debug, Clone, Deserialize)]
pub struct Artifact {
    pub digest: Digest,
    /// `IMAGE`, `CHART`, `CNAB`, …
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub media_type: Option<String>,
    /// When Harbor stored it: for a proxy-cache project, when it was first pulled through.
    #[serde(default)]
    pub push_time: Option<String>,
    /// When it was last pulled (Harbor updates it in the background, and sends Go's zero time
    /// for an artifact never pulled).
    #[serde(default)]
    pub pull_time: Option<String>,
}

impl Artifact {
    /// When the artifact was last used: the later of its pull and push times; `None` when
    /// neither is a readable time after the Unix epoch.
    #[must_use]
    pub fn last_used(&self) -> Option<SystemTime> {
        let read = |time: &Option<String>| {
            time.as_deref()
                .and_then(|text| humantime::parse_rfc3339_weak(text).ok())
        };
        read(&self.pull_time).max(read(&self.push_time))
    }
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// `X-Total-Count`: how many the whole listing holds.
    pub total: Option<u64>,
    /// Whether `Link` names a next page.
    pub has_next: bool,
}

impl<T> Page<T> {
    fn from(items: Vec<T>, headers: &HeaderMap) -> Self {
        let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
        Self {
            items,
            total: header("X-Total-Count").and_then(|count| count.trim().parse().ok()),
            has_next: header("Link").is_some_and(names_next),
        }
    }
}

/// Whether a `Link` header has a link whose `rel` is `next` (quoted or not).
fn names_next(link: &str) -> bool {
    link.split(',').any(|part| {
        part.split(';').skip(1).any(|param| {
            param
                .trim()
                .strip_prefix("rel=")
                .is_some_and(|rel| rel.trim_matches('"').split(' ').any(|r| r == "next"))
        })
    })
}

/// `repository` as a path segment of Harbor's API: encoded twice (`a/b` → `a%252Fb`), as
/// Harbor's definition asks of a name with a slash.
fn repository_segment(repository: &str) -> String {
    let once = utf8_percent_encode(repository, SEGMENT).to_string();
    utf8_percent_encode(&once, SEGMENT).to_string()
}

impl CoreClient {
    /// Page `page` (from 1) of the repositories of `project`, as `caller` may see them; `None`
    /// when Harbor does not know the project.
    pub async fn repositories(
        &self,
        project: &str,
        page: u32,
        caller: &BasicAuth,
    ) -> Result<Option<Page<Repository>>, HarborError> {
        let (project_path, by_name) = project_path(project);
        let path = format!("{project_path}/repositories?page={page}&page_size={PAGE_SIZE}");
        let what = format!("repositories of project {project}");
        Ok(self
            .get_json_with_headers(&path, &what, by_name, Some(caller), PAGE_BODY_LIMIT)
            .await?
            .map(|(items, headers)| Page::from(items, &headers)))
    }

    /// Page `page` (from 1) of the artifacts of `repository` (named without the project) in
    /// `project`, without their tags, labels, scans or accessories; `None` when Harbor does not
    /// know the repository.
    pub async fn artifacts(
        &self,
        project: &str,
        repository: &str,
        page: u32,
        caller: &BasicAuth,
    ) -> Result<Option<Page<Artifact>>, HarborError> {
        let (project_path, by_name) = project_path(project);
        let path = format!(
            "{project_path}/repositories/{}/artifacts?with_tag=false&page={page}&page_size={PAGE_SIZE}",
            repository_segment(repository)
        );
        let what = format!("artifacts of {project}/{repository}");
        Ok(self
            .get_json_with_headers(&path, &what, by_name, Some(caller), PAGE_BODY_LIMIT)
            .await?
            .map(|(items, headers)| Page::from(items, &headers)))
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn a_name_with_a_slash_is_encoded_twice() {
        assert_eq!(repository_segment("library/nginx"), "library%252Fnginx");
        assert_eq!(repository_segment("a/b/c.d-e_f"), "a%252Fb%252Fc.d-e_f");
        assert_eq!(repository_segment("nginx"), "nginx");
    }

    #[test]
    fn the_next_page_is_told_by_link() {
        // Harbor's own form: both links, joined by " , ".
        assert!(names_next(
            r#"</api/v2.0/projects/p/repositories?page=1&page_size=100>; rel="prev" , </api/v2.0/projects/p/repositories?page=3&page_size=100>; rel="next""#
        ));
        assert!(names_next("<https://h/x?page=2>; rel=next"));
        assert!(!names_next(
            r#"</api/v2.0/projects/p/repositories?page=1&page_size=100>; rel="prev""#
        ));
        assert!(!names_next("<https://h/next>; title=\"next\""));
        assert!(!names_next(""));
    }

    #[test]
    fn an_artifact_as_harbor_lists_it_decodes_and_was_last_used_at_its_later_time() {
        let listed: Vec<Artifact> = serde_json::from_str(
            r#"[{"id":7,"type":"IMAGE","media_type":"application/vnd.oci.image.config.v1+json",
                 "manifest_media_type":"application/vnd.oci.image.manifest.v1+json",
                 "project_id":3,"repository_id":4,"repository_name":"hub/library/nginx",
                 "digest":"sha256:dde8e930c7b6a490f728e66292bc9bce42efc9bbb5278bae40e4f30f6e00fe8c",
                 "size":1234,"icon":"sha256:0048162a053eef4d4ce3fe7518615bef084403614f8bca43b40ae2e762e11e06",
                 "push_time":"2026-01-01T00:00:00.000Z","pull_time":"2026-01-08T12:00:00.000Z",
                 "extra_attrs":{},"annotations":null,"references":null,"tags":null,
                 "addition_links":{},"labels":null,"accessories":null},
                {"digest":"sha256:dde8e930c7b6a490f728e66292bc9bce42efc9bbb5278bae40e4f30f6e00fe8c",
                 "push_time":"2026-01-01T00:00:00.000Z","pull_time":"0001-01-01T00:00:00.000Z"},
                {"digest":"sha256:dde8e930c7b6a490f728e66292bc9bce42efc9bbb5278bae40e4f30f6e00fe8c"}]"#,
        )
        .unwrap();
        let at = |seconds: u64| Some(UNIX_EPOCH + Duration::from_secs(seconds));
        assert_eq!(listed[0].kind.as_deref(), Some("IMAGE"));
        assert_eq!(listed[0].last_used(), at(1_767_873_600), "its pull");
        assert_eq!(
            listed[1].last_used(),
            at(1_767_225_600),
            "never pulled: its push"
        );
        assert_eq!(listed[2].last_used(), None);
    }
}
