"""Storage adapters (存储适配): recorders, transcoder and database configuration."""
