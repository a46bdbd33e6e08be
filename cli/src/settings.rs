//! Where the CLI finds Postgres and the API: flags, then the environment, then `.ackbox/local.env` (written by
//! `make up`).

use anyhow::Context;

/// A value from the flag, the environment, or `.ackbox/local.env`, in that order.
pub fn lookup(flag: Option<String>, name: &str) -> Option<String> {
    flag.or_else(|| ackbox_db::config::optional(name)).or_else(|| {
        let env = std::fs::read_to_string(".ackbox/local.env").ok()?;
        let prefix = format!("{name}=");
        env.lines()
            .filter_map(|l| l.strip_prefix(prefix.as_str()))
            .map(|v| v.trim().to_string())
            .find(|v| !v.is_empty())
    })
}

/// `DATABASE_URL`.
pub fn database_url(flag: Option<String>) -> anyhow::Result<String> {
    lookup(flag, "DATABASE_URL")
        .context("DATABASE_URL is not set and .ackbox/local.env has none: run `make up`, or pass --database-url")
}

/// `ACKBOX_URL` and `ACKBOX_API_KEY`, for commands that go through the HTTP API.
pub fn api(url: Option<String>, key: Option<String>) -> anyhow::Result<(String, String)> {
    let url = lookup(url, "ACKBOX_URL")
        .context("ACKBOX_URL is not set and .ackbox/local.env has none: run `make up`, or pass --url")?;
    let key = lookup(key, "ACKBOX_API_KEY").context(
        "ACKBOX_API_KEY is not set and .ackbox/local.env has none: create one with `ackbox keys create --tenant NAME` \
         and pass --api-key",
    )?;
    Ok((url, key))
}
