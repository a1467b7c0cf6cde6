//! ICE servers for the viewer's peer connection (protocol.md §2.4): the regional STUN server,
//! which the service never returns, plus the TURN servers of `GetIceServerConfig`, validated
//! against the limits the official C SDK's parser enforces and refreshed before they expire.
//!
//! What we keep of a `GetIceServerConfig` answer:
//! * at most [`MAX_TURN_SERVERS`] servers: extra ones are dropped (first ones kept, as the C SDK
//!   does) — the service sends two;
//! * every server must carry 1..=[`MAX_URIS_PER_SERVER`] URIs: a fifth URI is refused, not cut,
//!   because a partial server could silently lose its only reachable transport;
//! * URIs, `Username` and `Password` are 1..=256 printable ASCII characters; URIs use the
//!   `turn:`/`turns:`/`stun:`/`stuns:` schemes;
//! * `Ttl` must be above the 30 s refresh grace and at most 86400 s (the service model's bound).
//!
//! Anything else is a `Protocol` error naming the member, never a crash. Passwords and user
//! names are never put into an error message or a `Debug` output.

use std::time::{Duration, Instant};

use serde_json::Value;
use zeroize::Zeroizing;

use crate::error::{Error, ErrorKind, Result};

/// TURN servers kept from one answer; later ones are dropped.
pub const MAX_TURN_SERVERS: usize = 5;
/// URIs one server may have; a server with more is refused.
pub const MAX_URIS_PER_SERVER: usize = 4;
/// Longest URI, user name and password.
pub const MAX_ICE_STRING_LEN: usize = 256;
/// Servers are fetched again when they are this close to their TTL.
pub const REFRESH_GRACE: Duration = Duration::from_secs(30);
/// Longest TTL the service model allows; more is absurd and refused.
pub const MAX_TTL_S: u64 = 86_400;
/// When the service returns no TURN server, ask again after this long.
const EMPTY_LIST_RETRY: Duration = Duration::from_secs(300);

/// One ICE server: URIs, credentials and the lifetime of those credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct IceServer {
    /// `stun:`, `turn:` or `turns:` URIs, as the service gave them.
    pub uris: Vec<String>,
    /// Empty for the STUN server.
    pub username: String,
    password: Zeroizing<String>,
    /// Lifetime of the credentials as the service gave it, in seconds; 0 = does not expire
    /// (the STUN server).
    pub ttl_s: u32,
}

impl IceServer {
    /// Empty for the STUN server. Wiped from memory on drop; never printed by `Debug`.
    pub fn password(&self) -> &str {
        &self.password
    }
}

impl std::fmt::Debug for IceServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceServer")
            .field("uris", &self.uris)
            .field("username", &"<redacted>")
            .field("password", &"<redacted>")
            .field("ttl_s", &self.ttl_s)
            .finish()
    }
}

/// DNS suffix of the region's partition (`.amazonaws.com.cn` for the China regions).
pub(crate) fn dns_suffix(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    }
}

/// The regional STUN server every client adds itself (the C SDK's `KINESIS_VIDEO_STUN_URL`).
pub fn stun_server(region: &str) -> IceServer {
    IceServer {
        uris: vec![format!(
            "stun:stun.kinesisvideo.{region}.{}:443",
            dns_suffix(region)
        )],
        username: String::new(),
        password: Zeroizing::new(String::new()),
        ttl_s: 0,
    }
}

fn bad(what: String) -> Error {
    Error::new(
        ErrorKind::Protocol,
        format!("the service's ICE server list is unusable: {what}"),
    )
}

/// A string member: present, 1..=256 printable ASCII. `echo` = may appear in the error.
fn ice_string(v: Option<&Value>, member: &str, echo: bool) -> Result<String> {
    let s = match v {
        Some(Value::String(s)) => s,
        Some(_) => return Err(bad(format!("{member} is not a string"))),
        None => return Err(bad(format!("{member} is missing"))),
    };
    if s.is_empty() {
        return Err(bad(format!("{member} is empty")));
    }
    if s.len() > MAX_ICE_STRING_LEN {
        return Err(bad(format!(
            "{member} has {} characters, at most {MAX_ICE_STRING_LEN} supported",
            s.len()
        )));
    }
    if !s.bytes().all(|b| b.is_ascii_graphic()) {
        let shown = if echo {
            format!(" ({s:?})")
        } else {
            String::new()
        };
        return Err(bad(format!(
            "{member} is not printable ASCII without spaces{shown}"
        )));
    }
    Ok(s.clone())
}

/// Parses and checks a `GetIceServerConfig` answer; see the module documentation for what is
/// kept. Returns the TURN servers (the STUN server is added by [`IceCache::servers`]) and how
/// many servers were dropped over the limit.
pub fn parse_ice_server_config(body: &[u8]) -> Result<(Vec<IceServer>, usize)> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| bad(format!("the answer is not JSON ({e})")))?;
    let list = match v.get("IceServerList") {
        None | Some(Value::Null) => return Ok((Vec::new(), 0)),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(bad("IceServerList is not a list".into())),
    };
    let dropped = list.len().saturating_sub(MAX_TURN_SERVERS);
    let mut servers = Vec::with_capacity(list.len().min(MAX_TURN_SERVERS));
    for (i, entry) in list.iter().take(MAX_TURN_SERVERS).enumerate() {
        let at = |m: &str| format!("IceServerList[{i}].{m}");
        let Value::Object(obj) = entry else {
            return Err(bad(format!("IceServerList[{i}] is not an object")));
        };
        let uris = match obj.get("Uris") {
            Some(Value::Array(u)) => u,
            Some(_) => return Err(bad(format!("{} is not a list", at("Uris")))),
            None => return Err(bad(format!("{} is missing", at("Uris")))),
        };
        if uris.is_empty() {
            return Err(bad(format!("{} is empty", at("Uris"))));
        }
        if uris.len() > MAX_URIS_PER_SERVER {
            return Err(bad(format!(
                "{} has {} URIs, at most {MAX_URIS_PER_SERVER} per server supported",
                at("Uris"),
                uris.len()
            )));
        }
        let uris = uris
            .iter()
            .enumerate()
            .map(|(j, u)| {
                let member = format!("{}[{j}]", at("Uris"));
                let u = ice_string(Some(u), &member, true)?;
                if !["turn:", "turns:", "stun:", "stuns:"]
                    .iter()
                    .any(|p| u.starts_with(p))
                {
                    return Err(bad(format!(
                        "{member} ({u:?}) is not a turn:, turns:, stun: or stuns: URI"
                    )));
                }
                Ok(u)
            })
            .collect::<Result<Vec<_>>>()?;
        let username = ice_string(obj.get("Username"), &at("Username"), false)?;
        let password = Zeroizing::new(ice_string(obj.get("Password"), &at("Password"), false)?);
        let ttl = match obj.get("Ttl") {
            Some(Value::Number(n)) => n.as_u64().ok_or_else(|| {
                bad(format!(
                    "{} ({n}) is not a whole number of seconds",
                    at("Ttl")
                ))
            })?,
            Some(_) => return Err(bad(format!("{} is not a number", at("Ttl")))),
            None => return Err(bad(format!("{} is missing", at("Ttl")))),
        };
        let grace = REFRESH_GRACE.as_secs();
        if ttl <= grace {
            return Err(bad(format!(
                "{} is {ttl} s, not above the {grace} s refresh grace (the credentials would \
                 expire before they could be used)",
                at("Ttl")
            )));
        }
        if ttl > MAX_TTL_S {
            return Err(bad(format!(
                "{} is {ttl} s, more than the {MAX_TTL_S} s the service allows",
                at("Ttl")
            )));
        }
        servers.push(IceServer {
            uris,
            username,
            password,
            ttl_s: ttl as u32,
        });
    }
    Ok((servers, dropped))
}

/// The ICE servers of one fetch, all at once: STUN first, then the TURN servers.
#[derive(Debug, Clone)]
pub struct IceSnapshot {
    /// Which fetch the list came from: 1 for the first, one more for every refresh (by
    /// `refresh_ice_servers`, `RECONNECT_ICE_SERVER` or the TTL). A new number means new TURN
    /// credentials.
    pub generation: u64,
    /// The servers, STUN first.
    pub servers: Vec<IceServer>,
}

/// The TURN servers of the last fetch and when to fetch again.
#[derive(Debug, Clone)]
pub(crate) struct IceCache {
    turn: Vec<IceServer>,
    /// 1 for the first fetch, one more for each after it.
    generation: u64,
    /// `fetched_at + min(Ttl) − 30 s`.
    refresh_at: Instant,
    /// Servers over [`MAX_TURN_SERVERS`] dropped from the last answer.
    pub(crate) dropped: usize,
}

impl IceCache {
    pub(crate) fn new(
        turn: Vec<IceServer>,
        dropped: usize,
        fetched_at: Instant,
        generation: u64,
    ) -> IceCache {
        let lifetime = turn
            .iter()
            .map(|s| Duration::from_secs(s.ttl_s.into()))
            .min()
            .unwrap_or(EMPTY_LIST_RETRY);
        IceCache {
            turn,
            generation,
            refresh_at: fetched_at + lifetime.saturating_sub(REFRESH_GRACE),
            dropped,
        }
    }

    /// False once the servers are within the refresh grace of their TTL.
    pub(crate) fn is_fresh(&self, now: Instant) -> bool {
        now < self.refresh_at
    }

    /// STUN first, then the TURN servers in the service's order.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    pub(crate) fn snapshot(&self, region: &str) -> IceSnapshot {
        let mut servers = Vec::with_capacity(self.turn.len() + 1);
        servers.push(stun_server(region));
        servers.extend(self.turn.iter().cloned());
        IceSnapshot {
            generation: self.generation,
            servers,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn server(uris: usize, ttl: Value) -> Value {
        json!({
            "Password": "cGFzc3dvcmQtc2VjcmV0",
            "Ttl": ttl,
            "Uris": (0..uris).map(|i| format!("turns:1-2-3-4.t-1234abcd.kinesisvideo.us-west-2.amazonaws.com:443?transport=tcp&n={i}")).collect::<Vec<_>>(),
            "Username": "1700000300:djE6YXJu",
        })
    }

    fn parse(list: Vec<Value>) -> Result<(Vec<IceServer>, usize)> {
        parse_ice_server_config(json!({ "IceServerList": list }).to_string().as_bytes())
    }

    fn refused(r: Result<(Vec<IceServer>, usize)>, needle: &str) -> Error {
        let e = r.expect_err("must be refused");
        assert_eq!(e.kind, ErrorKind::Protocol);
        assert!(
            e.message.contains(needle),
            "{:?} lacks {needle:?}",
            e.message
        );
        assert!(
            !e.message.contains("cGFzc3dvcmQtc2VjcmV0"),
            "password leaked"
        );
        assert!(!e.message.contains("djE6YXJu"), "username leaked");
        e
    }

    #[test]
    fn a_typical_answer() {
        let (servers, dropped) = parse(vec![server(3, json!(300)), server(3, json!(300))]).unwrap();
        assert_eq!((servers.len(), dropped), (2, 0));
        assert_eq!(servers[0].uris.len(), 3);
        assert_eq!(servers[0].ttl_s, 300);
        assert_eq!(servers[0].password(), "cGFzc3dvcmQtc2VjcmV0");
        let dbg = format!("{:?}", servers[0]);
        assert!(!dbg.contains("cGFzc3dvcmQtc2VjcmV0") && !dbg.contains("djE6YXJu"));
    }

    #[test]
    fn limits() {
        let (servers, dropped) = parse((0..6).map(|_| server(1, json!(300))).collect()).unwrap();
        assert_eq!((servers.len(), dropped), (MAX_TURN_SERVERS, 1));
        parse(vec![server(4, json!(300))]).unwrap();
        refused(
            parse(vec![server(5, json!(300))]),
            "IceServerList[0].Uris has 5 URIs",
        );
        refused(parse(vec![server(0, json!(300))]), "Uris is empty");
        parse(vec![server(1, json!(31))]).unwrap();
        refused(parse(vec![server(1, json!(30))]), "Ttl is 30 s");
        refused(parse(vec![server(1, json!(10))]), "refresh grace");
        refused(parse(vec![server(1, json!(86_401))]), "86400");
        refused(parse(vec![server(1, json!(-5))]), "whole number");
        refused(parse(vec![server(1, json!(300.5))]), "whole number");
        refused(parse(vec![server(1, json!("300"))]), "Ttl is not a number");
        refused(
            parse(vec![server(1, json!(300)), server(1, json!(5))]),
            "IceServerList[1].Ttl",
        );
    }

    #[test]
    fn oversized_and_malformed_members() {
        let mut s = server(1, json!(300));
        s["Password"] = json!("p".repeat(257));
        refused(parse(vec![s]), "Password has 257 characters");
        let mut s = server(1, json!(300));
        s["Username"] = json!("u".repeat(300));
        refused(parse(vec![s]), "Username has 300");
        let mut s = server(1, json!(300));
        s["Uris"] = json!([format!("turn:{}", "h".repeat(252))]);
        refused(parse(vec![s]), "Uris[0] has 257");
        let mut s = server(1, json!(300));
        s["Uris"] = json!(["http://example"]);
        refused(parse(vec![s]), "not a turn:");
        let mut s = server(1, json!(300));
        s.as_object_mut().unwrap().remove("Password");
        refused(parse(vec![s]), "Password is missing");
        let mut s = server(1, json!(300));
        s["Password"] = json!("pass word");
        let e = refused(parse(vec![s]), "Password is not printable");
        assert!(!e.message.contains("pass word"));
        refused(parse(vec![json!(7)]), "IceServerList[0] is not an object");
        refused(parse_ice_server_config(b"<html>"), "not JSON");
        refused(
            parse_ice_server_config(br#"{"IceServerList":{}}"#),
            "not a list",
        );
    }

    #[test]
    fn unknown_members_are_ignored_and_empty_is_fine() {
        let mut s = server(2, json!(300));
        s["Extra"] = json!({"x": 1});
        parse(vec![s]).unwrap();
        assert_eq!(parse_ice_server_config(b"{}").unwrap().0.len(), 0);
    }

    #[test]
    fn stun_first_and_per_partition() {
        assert_eq!(
            stun_server("us-west-2").uris,
            ["stun:stun.kinesisvideo.us-west-2.amazonaws.com:443"]
        );
        assert_eq!(
            stun_server("cn-north-1").uris,
            ["stun:stun.kinesisvideo.cn-north-1.amazonaws.com.cn:443"]
        );
        let (turn, _) = parse(vec![server(3, json!(300))]).unwrap();
        let cache = IceCache::new(turn, 0, Instant::now(), 1);
        let all = cache.snapshot("us-west-2").servers;
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].ttl_s, 0);
        assert!(all[0].uris[0].starts_with("stun:"));
        assert!(all[1].uris[0].starts_with("turns:"));
    }

    #[test]
    fn refresh_within_the_grace_of_the_smallest_ttl() {
        let (turn, _) = parse(vec![server(1, json!(300)), server(1, json!(100))]).unwrap();
        let t0 = Instant::now();
        let cache = IceCache::new(turn, 0, t0, 1);
        assert!(cache.is_fresh(t0));
        assert!(cache.is_fresh(t0 + Duration::from_secs(69)));
        assert!(!cache.is_fresh(t0 + Duration::from_secs(70)));
        let empty = IceCache::new(Vec::new(), 0, t0, 1);
        assert!(empty.is_fresh(t0 + Duration::from_secs(269)));
        assert!(!empty.is_fresh(t0 + Duration::from_secs(270)));
    }
}
