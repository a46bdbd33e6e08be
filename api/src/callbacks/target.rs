//! Where a callback may go: an absolute `http`/`https` URL whose host is not one of ours. A callback URL is chosen by
//! whoever submits a job, so without this check any tenant could make Ackbox POST into its own network (SSRF): the
//! cloud metadata service at 169.254.169.254, an admin port on loopback, a database on a private address.
//!
//! The check runs twice: at submit, on the URL as written (a literal address is refused with a 422), and at send
//! time on every address its host resolves to ([`GuardedResolver`]), because a name that resolved to a public
//! address at submit may resolve to a private one later (DNS rebinding).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;

/// Longest accepted callback URL.
pub const MAX_URL_LEN: usize = 2048;

/// Which kinds of internal address a callback may reach (both off by default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// Loopback (127.0.0.0/8, ::1, `localhost`): local development and tests (`ACKBOX_CALLBACK_ALLOW_LOOPBACK`).
    pub allow_loopback: bool,
    /// Private ranges (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7): receivers inside the same network
    /// (`ACKBOX_CALLBACK_ALLOW_PRIVATE`).
    pub allow_private: bool,
}

/// Why an address is refused, or `None` when a callback may go there under `policy`. Link-local (the metadata
/// services), unspecified, multicast, broadcast and reserved addresses are refused whatever the policy.
pub fn refusal(ip: IpAddr, policy: Policy) -> Option<&'static str> {
    // An IPv4 address written as IPv6 (::ffff:169.254.169.254) is that IPv4 address.
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    let (loopback, private, never) = match ip {
        IpAddr::V4(v4) => (v4.is_loopback(), is_private_v4(v4), never_v4(v4)),
        IpAddr::V6(v6) => (v6.is_loopback(), (v6.segments()[0] & 0xfe00) == 0xfc00, never_v6(v6)),
    };
    if let Some(why) = never {
        return Some(why);
    }
    if loopback && !policy.allow_loopback {
        return Some("a loopback address (allowed only with ACKBOX_CALLBACK_ALLOW_LOOPBACK=true)");
    }
    if private && !policy.allow_private {
        return Some("a private address (allowed only with ACKBOX_CALLBACK_ALLOW_PRIVATE=true)");
    }
    None
}

fn is_private_v4(v4: Ipv4Addr) -> bool {
    let [a, b, ..] = v4.octets();
    v4.is_private() || (a == 100 && (64..128).contains(&b))
}

fn never_v4(v4: Ipv4Addr) -> Option<&'static str> {
    let [a, ..] = v4.octets();
    if v4.is_link_local() {
        Some("a link-local address (169.254.0.0/16, where cloud metadata services answer)")
    } else if v4.is_unspecified() || a == 0 {
        Some("an unspecified address")
    } else if v4.is_multicast() || v4.is_broadcast() || a >= 240 {
        Some("a multicast, broadcast or reserved address")
    } else {
        None
    }
}

fn never_v6(v6: Ipv6Addr) -> Option<&'static str> {
    let first = v6.segments()[0];
    if (first & 0xffc0) == 0xfe80 {
        Some("a link-local address (fe80::/10)")
    } else if v6.is_unspecified() {
        Some("an unspecified address")
    } else if v6.is_multicast() {
        Some("a multicast address")
    } else {
        None
    }
}

/// Checks a callback URL as written: the message says what is wrong with it (the caller names the field).
pub fn check(raw: &str, policy: Policy) -> Result<Url, String> {
    if raw.len() > MAX_URL_LEN {
        return Err(format!("must be at most {MAX_URL_LEN} characters"));
    }
    let url = Url::parse(raw).map_err(|e| format!("must be an absolute http or https URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("must be an http or https URL, not {}:", url.scheme()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry a user name or password (put a token in the path or query instead)".into());
    }
    match url.host() {
        None => return Err("must name a host".into()),
        Some(url::Host::Ipv4(v4)) => refuse(IpAddr::V4(v4), policy)?,
        Some(url::Host::Ipv6(v6)) => refuse(IpAddr::V6(v6), policy)?,
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if (name == "localhost" || name.ends_with(".localhost")) && !policy.allow_loopback {
                refuse(IpAddr::V4(Ipv4Addr::LOCALHOST), policy)?;
            }
        }
    }
    Ok(url)
}

fn refuse(ip: IpAddr, policy: Policy) -> Result<(), String> {
    match refusal(ip, policy) {
        Some(why) => Err(format!("{ip} is {why}: callbacks may not target it")),
        None => Ok(()),
    }
}

/// A resolver for the callback client that drops every address [`refusal`] refuses, and fails when none is left:
/// the check on the address actually connected to, at send time.
pub struct GuardedResolver {
    /// What may be reached.
    pub policy: Policy,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = all.iter().copied().filter(|a| refusal(a.ip(), policy).is_none()).collect();
            if allowed.is_empty() {
                let why = all.first().and_then(|a| refusal(a.ip(), policy)).unwrap_or("unresolvable");
                return Err(format!("{host} resolves only to refused addresses ({why})").into());
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

impl GuardedResolver {
    /// The resolver as reqwest takes it.
    pub fn shared(policy: Policy) -> Arc<Self> {
        Arc::new(Self { policy })
    }
}

#[cfg(test)]
mod tests {
    use super::{check, Policy};

    #[test]
    fn metadata_loopback_private_and_odd_urls_are_refused_by_default() {
        let strict = Policy::default();
        for url in [
            "http://169.254.169.254/latest/meta-data/",
            "http://[::ffff:169.254.169.254]/",
            "http://[fe80::1]/",
            "http://127.0.0.1:8080/hook",
            "http://localhost/hook",
            "http://[::1]/",
            "http://10.0.0.5/",
            "http://192.168.1.1/",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "ftp://example.com/",
            "/relative",
            "http://user:pass@example.com/",
        ] {
            assert!(check(url, strict).is_err(), "{url} was accepted");
        }
        assert!(check("https://example.com/hooks?token=x", strict).is_ok());
        assert!(check("http://8.8.8.8/", strict).is_ok());
    }

    #[test]
    fn the_policy_opens_loopback_and_private_but_never_link_local() {
        let open = Policy { allow_loopback: true, allow_private: true };
        for url in ["http://127.0.0.1:8080/hook", "http://localhost/", "http://10.0.0.5/", "http://[fd00::1]/"] {
            assert!(check(url, open).is_ok(), "{url} was refused");
        }
        assert!(check("http://169.254.169.254/", open).is_err());
        assert!(check("http://[fe80::1]/", open).is_err());
    }

    #[tokio::test]
    async fn a_name_that_resolves_only_to_refused_addresses_fails_at_send_time() {
        use super::GuardedResolver;
        use reqwest::dns::Resolve;
        let strict = GuardedResolver { policy: Policy::default() };
        let err = strict.resolve("localhost".parse().expect("name")).await.err().expect("refused");
        assert!(err.to_string().contains("refused addresses"), "{err}");
        let open = GuardedResolver { policy: Policy { allow_loopback: true, allow_private: false } };
        let addrs: Vec<_> = open.resolve("localhost".parse().expect("name")).await.expect("resolved").collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()) && !addrs.is_empty(), "{addrs:?}");
    }
}
