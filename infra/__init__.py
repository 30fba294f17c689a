"""Local operation of usage-ledger: deploy template.yaml into moto and run its functions."""
