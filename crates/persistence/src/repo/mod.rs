//! Repositories: one module per aggregate. Partner-facing reads take the caller's account id,
//! so an unscoped query stands out in review.
pub mod accounts;
pub mod api_keys;
pub mod attempts;
pub mod bulk;
pub mod event_record;
pub mod event_stream;
pub mod events;
pub mod idempotency;
pub mod jobs;
pub mod ledger;
pub mod licenses;
pub mod orders;
pub mod products;
pub mod registrations;
pub mod reports;
pub mod settings;
pub mod signing_keys;
pub mod tokens;
pub mod transfers;
pub mod trials;
pub mod usage;
pub mod users;
pub mod webhooks;

/// A keyset page: rows after `after` (exclusive), at most `limit`.
#[derive(Clone, Copy, Debug)]
pub struct Page {
    pub after: Option<uuid::Uuid>,
    pub limit: u64,
}

/// Adds every column of `E` to a select under `{prefix}{column}` aliases, so that one
/// statement can read a row and the row it refers to (read back with
/// `FromQueryResult::from_query_result(&row, prefix)`).
pub(crate) fn select_prefixed<E>(q: &mut sea_orm::sea_query::SelectStatement, prefix: &str)
where
    E: sea_orm::EntityTrait,
{
    use sea_orm::sea_query::{Alias, Expr};
    use sea_orm::{IdenStatic, Iterable};
    for c in E::Column::iter() {
        q.expr_as(
            Expr::col((E::default(), c)),
            Alias::new(format!("{prefix}{}", c.as_str())),
        );
    }
}
