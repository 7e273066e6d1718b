//! Product codes by id, kept in memory for the licensed software's hot paths. A product's code
//! never changes and products are never deleted (only archived), so an entry once read stays
//! right in every process, and the catalog is small.
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use licentia_domain::ids::ProductId;
use licentia_persistence::ConnectionTrait;
use licentia_persistence::repo::products;

use crate::error::{ApiError, ApiResult};

#[derive(Debug, Default)]
pub struct ProductCodes(RwLock<BTreeMap<ProductId, Arc<str>>>);

impl ProductCodes {
    /// Reads every product's code ahead, so that the first validations after a start do not
    /// each wait on the database for it; a failure leaves the codes to be read when needed.
    pub async fn load(&self, db: &impl ConnectionTrait) {
        match products::codes(db).await {
            Ok(codes) => {
                if let Ok(mut m) = self.0.write() {
                    for (id, code) in codes {
                        m.insert(id, Arc::from(code.as_str()));
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "product codes were not read ahead"),
        }
    }

    /// The code of product `id`, read from the database the first time only.
    pub async fn code(&self, db: &impl ConnectionTrait, id: ProductId) -> ApiResult<String> {
        if let Some(code) = self.0.read().ok().and_then(|m| m.get(&id).cloned()) {
            return Ok(code.to_string());
        }
        let product = products::find(db, id).await?.ok_or_else(|| {
            ApiError::internal(format!(
                "a license refers to product {id}, which is missing"
            ))
        })?;
        if let Ok(mut m) = self.0.write() {
            m.insert(id, Arc::from(product.code.as_str()));
        }
        Ok(product.code)
    }
}
