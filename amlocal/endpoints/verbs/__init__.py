"""The endpoint verbs as the CLI runs them, in its own process: the online and batch
endpoints' and deployments' records in the workspace store, `create|update|show|list|delete`,
`invoke`, traffic, and starting, stopping and driving an online endpoint's daemon."""
