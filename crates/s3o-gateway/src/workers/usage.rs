//! The usage flush: adds this process's backend usage counts to the ledger's monthly totals
//! (`flush_usage_deltas`, additive, so several gateways' counts add up and a failed flush is
//! simply retried) and re-reads the totals every gateway flushed, which budgets are checked
//! against. The gateway also flushes once at shutdown (see `server.rs`), so a restart loses
//! no count; a crash loses at most one interval's counts of the crashed process.

use super::{Ctx, Tally};
use crate::ledger::LResult;

pub(super) async fn pass(ctx: &Ctx, t: &mut Tally) -> LResult<()> {
    let flushed = ctx.backends.usage().flush(&ctx.store).await?;
    for _ in 0..flushed {
        t.add("flushed");
    }
    Ok(())
}
