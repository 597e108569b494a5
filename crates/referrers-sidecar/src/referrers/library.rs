//! Docker Hub's single-segment names (`nginx`): Harbor stores them under
//! `<project>/library/<name>`, and their local referrers are there.

use harbor_client::CoreReferrers;
use oci_referrers::{Descriptor, RepositoryName};

use super::{Caller, Referrers, ReferrersRequest};

impl Referrers<'_> {
    /// Docker Hub's single-segment names are stored by Harbor under `<project>/library/<name>`:
    /// their local referrers are there.
    pub(super) async fn library_referrers(
        &self,
        request: &ReferrersRequest,
        repository: &str,
        caller: Caller<'_>,
    ) -> Vec<Descriptor> {
        let Ok(name) =
            format!("{}/library/{repository}", request.name.project()).parse::<RepositoryName>()
        else {
            return Vec::new();
        };
        match self
            .core
            .local_referrers(&name, &request.digest, caller.headers, caller.request_id)
            .await
        {
            Ok(CoreReferrers::Listed { descriptors, .. }) => descriptors,
            Ok(CoreReferrers::Relayed(answer)) => {
                tracing::info!(%name, status = %answer.status, "core did not list the library/ path");
                Vec::new()
            }
            Err(error) => {
                tracing::warn!(%name, error = %error, "cannot ask core for the library/ path");
                Vec::new()
            }
        }
    }
}
