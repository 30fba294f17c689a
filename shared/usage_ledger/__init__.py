"""usage-ledger: pooled capacity and API usage - balances, metering, billing cycles, alerts."""
