"""DynamoDB: pynamodb models of the ledger and dedupe tables, one store per aggregate."""
