//! [`super::DynamoStore`]'s managed-link items: `link#<hash>`, `linkset#<source>#<event id>`
//! and `hits#<key>#<window>`, each expiring by the table's TTL.

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};

use super::dynamo::{DynamoStore, n, number, s, store_err, text};
use super::links::{LinkRecord, LinkState};
use super::{EventKey, StoreError};

/// How long a link's record outlives its expiry (so the page can say "expired" rather than
/// "unknown").
const KEEP_AFTER_EXPIRY_SECS: u64 = 30 * 24 * 3600;

fn linkset_id(key: &EventKey) -> String {
    format!("linkset#{}#{}", key.source, key.event_id)
}

impl DynamoStore {
    pub(super) async fn put_link(&self, r: &LinkRecord) -> Result<(), StoreError> {
        let expiration = r.expires_at + KEEP_AFTER_EXPIRY_SECS;
        self.client()
            .put_item()
            .table_name(self.table())
            .item("id", s(format!("link#{}", r.hash)))
            .item("source", s(&r.event.source))
            .item("event_id", s(&r.event.event_id))
            .item("user_id", s(&r.user_id))
            .item("sealed", s(&r.sealed))
            .item("redirect", s(&r.redirect))
            .item("expires_at", n(r.expires_at))
            .item("state", s(r.state.name()))
            .item("expiration", n(expiration))
            .condition_expression("attribute_not_exists(id)")
            .send()
            .await
            .map_err(|e| store_err("PutItem", &e))?;
        for set in [linkset_id(&r.event), format!("linkuser#{}", r.user_id)] {
            self.client()
                .update_item()
                .table_name(self.table())
                .key("id", s(set))
                .update_expression("ADD hashes :h SET expiration = :e")
                .expression_attribute_values(":h", AttributeValue::Ss(vec![r.hash.clone()]))
                .expression_attribute_values(":e", n(expiration))
                .send()
                .await
                .map_err(|e| store_err("UpdateItem", &e))?;
        }
        Ok(())
    }

    pub(super) async fn link(&self, hash: &str) -> Result<Option<LinkRecord>, StoreError> {
        Ok(self
            .get(&format!("link#{hash}"))
            .await?
            .map(|item| LinkRecord {
                hash: hash.to_owned(),
                event: EventKey {
                    source: text(&item, "source").unwrap_or_default(),
                    event_id: text(&item, "event_id").unwrap_or_default(),
                },
                user_id: text(&item, "user_id").unwrap_or_default(),
                sealed: text(&item, "sealed").unwrap_or_default(),
                redirect: text(&item, "redirect").unwrap_or_default(),
                expires_at: number(&item, "expires_at"),
                state: LinkState::parse(text(&item, "state").as_deref().unwrap_or("")),
                opened_at: item
                    .contains_key("opened_at")
                    .then(|| number(&item, "opened_at")),
            }))
    }

    pub(super) async fn links_for_event(&self, key: &EventKey) -> Result<Vec<String>, StoreError> {
        self.hashes(&linkset_id(key)).await
    }

    pub(super) async fn links_for_user(&self, user_id: &str) -> Result<Vec<String>, StoreError> {
        self.hashes(&format!("linkuser#{user_id}")).await
    }

    async fn hashes(&self, id: &str) -> Result<Vec<String>, StoreError> {
        Ok(self
            .get(id)
            .await?
            .and_then(|item| match item.get("hashes") {
                Some(AttributeValue::Ss(v)) => Some(v.clone()),
                _ => None,
            })
            .unwrap_or_default())
    }

    /// Active → used with `opened_at` set (`true`); used stays used (`false`); revoked stays.
    pub(super) async fn open_link(&self, hash: &str, now: u64) -> Result<bool, StoreError> {
        let r = self
            .client()
            .update_item()
            .table_name(self.table())
            .key("id", s(format!("link#{hash}")))
            .update_expression("SET #state = :used, opened_at = :now")
            .condition_expression("#state = :active")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":used", s(LinkState::Used.name()))
            .expression_attribute_values(":active", s(LinkState::Active.name()))
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        conditional(r)
    }

    pub(super) async fn revoke_link(&self, hash: &str) -> Result<bool, StoreError> {
        let r = self
            .client()
            .update_item()
            .table_name(self.table())
            .key("id", s(format!("link#{hash}")))
            .update_expression("SET #state = :revoked")
            .condition_expression("attribute_exists(id) AND #state <> :revoked")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":revoked", s(LinkState::Revoked.name()))
            .send()
            .await;
        conditional(r)
    }

    pub(super) async fn relink(&self, hash: &str, user_id: &str) -> Result<(), StoreError> {
        self.client()
            .update_item()
            .table_name(self.table())
            .key("id", s(format!("link#{hash}")))
            .update_expression("SET user_id = :u")
            .condition_expression("attribute_exists(id)")
            .expression_attribute_values(":u", s(user_id))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| store_err("UpdateItem", &e))
    }

    pub(super) async fn count_hit(&self, key: &str, window_end: u64) -> Result<u64, StoreError> {
        let out = self
            .client()
            .update_item()
            .table_name(self.table())
            .key("id", s(format!("hits#{key}")))
            .update_expression("ADD hits :one SET expiration = :e")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":e", n(window_end + 60))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| store_err("UpdateItem", &e))?;
        Ok(out.attributes().map(|a| number(a, "hits")).unwrap_or(1))
    }
}

fn conditional<T, E>(
    r: Result<T, aws_sdk_dynamodb::error::SdkError<E, aws_smithy_runtime_api::http::Response>>,
) -> Result<bool, StoreError>
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    use aws_sdk_dynamodb::error::ProvideErrorMetadata as _;
    match r {
        Ok(_) => Ok(true),
        Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(false),
        Err(e) => Err(store_err("UpdateItem", &e)),
    }
}
