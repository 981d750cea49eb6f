"""The ledger's delivery layer (接口层): HTTP API, bearer-token auth and the serve/token commands."""
