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
        // The backend's rows and then its quota row, locked (the writers' order: rows →
        // quota): writers to this backend (whose foreign-key checks need the quota row, as do
        // their quota charges) wait for the removal and then find the backend gone
        // (`UnknownBackend`), so none can add a row between our deletes and the quota row's.
        if !tx.lock_backend_quota_row(self.backend).await? {
            return Err(StoreError::UnknownBackend {
                backend: self.backend.to_owned(),
            });
        }
        let mut removed = Vec::new();
        for table in BackendTable::REMOVAL_ORDER {
            removed.push((
                table.table_name(),
                tx.delete_backend_rows(table, self.backend).await?,
            ));
        }
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
/// one transaction, holding the quota row locked from the start. Unknown backend ⇒
/// `UnknownBackend` and nothing changes. Concurrent writes to the backend wait, then fail with
/// `UnknownBackend` (never a foreign-key error).
#[tracing::instrument(name = "delete_backend_data", level = "debug", skip_all, fields(backend = %backend))]
pub async fn delete_backend_data<R: Runner + ?Sized>(runner: &R, backend: &str) -> Result<()> {
    validate::backend(backend)?;
    // A writer that locked one of the backend's rows before we locked its quota row waits for
    // us while we wait for it: the database aborts one side. When that is us, start over;
    // writers finish or fail with `UnknownBackend` meanwhile, so this ends. Removal is a rare
    // admin act, so it gets more rounds than an ordinary transaction.
    let mut round = 1;
    loop {
        match with_tx_val(runner, &DeleteBackend { backend }).await {
            Err(e) if e.is_retryable() && round < REMOVAL_ROUNDS => {
                tracing::debug!(round, error = %e, "backend removal lost a conflict; retrying");
                round += 1;
            }
            other => return other,
        }
    }
}

/// Rounds of [`delete_backend_data`] (each up to [`Runner::max_attempts`] transactions) before a
/// conflict is returned to the caller.
const REMOVAL_ROUNDS: u32 = 10;
