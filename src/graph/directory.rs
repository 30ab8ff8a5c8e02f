//! Reading groups, for the operator's checks and status:
//! <https://learn.microsoft.com/graph/api/group-get> and
//! <https://learn.microsoft.com/graph/api/user-list-memberof> (`GroupMember.Read.All`, or any
//! permission that includes it, such as `GroupMember.ReadWrite.All`).

use serde::{Deserialize, Serialize};

use super::error::classify;
use super::{ClientCredential, GraphClient, GraphError};

/// A group, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupRef {
    pub id: String,
    pub display_name: Option<String>,
}

impl GraphClient {
    /// The group with this object id, or `None` when there is none.
    ///
    /// # Errors
    /// [`GraphError`].
    #[tracing::instrument(name = "graph.get_group", skip_all)]
    pub async fn group(
        &self,
        credential: &ClientCredential,
        id: &str,
    ) -> Result<Option<GroupRef>, GraphError> {
        let url = format!("{}/groups/{id}?$select=id,displayName", self.api);
        let (status, headers, body) = self.call(credential, |h| h.get(&url)).await?;
        match status {
            200 => serde_json::from_slice(&body)
                .map(Some)
                .map_err(|_| GraphError::InvalidResponse("the group response is not a group")),
            404 => Ok(None),
            _ => Err(classify(status, &headers, &body)),
        }
    }

    /// The groups a user is a direct member of (one page: at most 100, Graph's default).
    ///
    /// # Errors
    /// [`GraphError`].
    #[tracing::instrument(name = "graph.member_of", skip_all)]
    pub async fn member_of(
        &self,
        credential: &ClientCredential,
        id: &str,
    ) -> Result<Vec<GroupRef>, GraphError> {
        #[derive(Deserialize)]
        struct Page {
            value: Vec<GroupRef>,
        }
        let url = format!("{}/users/{id}/memberOf?$select=id,displayName", self.api);
        let (status, headers, body) = self.call(credential, |h| h.get(&url)).await?;
        match status {
            200 => serde_json::from_slice::<Page>(&body)
                .map(|p| p.value)
                .map_err(|_| GraphError::InvalidResponse("the memberOf response is not a list")),
            _ => Err(classify(status, &headers, &body)),
        }
    }
}
