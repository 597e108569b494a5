//! Harbor core as the service uses it, behind a seam: the caller's local referrers, and the
//! facts the robot account reads (projects, registries, project labels). [`CoreClient`] is the
//! real one; the use cases take `&dyn Core`, so they run against a stub in unit tests.

use std::collections::HashSet;

use actix_web::http::header::HeaderMap;
use futures_util::FutureExt;
use futures_util::future::LocalBoxFuture;
use harbor_client::{CoreClient, CoreReferrers, HarborError, Project, RegistryInfo};
use oci_referrers::{Digest, RepositoryName};

/// What the service asks of Harbor core.
pub trait Core {
    /// Core's referrers of `digest` in `name`, asked with the caller's credentials: core
    /// authorizes the caller and lists the local referrers in one call.
    fn local_referrers<'a>(
        &'a self,
        name: &'a RepositoryName,
        digest: &'a Digest,
        caller: &'a HeaderMap,
        request_id: &'a str,
    ) -> LocalBoxFuture<'a, Result<CoreReferrers, HarborError>>;

    /// The project named `name` (`None`: Harbor does not know it), read with the robot account.
    fn project<'a>(
        &'a self,
        name: &'a str,
    ) -> LocalBoxFuture<'a, Result<Option<Project>, HarborError>>;

    /// The registry with `id` (`None`: Harbor does not know it).
    fn registry(&self, id: i64) -> LocalBoxFuture<'_, Result<Option<RegistryInfo>, HarborError>>;

    /// The names of the project labels of project `project_id`.
    fn project_label_names(
        &self,
        project_id: i64,
    ) -> LocalBoxFuture<'_, Result<HashSet<String>, HarborError>>;
}

impl Core for CoreClient {
    fn local_referrers<'a>(
        &'a self,
        name: &'a RepositoryName,
        digest: &'a Digest,
        caller: &'a HeaderMap,
        request_id: &'a str,
    ) -> LocalBoxFuture<'a, Result<CoreReferrers, HarborError>> {
        CoreClient::local_referrers(self, name, digest, caller, request_id).boxed_local()
    }

    fn project<'a>(
        &'a self,
        name: &'a str,
    ) -> LocalBoxFuture<'a, Result<Option<Project>, HarborError>> {
        CoreClient::project(self, name).boxed_local()
    }

    fn registry(&self, id: i64) -> LocalBoxFuture<'_, Result<Option<RegistryInfo>, HarborError>> {
        CoreClient::registry(self, id).boxed_local()
    }

    fn project_label_names(
        &self,
        project_id: i64,
    ) -> LocalBoxFuture<'_, Result<HashSet<String>, HarborError>> {
        CoreClient::project_label_names(self, project_id).boxed_local()
    }
}
