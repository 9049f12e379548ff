//! `backend_usage`: monthly request and transfer counters.

use std::collections::BTreeMap;

use async_trait::async_trait;
use rusqlite::params;
use s3o_core::engine::UsageStore;
use s3o_core::{Result, StoreError, Timestamp, UsageStat, validate};

use crate::SqliteStore;

#[async_trait]
impl UsageStore for SqliteStore {
    async fn flush_usage_deltas(
        &self,
        backend: &str,
        period: &str,
        api_requests: i64,
        egress_bytes: i64,
        ingress_bytes: i64,
    ) -> Result<()> {
        validate::usage_flush(backend, period, api_requests, egress_bytes, ingress_bytes)?;
        let (backend, period) = (backend.to_owned(), period.to_owned());
        self.conns
            .write("flush usage deltas", move |db| {
                // Additive upsert on the primary key (backend_name, period): flushers converge.
                let n = db.execute(
                    "flush usage deltas",
                    "INSERT INTO backend_usage (backend_name, period, api_requests, \
                                                egress_bytes, ingress_bytes, updated_at) \
                     SELECT ?1, ?2, ?3, ?4, ?5, ?6 \
                     WHERE EXISTS (SELECT 1 FROM backend_quotas WHERE backend_name = ?1) \
                     ON CONFLICT (backend_name, period) DO UPDATE SET \
                         api_requests = api_requests + excluded.api_requests, \
                         egress_bytes = egress_bytes + excluded.egress_bytes, \
                         ingress_bytes = ingress_bytes + excluded.ingress_bytes, \
                         updated_at = excluded.updated_at",
                    params![
                        backend,
                        period,
                        api_requests,
                        egress_bytes,
                        ingress_bytes,
                        Timestamp::now().as_micros()
                    ],
                )?;
                if n == 0 {
                    return Err(StoreError::UnknownBackend { backend });
                }
                Ok(())
            })
            .await
    }

    async fn get_usage_for_period(&self, period: &str) -> Result<BTreeMap<String, UsageStat>> {
        validate::usage_period(period)?;
        let period = period.to_owned();
        let rows = self
            .conns
            .read("get usage for period", move |db| {
                db.query_vec(
                    "get usage for period",
                    "SELECT backend_name, api_requests, egress_bytes, ingress_bytes \
                     FROM backend_usage WHERE period = ?1 ORDER BY backend_name",
                    params![period],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            UsageStat {
                                api_requests: r.get(1)?,
                                egress_bytes: r.get(2)?,
                                ingress_bytes: r.get(3)?,
                            },
                        ))
                    },
                )
            })
            .await?;
        Ok(rows.into_iter().collect())
    }
}
