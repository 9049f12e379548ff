//! `backend_usage`: monthly request and traffic counters.

use std::collections::BTreeMap;

use async_trait::async_trait;
use s3o_core::engine::UsageStore;
use s3o_core::{Result, UsageStat, validate};

use crate::PgStore;
use crate::error::RowExt;
use crate::error::unknown_backend;

#[async_trait]
impl UsageStore for PgStore {
    async fn flush_usage_deltas(
        &self,
        backend: &str,
        period: &str,
        api_requests: i64,
        egress_bytes: i64,
        ingress_bytes: i64,
    ) -> Result<()> {
        validate::usage_flush(backend, period, api_requests, egress_bytes, ingress_bytes)?;
        // Additive upsert: concurrent flushers converge without loss (the conflicting row is
        // locked and re-read). Unknown backend ⇒ foreign key ⇒ UnknownBackend.
        self.db
            .execute(
                "flush usage",
                "INSERT INTO backend_usage (backend_name, period, api_requests, egress_bytes, \
                 ingress_bytes, updated_at) VALUES ($1, $2, $3, $4, $5, NOW()) \
                 ON CONFLICT (backend_name, period) DO UPDATE SET \
                 api_requests = backend_usage.api_requests + EXCLUDED.api_requests, \
                 egress_bytes = backend_usage.egress_bytes + EXCLUDED.egress_bytes, \
                 ingress_bytes = backend_usage.ingress_bytes + EXCLUDED.ingress_bytes, \
                 updated_at = NOW()",
                &[
                    &backend,
                    &period,
                    &api_requests,
                    &egress_bytes,
                    &ingress_bytes,
                ],
            )
            .await
            .map_err(unknown_backend(backend))?;
        Ok(())
    }

    async fn get_usage_for_period(&self, period: &str) -> Result<BTreeMap<String, UsageStat>> {
        validate::usage_period(period)?;
        let rows = self
            .db
            .query(
                "read usage",
                "SELECT backend_name, api_requests, egress_bytes, ingress_bytes \
                 FROM backend_usage WHERE period = $1",
                &[&period],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                Ok({
                    (
                        r.col(0)?,
                        UsageStat {
                            api_requests: r.col(1)?,
                            egress_bytes: r.col(2)?,
                            ingress_bytes: r.col(3)?,
                        },
                    )
                })
            })
            .collect::<Result<_>>()?)
    }
}
