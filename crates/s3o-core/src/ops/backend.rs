use async_trait::async_trait;

use crate::error::{Result, StoreError};
use crate::tx::{BackendTable, Runner, TxAdapter, TxBody, with_tx_val};
use crate::validate;

struct DeleteBackend<'a> {
    backend: &'a str,
}

#[async_trait]
impl TxBody for DeleteBackend<'_> {
    type Output = ();
    async fn run(&self, tx: &mut dyn TxAdapter) -> Result<()> {
        let mut removed = Vec::new();
        for table in BackendTable::REMOVAL_ORDER {
            removed.push((
                table.table_name(),
                tx.delete_backend_rows(table, self.backend).await?,
            ));
        }
        // The quota row goes last, as in every other operation: writers that already hold
        // row locks of this backend finish first instead of deadlocking against us.
        if !tx.delete_backend_quota_row(self.backend).await? {
            return Err(StoreError::UnknownBackend {
                backend: self.backend.to_owned(),
            });
        }
        tracing::warn!(
            backend = self.backend,
            ?removed,
            "deleted every ledger row of backend"
        );
        Ok(())
    }
}

/// Removes everything that references `backend` — cleanup queue and dead-letter rows, pending
/// intents, multipart uploads (parts cascade), copies, usage rows — and then its quota row, in
/// one transaction. Unknown backend ⇒ `UnknownBackend` and nothing changes.
#[tracing::instrument(name = "delete_backend_data", level = "debug", skip_all, fields(backend = %backend))]
pub async fn delete_backend_data<R: Runner + ?Sized>(runner: &R, backend: &str) -> Result<()> {
    validate::backend(backend)?;
    with_tx_val(runner, &DeleteBackend { backend }).await
}
