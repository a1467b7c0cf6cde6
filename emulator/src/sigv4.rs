//! Server-side AWS Signature Version 4 verification.
//!
//! Written independently of the client library on purpose: the emulator is the independent check of
//! what clients sign. Two forms are verified:
//!
//! * the `Authorization` header (control plane and GetIceServerConfig POSTs), using the client's own
//!   `SignedHeaders` list (the C SDK signs `host;user-agent;x-amz-date`, botocore
//!   `content-type;host;x-amz-date;x-amz-security-token`);
//! * the presigned query (the WSS URL): every query value is percent-decoded, re-encoded RFC 3986
//!   strict and sorted, `X-Amz-Security-Token` included, `X-Amz-Signature` excluded.
//!
//! The `Host` header is taken exactly as received (with its port).

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::macros::format_description;

use crate::config::Credential;

/// The only algorithm the service accepts.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// Signing name of both the control plane and the signaling service.
pub const SERVICE: &str = "kinesisvideo";
/// Hex SHA-256 of the empty string (payload hash of the presigned GET).
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// Largest `X-Amz-Expires` accepted (7 days), as for every SigV4 presigned URL.
pub const MAX_EXPIRES: i64 = 604_800;

type HmacSha256 = Hmac<Sha256>;

/// HMAC-SHA256 of `data` under `key`.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// `AWS4` key derivation: secret → date → region → service → `aws4_request`.
pub fn signing_key(secret: &str, date8: &str, region: &str, service: &str) -> Vec<u8> {
    let k_date = hmac_sha256(format!("AWS4{secret}").as_bytes(), date8.as_bytes());
    let k_region = hmac_sha256(&k_date, region.as_bytes());
    let k_service = hmac_sha256(&k_region, service.as_bytes());
    hmac_sha256(&k_service, b"aws4_request")
}

/// RFC 3986 strict encoding: only `A-Z a-z 0-9 - _ . ~` stay as they are, hex is upper case.
pub fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-decodes one query component. `+` is kept literally (SigV4 clients encode spaces as `%20`).
pub fn percent_decode(s: &str) -> Option<String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

/// Splits a raw query string into decoded `(name, value)` pairs, in the order received.
pub fn parse_query(raw: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    for part in raw.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        out.push((percent_decode(k)?, percent_decode(v)?));
    }
    Some(out)
}

/// Canonical query string: names and values re-encoded, sorted by encoded name then value.
pub fn canonical_query(pairs: &[(String, String)], skip_signature: bool) -> String {
    let mut enc: Vec<(String, String)> = pairs
        .iter()
        .filter(|(k, _)| !(skip_signature && k == "X-Amz-Signature"))
        .map(|(k, v)| (uri_encode(k, false), uri_encode(v, false)))
        .collect();
    enc.sort();
    enc.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Canonical URI of a raw request path (already percent-encoded on the wire): decoded once and
/// re-encoded, `/` kept; an empty path is `/`.
pub fn canonical_uri(raw_path: &str) -> String {
    if raw_path.is_empty() {
        return "/".to_string();
    }
    let decoded = percent_decode(raw_path).unwrap_or_else(|| raw_path.to_string());
    uri_encode(&decoded, true)
}

/// Trims a header value and collapses inner runs of spaces, as SigV4 prescribes.
fn canonical_header_value(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Builds the canonical headers block for `signed` (lower-case names) from the received headers.
/// Several headers with one name are joined with `,`. `None` when a signed header is missing.
pub fn canonical_headers(headers: &[(String, String)], signed: &[String]) -> Option<String> {
    let mut out = String::new();
    for name in signed {
        let values: Vec<String> = headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| canonical_header_value(v))
            .collect();
        if values.is_empty() {
            return None;
        }
        out.push_str(name);
        out.push(':');
        out.push_str(&values.join(","));
        out.push('\n');
    }
    Some(out)
}

/// The canonical request text.
pub fn canonical_request(
    method: &str,
    canonical_uri: &str,
    canonical_query: &str,
    canonical_headers: &str,
    signed_headers: &str,
    payload_hash: &str,
) -> String {
    format!(
        "{method}\n{canonical_uri}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\n{payload_hash}"
    )
}

/// The string to sign.
pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

/// Parses `yyyymmddTHHMMSSZ` into Unix seconds.
pub fn parse_amz_date(s: &str) -> Option<i64> {
    let fmt = format_description!("[year][month][day]T[hour][minute][second]Z");
    time::PrimitiveDateTime::parse(s, &fmt)
        .ok()
        .map(|dt| dt.assume_utc().unix_timestamp())
}

/// Formats Unix seconds as `yyyymmddTHHMMSSZ`.
pub fn format_amz_date(secs: i64) -> String {
    let fmt = format_description!("[year][month][day]T[hour][minute][second]Z");
    OffsetDateTime::from_unix_timestamp(secs)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .format(&fmt)
        .unwrap_or_default()
}

/// Constant-time comparison of two hex signatures.
fn sig_eq(a: &str, b: &str) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.bytes()
        .zip(b.bytes())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// Why a request was refused. Every variant is a 403 on the wire: on the control plane with the
/// error type of [`AuthError::control_plane_error_type`], on the WebSocket upgrade as
/// `AccessDeniedException`; the message mimics the service's wording where it is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// No Authorization header / no presigned parameters at all.
    Missing,
    /// Present but unparsable or incomplete.
    Malformed(String),
    /// Access key id not configured.
    UnknownAccessKey,
    /// Session token missing, or not the configured one.
    InvalidToken,
    /// Configured credential is past its expiry.
    ExpiredToken,
    /// Region / service / date in the credential scope is wrong.
    BadScope(String),
    /// Request date too old (header) or URL past its `X-Amz-Expires` (presigned).
    Expired(String),
    /// Request date more than the skew window in the future.
    NotYetCurrent(String),
    /// `X-Amz-Expires` outside 1..604800.
    BadExpires(String),
    /// The signature does not match.
    SignatureMismatch,
}

impl AuthError {
    /// The message put in the JSON body (no secrets).
    pub fn message(&self) -> String {
        match self {
            AuthError::Missing => "Missing Authentication Token".into(),
            AuthError::Malformed(m) | AuthError::BadScope(m) | AuthError::BadExpires(m) => m.clone(),
            AuthError::UnknownAccessKey | AuthError::InvalidToken => {
                "The security token included in the request is invalid.".into()
            }
            AuthError::ExpiredToken => "The security token included in the request is expired".into(),
            AuthError::Expired(m) | AuthError::NotYetCurrent(m) => m.clone(),
            AuthError::SignatureMismatch => "The request signature we calculated does not match the signature you provided. \
                 Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
                .into(),
        }
    }

    /// The error type the control plane (an AWS JSON service, whose common auth layer answers
    /// before the service does) sends for this failure, all with 403 (protocol.md §11.1). The
    /// WebSocket upgrade answers `AccessDeniedException` for all of them instead.
    pub fn control_plane_error_type(&self) -> &'static str {
        match self {
            AuthError::Missing => "MissingAuthenticationTokenException",
            // Not in the notes; the common auth layer's name for a partial Authorization header.
            AuthError::Malformed(_) => "IncompleteSignatureException",
            AuthError::UnknownAccessKey | AuthError::InvalidToken => "UnrecognizedClientException",
            AuthError::ExpiredToken => "ExpiredTokenException",
            AuthError::BadScope(_)
            | AuthError::Expired(_)
            | AuthError::NotYetCurrent(_)
            | AuthError::BadExpires(_)
            | AuthError::SignatureMismatch => "InvalidSignatureException",
        }
    }

    /// A short machine-readable reason for the event log.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing_auth",
            AuthError::Malformed(_) => "malformed_auth",
            AuthError::UnknownAccessKey => "unknown_access_key",
            AuthError::InvalidToken => "invalid_session_token",
            AuthError::ExpiredToken => "expired_credentials",
            AuthError::BadScope(_) => "bad_scope",
            AuthError::Expired(_) => "signature_expired",
            AuthError::NotYetCurrent(_) => "signature_not_yet_current",
            AuthError::BadExpires(_) => "bad_expires",
            AuthError::SignatureMismatch => "signature_mismatch",
        }
    }
}

/// A request as received, for verification.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// Raw path as on the request line (without the query).
    pub path: &'a str,
    /// Raw query (without `?`), possibly empty.
    pub query: &'a str,
    /// Headers as received (names in any case).
    pub headers: &'a [(String, String)],
    /// Request body.
    pub body: &'a [u8],
}

/// Successful verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The access key id that signed.
    pub access_key_id: String,
    /// Request date (Unix seconds).
    pub date: i64,
    /// Presigned URLs: Unix seconds at which the URL expires (`X-Amz-Date + X-Amz-Expires`).
    pub expires_at: Option<i64>,
}

/// Verifies signatures against a set of configured credentials.
#[derive(Debug, Clone)]
pub struct Verifier<'a> {
    /// Known credentials.
    pub credentials: &'a [Credential],
    /// Region the scope must name.
    pub region: &'a str,
    /// Service the scope must name (`kinesisvideo`).
    pub service: &'a str,
    /// The emulator's "now" (Unix seconds, clock offset applied).
    pub now: i64,
    /// Allowed clock skew (300 s on the service).
    pub max_skew_secs: i64,
    /// Also accept a signature over the `Host` value without its `:port` (the C SDK signs the
    /// port-less host). Off by default: a client must sign the host it sends.
    pub accept_host_without_port: bool,
}

struct Scope {
    akid: String,
    date8: String,
    region: String,
    service: String,
}

fn parse_credential(cred: &str) -> Result<Scope, AuthError> {
    let parts: Vec<&str> = cred.split('/').collect();
    if parts.len() != 5 || parts[0].is_empty() {
        return Err(AuthError::Malformed(format!(
            "Credential should be scoped to a valid region. Malformed credential scope with {} parts.",
            parts.len()
        )));
    }
    if parts[4] != "aws4_request" {
        return Err(AuthError::BadScope(format!(
            "Credential should be scoped with a valid terminator: 'aws4_request', not '{}'.",
            parts[4]
        )));
    }
    Ok(Scope {
        akid: parts[0].to_string(),
        date8: parts[1].to_string(),
        region: parts[2].to_string(),
        service: parts[3].to_string(),
    })
}

impl<'a> Verifier<'a> {
    fn fmt_now(&self, secs: i64) -> String {
        format_amz_date(secs)
    }

    fn check_scope(&self, scope: &Scope, amz_date: &str) -> Result<&'a Credential, AuthError> {
        let cred = self
            .credentials
            .iter()
            .find(|c| c.access_key_id == scope.akid)
            .ok_or(AuthError::UnknownAccessKey)?;
        if scope.region != self.region {
            return Err(AuthError::BadScope(format!(
                "Credential should be scoped to a valid region, not '{}'.",
                scope.region
            )));
        }
        if scope.service != self.service {
            return Err(AuthError::BadScope(format!(
                "Credential should be scoped to correct service: '{}'.",
                self.service
            )));
        }
        if !amz_date.starts_with(&scope.date8) || scope.date8.len() != 8 {
            return Err(AuthError::BadScope(format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from '{}'.",
                scope.date8,
                amz_date.get(..8).unwrap_or(amz_date),
                amz_date
            )));
        }
        if let Some(exp) = cred.expires_at
            && self.now >= exp
        {
            return Err(AuthError::ExpiredToken);
        }
        Ok(cred)
    }

    fn check_token(cred: &Credential, received: Option<&str>) -> Result<(), AuthError> {
        match (&cred.session_token, received) {
            (None, None) => Ok(()),
            (Some(want), Some(got)) if want == got => Ok(()),
            _ => Err(AuthError::InvalidToken),
        }
    }

    /// Hosts whose signature is accepted for this request.
    fn host_variants(&self, headers: &[(String, String)]) -> Vec<Vec<(String, String)>> {
        let mut out = vec![headers.to_vec()];
        if self.accept_host_without_port
            && let Some((_, host)) = headers.iter().find(|(n, _)| n.eq_ignore_ascii_case("host"))
            && let Some((bare, port)) = host.rsplit_once(':')
            && port.bytes().all(|b| b.is_ascii_digit())
            && !bare.ends_with(']')
        {
            let mut alt: Vec<(String, String)> = headers
                .iter()
                .filter(|(n, _)| !n.eq_ignore_ascii_case("host"))
                .cloned()
                .collect();
            alt.push(("host".into(), bare.to_string()));
            out.push(alt);
        }
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn check_signature(
        &self,
        req: &SignedRequest<'_>,
        cred: &Credential,
        scope: &Scope,
        amz_date: &str,
        canonical_query: &str,
        signed_headers: &[String],
        payload_hash: &str,
        given: &str,
    ) -> Result<(), AuthError> {
        if !signed_headers.iter().any(|h| h == "host") {
            return Err(AuthError::Malformed(
                "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.".into(),
            ));
        }
        let scope_str = format!(
            "{}/{}/{}/aws4_request",
            scope.date8, scope.region, scope.service
        );
        let key = signing_key(
            &cred.secret_access_key,
            &scope.date8,
            &scope.region,
            &scope.service,
        );
        for headers in self.host_variants(req.headers) {
            let Some(ch) = canonical_headers(&headers, signed_headers) else {
                return Err(AuthError::SignatureMismatch);
            };
            let creq = canonical_request(
                req.method,
                &canonical_uri(req.path),
                canonical_query,
                &ch,
                &signed_headers.join(";"),
                payload_hash,
            );
            let sts = string_to_sign(amz_date, &scope_str, &creq);
            let expected = hex::encode(hmac_sha256(&key, sts.as_bytes()));
            if sig_eq(&expected, &given.to_ascii_lowercase()) {
                return Ok(());
            }
        }
        Err(AuthError::SignatureMismatch)
    }

    /// Verifies an `Authorization: AWS4-HMAC-SHA256 …` header request.
    pub fn verify_header(&self, req: &SignedRequest<'_>) -> Result<Verified, AuthError> {
        let header = |name: &str| {
            req.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        let auth = header("authorization").ok_or(AuthError::Missing)?;
        let rest = auth.trim().strip_prefix(ALGORITHM).ok_or_else(|| {
            AuthError::Malformed(format!(
                "Unsupported authorization type; expected {ALGORITHM}."
            ))
        })?;
        let (mut credential, mut signed, mut signature) = (None, None, None);
        for part in rest.split(',') {
            let part = part.trim();
            if let Some(v) = part.strip_prefix("Credential=") {
                credential = Some(v);
            } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
                signed = Some(v);
            } else if let Some(v) = part.strip_prefix("Signature=") {
                signature = Some(v);
            }
        }
        let missing: Vec<&str> = [
            ("Credential", credential.is_none()),
            ("SignedHeaders", signed.is_none()),
            ("Signature", signature.is_none()),
        ]
        .iter()
        .filter(|(_, m)| *m)
        .map(|(n, _)| *n)
        .collect();
        if !missing.is_empty() {
            return Err(AuthError::Malformed(format!(
                "Authorization header requires {} parameter(s). Authorization={ALGORITHM} …",
                missing.join(", ")
            )));
        }
        let amz_date = header("x-amz-date").ok_or_else(|| {
            AuthError::Malformed("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.".into())
        })?;
        let date = parse_amz_date(amz_date)
            .ok_or_else(|| AuthError::Malformed(format!("Invalid X-Amz-Date '{amz_date}'.")))?;
        let scope = parse_credential(credential.unwrap_or_default())?;
        let cred = self.check_scope(&scope, amz_date)?;
        Self::check_token(cred, header("x-amz-security-token"))?;
        // The service's window: |now - date| <= 5 min.
        if date < self.now - self.max_skew_secs {
            return Err(AuthError::Expired(format!(
                "Signature expired: {} is now earlier than {} ({} - 5 min.)",
                amz_date,
                self.fmt_now(self.now - self.max_skew_secs),
                self.fmt_now(self.now)
            )));
        }
        if date > self.now + self.max_skew_secs {
            return Err(AuthError::NotYetCurrent(format!(
                "Signature not yet current: {} is still later than {} ({} + 5 min.)",
                amz_date,
                self.fmt_now(self.now + self.max_skew_secs),
                self.fmt_now(self.now)
            )));
        }
        let signed: Vec<String> = signed
            .unwrap_or_default()
            .split(';')
            .map(|s| s.trim().to_ascii_lowercase())
            .collect();
        let query = parse_query(req.query)
            .ok_or_else(|| AuthError::Malformed("Malformed query string.".into()))?;
        let payload_hash = sha256_hex(req.body);
        self.check_signature(
            req,
            cred,
            &scope,
            amz_date,
            &canonical_query(&query, false),
            &signed,
            &payload_hash,
            signature.unwrap_or_default(),
        )?;
        Ok(Verified {
            access_key_id: scope.akid,
            date,
            expires_at: None,
        })
    }

    /// Verifies a presigned-query request (the WSS URL).
    pub fn verify_presigned(&self, req: &SignedRequest<'_>) -> Result<Verified, AuthError> {
        let query = parse_query(req.query)
            .ok_or_else(|| AuthError::Malformed("Malformed query string.".into()))?;
        let get = |name: &str| {
            query
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let required = [
            "X-Amz-Algorithm",
            "X-Amz-Credential",
            "X-Amz-Date",
            "X-Amz-Expires",
            "X-Amz-SignedHeaders",
            "X-Amz-Signature",
        ];
        let missing: Vec<&str> = required
            .iter()
            .copied()
            .filter(|n| get(n).is_none())
            .collect();
        if missing.len() == required.len() {
            return Err(AuthError::Missing);
        }
        if !missing.is_empty() {
            return Err(AuthError::Malformed(format!(
                "AWS query-string parameters must include {}. Re-examine the query-string parameters.",
                missing.join(", ")
            )));
        }
        if get("X-Amz-Algorithm") != Some(ALGORITHM) {
            return Err(AuthError::Malformed(format!(
                "X-Amz-Algorithm only supports '{ALGORITHM}'."
            )));
        }
        let amz_date = get("X-Amz-Date").unwrap_or_default();
        let date = parse_amz_date(amz_date)
            .ok_or_else(|| AuthError::Malformed(format!("Invalid X-Amz-Date '{amz_date}'.")))?;
        let expires_raw = get("X-Amz-Expires").unwrap_or_default();
        let expires: i64 = match expires_raw.parse::<i64>() {
            Ok(e) if (1..=MAX_EXPIRES).contains(&e) => e,
            _ => {
                return Err(AuthError::BadExpires(format!(
                    "X-Amz-Expires must be an integer between 1 and {MAX_EXPIRES} seconds, not '{expires_raw}'."
                )));
            }
        };
        let scope = parse_credential(get("X-Amz-Credential").unwrap_or_default())?;
        let cred = self.check_scope(&scope, amz_date)?;
        Self::check_token(cred, get("X-Amz-Security-Token"))?;
        // Valid from X-Amz-Date (minus the 5-minute skew allowance for fast client clocks) until
        // X-Amz-Date + X-Amz-Expires. The end has no extra allowance (as S3 presigned URLs).
        if date > self.now + self.max_skew_secs {
            return Err(AuthError::NotYetCurrent(format!(
                "Signature not yet current: {} is still later than {} ({} + 5 min.)",
                amz_date,
                self.fmt_now(self.now + self.max_skew_secs),
                self.fmt_now(self.now)
            )));
        }
        if self.now > date + expires {
            return Err(AuthError::Expired(format!(
                "Signature expired: {} is now earlier than {} ({} + {} s.)",
                self.fmt_now(date + expires),
                self.fmt_now(self.now),
                amz_date,
                expires
            )));
        }
        let signed: Vec<String> = get("X-Amz-SignedHeaders")
            .unwrap_or_default()
            .split(';')
            .map(|s| s.trim().to_ascii_lowercase())
            .collect();
        self.check_signature(
            req,
            cred,
            &scope,
            amz_date,
            &canonical_query(&query, true),
            &signed,
            EMPTY_SHA256,
            get("X-Amz-Signature").unwrap_or_default(),
        )?;
        Ok(Verified {
            access_key_id: scope.akid,
            date,
            expires_at: Some(date + expires),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AKID: &str = "AKIAIOSFODNN7EXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const TOKEN: &str = "IQoJb3JpZ2luX2VjEXAMPLE+/=";
    const ARN: &str =
        "arn:aws:kinesisvideo:us-west-2:123456789012:channel/demo-channel/1234567890123";

    fn cred(akid: &str, secret: &str, token: Option<&str>) -> Credential {
        Credential {
            access_key_id: akid.into(),
            secret_access_key: secret.into(),
            session_token: token.map(Into::into),
            expires_at: None,
        }
    }

    /// Signature over a presigned GET computed with this module's canonicalisation.
    fn presign_sig(
        host: &str,
        path: &str,
        pairs: &[(&str, &str)],
        secret: &str,
        date: &str,
        region: &str,
        service: &str,
    ) -> (String, String) {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let headers = vec![("Host".to_string(), host.to_string())];
        let creq = canonical_request(
            "GET",
            &canonical_uri(path),
            &canonical_query(&pairs, true),
            &canonical_headers(&headers, &["host".into()]).unwrap(),
            "host",
            EMPTY_SHA256,
        );
        let scope = format!("{}/{region}/{service}/aws4_request", &date[..8]);
        let sts = string_to_sign(date, &scope, &creq);
        let key = signing_key(secret, &date[..8], region, service);
        (
            hex::encode(hmac_sha256(&key, sts.as_bytes())),
            sha256_hex(creq.as_bytes()),
        )
    }

    /// The JS SDK spec's presign (SigV4RequestSigner.spec.ts inputs) with the given token,
    /// service and endpoint path: (signature, canonical-request hash).
    fn js_vector(token: Option<&str>, service: &str, path: &str) -> (String, String) {
        let c = format!("AKIA4F7WJQR7FMMWMNXI/20191201/us-west-2/{service}/aws4_request");
        presign_sig(
            "kvs.awsamazon.com",
            path,
            &js_pairs(token, &c),
            "FakeSecretKey",
            "20191201T000000Z",
            "us-west-2",
            service,
        )
    }

    fn js_pairs<'a>(token: Option<&'a str>, cred: &'a str) -> Vec<(&'a str, &'a str)> {
        let mut v = vec![
            ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
            ("X-Amz-Credential", cred),
            ("X-Amz-Date", "20191201T000000Z"),
            ("X-Amz-Expires", "299"),
            ("X-Amz-SignedHeaders", "host"),
            ("X-Amz-TestParam", "test-param-value"),
        ];
        if let Some(t) = token {
            v.push(("X-Amz-Security-Token", t));
        }
        v
    }

    #[test]
    fn js_sdk_vector_with_token() {
        let (sig, creq_hash) = js_vector(Some("FakeSessionToken"), "kinesisvideo", "/");
        assert_eq!(
            sig,
            "fc268038be276315822b4f73eafd28ee3a5632a2a35fdb0a88db9a42b13d6c92"
        );
        assert_eq!(
            creq_hash,
            "15dd016816b0ab9d86e9a923d4adaaeaeeb4c7e961eb8c334bd8df0cc034bda8"
        );
        assert_eq!(
            hex::encode(signing_key(
                "FakeSecretKey",
                "20191201",
                "us-west-2",
                "kinesisvideo"
            )),
            "82745f87b76475ec52b3ab4a6feb98a835982783a603d24def7f2fb6747ddc89"
        );
        // And the full URL from the spec is accepted by the verifier at that instant.
        let query = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA4F7WJQR7FMMWMNXI%2F20191201%2Fus-west-2%2Fkinesisvideo%2Faws4_request&X-Amz-Date=20191201T000000Z&X-Amz-Expires=299&X-Amz-Security-Token=FakeSessionToken&X-Amz-Signature=fc268038be276315822b4f73eafd28ee3a5632a2a35fdb0a88db9a42b13d6c92&X-Amz-SignedHeaders=host&X-Amz-TestParam=test-param-value";
        let creds = [cred(
            "AKIA4F7WJQR7FMMWMNXI",
            "FakeSecretKey",
            Some("FakeSessionToken"),
        )];
        let v = Verifier {
            credentials: &creds,
            region: "us-west-2",
            service: "kinesisvideo",
            now: parse_amz_date("20191201T000000Z").unwrap(),
            max_skew_secs: 300,
            accept_host_without_port: false,
        };
        let headers = vec![("Host".to_string(), "kvs.awsamazon.com".to_string())];
        let req = SignedRequest {
            method: "GET",
            path: "/",
            query,
            headers: &headers,
            body: b"",
        };
        assert!(v.verify_presigned(&req).is_ok());
        let tampered = query.replace("fc2680", "fc2681");
        let req2 = SignedRequest {
            query: &tampered,
            ..req
        };
        assert_eq!(v.verify_presigned(&req2), Err(AuthError::SignatureMismatch));
    }

    #[test]
    fn js_sdk_vector_without_token() {
        let (sig, _) = js_vector(None, "kinesisvideo", "/");
        assert_eq!(
            sig,
            "be1e78950d956a8a9a1997417099ddbd7455619f3d08c4ad20e1e272179ca695"
        );
    }

    #[test]
    fn js_sdk_vector_service_override() {
        let (sig, _) = js_vector(Some("FakeSessionToken"), "firehose", "/");
        assert_eq!(
            sig,
            "f15308513d21a381d38b7607a0439f25fc2e6c9f5ff56a48c1664b486e6234d5"
        );
    }

    #[test]
    fn js_sdk_vector_endpoint_path() {
        let (sig, _) = js_vector(Some("FakeSessionToken"), "kinesisvideo", "/path/path/path");
        assert_eq!(
            sig,
            "0bf3df6ca23d8d82f688e8dbfb90d69e74843d40038541b1721c545eef7612a4"
        );
    }

    fn viewer_pairs<'a>(token: Option<&'a str>, expires: &'a str) -> Vec<(&'a str, &'a str)> {
        let mut v = vec![
            ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
            ("X-Amz-ChannelARN", ARN),
            ("X-Amz-ClientId", "viewer-1"),
            (
                "X-Amz-Credential",
                "AKIAIOSFODNN7EXAMPLE/20240101/us-west-2/kinesisvideo/aws4_request",
            ),
            ("X-Amz-Date", "20240101T120000Z"),
            ("X-Amz-Expires", expires),
            ("X-Amz-SignedHeaders", "host"),
        ];
        if let Some(t) = token {
            v.push(("X-Amz-Security-Token", t));
        }
        v
    }

    const VIEWER_HOST: &str = "v-1234abcd.kinesisvideo.us-west-2.amazonaws.com";

    #[test]
    fn realistic_viewer_vector_token_299() {
        let pairs = viewer_pairs(Some(TOKEN), "299");
        let owned: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(
            canonical_query(&owned, true),
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-ChannelARN=arn%3Aaws%3Akinesisvideo%3Aus-west-2%3A123456789012%3Achannel%2Fdemo-channel%2F1234567890123&X-Amz-ClientId=viewer-1&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20240101%2Fus-west-2%2Fkinesisvideo%2Faws4_request&X-Amz-Date=20240101T120000Z&X-Amz-Expires=299&X-Amz-Security-Token=IQoJb3JpZ2luX2VjEXAMPLE%2B%2F%3D&X-Amz-SignedHeaders=host"
        );
        let (sig, creq_hash) = presign_sig(
            VIEWER_HOST,
            "/",
            &pairs,
            SECRET,
            "20240101T120000Z",
            "us-west-2",
            "kinesisvideo",
        );
        assert_eq!(
            sig,
            "90ea17af54498e9ea1f9492a5dff39ed589f0e1c466f543aa0e0798d21f81f75"
        );
        assert_eq!(
            creq_hash,
            "c100a9486621cee205ea747afd072273da1a5202ffb21b76e4728f73d077c603"
        );
        // The verifier accepts the URL built from it, also with a different parameter order.
        let query = format!(
            "X-Amz-Signature={sig}&X-Amz-ChannelARN={}&X-Amz-ClientId=viewer-1&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20240101%2Fus-west-2%2Fkinesisvideo%2Faws4_request&X-Amz-Date=20240101T120000Z&X-Amz-Expires=299&X-Amz-Security-Token={}&X-Amz-SignedHeaders=host",
            uri_encode(ARN, false),
            uri_encode(TOKEN, false)
        );
        let creds = [cred(AKID, SECRET, Some(TOKEN))];
        let v = Verifier {
            credentials: &creds,
            region: "us-west-2",
            service: SERVICE,
            now: parse_amz_date("20240101T120100Z").unwrap(),
            max_skew_secs: 300,
            accept_host_without_port: false,
        };
        let headers = vec![("host".to_string(), VIEWER_HOST.to_string())];
        let req = SignedRequest {
            method: "GET",
            path: "/",
            query: &query,
            headers: &headers,
            body: b"",
        };
        assert_eq!(v.verify_presigned(&req).unwrap().access_key_id, AKID);
        // Expired after 299 s.
        let late = Verifier {
            now: parse_amz_date("20240101T120500Z").unwrap(),
            ..v.clone()
        };
        assert!(
            matches!(late.verify_presigned(&req), Err(AuthError::Expired(m)) if m.starts_with("Signature expired: "))
        );
        // Wrong host.
        let other = vec![("host".to_string(), "127.0.0.1:443".to_string())];
        let req_host = SignedRequest {
            headers: &other,
            ..req
        };
        assert_eq!(
            v.verify_presigned(&req_host),
            Err(AuthError::SignatureMismatch)
        );
        // Missing token.
        let no_token = [cred(AKID, SECRET, None)];
        let v2 = Verifier {
            credentials: &no_token,
            ..v.clone()
        };
        assert_eq!(v2.verify_presigned(&req), Err(AuthError::InvalidToken));
    }

    #[test]
    fn realistic_viewer_vector_c_style_expires() {
        let (sig, _) = presign_sig(
            VIEWER_HOST,
            "/",
            &viewer_pairs(Some(TOKEN), "604800"),
            SECRET,
            "20240101T120000Z",
            "us-west-2",
            "kinesisvideo",
        );
        assert_eq!(
            sig,
            "29bd0dccd59927a0b14168d43a1276c142f0e7dab0c87ce600625dbe88e16128"
        );
    }

    #[test]
    fn realistic_viewer_vector_no_token() {
        let (sig, _) = presign_sig(
            VIEWER_HOST,
            "/",
            &viewer_pairs(None, "299"),
            SECRET,
            "20240101T120000Z",
            "us-west-2",
            "kinesisvideo",
        );
        assert_eq!(
            sig,
            "6cd3728fb90cf88e0e691662e9f36ab2b451b023baba06ca7834470902b89138"
        );
    }

    const BODY: &str = r#"{"ChannelARN":"arn:aws:kinesisvideo:us-west-2:123456789012:channel/demo-channel/1234567890123","SingleMasterChannelEndpointConfiguration":{"Protocols":["WSS","HTTPS"],"Role":"VIEWER"}}"#;

    fn cp_verifier(creds: &[Credential]) -> Verifier<'_> {
        Verifier {
            credentials: creds,
            region: "us-west-2",
            service: SERVICE,
            now: parse_amz_date("20240101T120000Z").unwrap(),
            max_skew_secs: 300,
            accept_host_without_port: false,
        }
    }

    fn hdrs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn control_plane_vector_botocore_style() {
        assert_eq!(BODY.len(), 184);
        assert_eq!(
            sha256_hex(BODY.as_bytes()),
            "a4646c91a5642bf8d87b97553d7399e73d687a2ec9d01f803bec0bb31195b611"
        );
        assert_eq!(
            hex::encode(signing_key(SECRET, "20240101", "us-west-2", "kinesisvideo")),
            "ef61508d34973b22736ab8a3477f622423aabbc14d6744aff273a358084b9d2f"
        );
        let sig = "2173139cbdf969c8afa38948a11fa44c9cc355a9089dd77e3f5e9005b5d6e12d";
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential={AKID}/20240101/us-west-2/kinesisvideo/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature={sig}"
        );
        let headers = hdrs(&[
            ("Host", "kinesisvideo.us-west-2.amazonaws.com"),
            ("Content-Type", "application/json"),
            ("X-Amz-Date", "20240101T120000Z"),
            ("X-Amz-Security-Token", TOKEN),
            ("Authorization", &auth),
            ("Content-Length", "184"),
        ]);
        let creds = [cred(AKID, SECRET, Some(TOKEN))];
        let v = cp_verifier(&creds);
        let req = SignedRequest {
            method: "POST",
            path: "/getSignalingChannelEndpoint",
            query: "",
            headers: &headers,
            body: BODY.as_bytes(),
        };
        assert_eq!(v.verify_header(&req).unwrap().access_key_id, AKID);
        // Any change to the body breaks it.
        let other_body = BODY.replace("VIEWER", "MASTER");
        let req2 = SignedRequest {
            body: other_body.as_bytes(),
            ..req
        };
        assert_eq!(v.verify_header(&req2), Err(AuthError::SignatureMismatch));
        // Wrong secret.
        let wrong = [cred(AKID, "not-the-secret", Some(TOKEN))];
        assert_eq!(
            cp_verifier(&wrong).verify_header(&req),
            Err(AuthError::SignatureMismatch)
        );
        // Stale: 6 minutes later.
        let later = Verifier {
            now: parse_amz_date("20240101T120600Z").unwrap(),
            ..cp_verifier(&creds)
        };
        assert!(
            matches!(later.verify_header(&req), Err(AuthError::Expired(m))
            if m == "Signature expired: 20240101T120000Z is now earlier than 20240101T120100Z (20240101T120600Z - 5 min.)")
        );
        let earlier = Verifier {
            now: parse_amz_date("20240101T115400Z").unwrap(),
            ..cp_verifier(&creds)
        };
        assert!(
            matches!(earlier.verify_header(&req), Err(AuthError::NotYetCurrent(m)) if m.starts_with("Signature not yet current: "))
        );
    }

    #[test]
    fn control_plane_vector_c_style() {
        let sig = "b7d32d6e91e936cc8ee6c8146b8c1f7bc7ad7245b7d5007277761906afc91045";
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential={AKID}/20240101/us-west-2/kinesisvideo/aws4_request, SignedHeaders=host;user-agent;x-amz-date, Signature={sig}"
        );
        let headers = hdrs(&[
            ("host", "kinesisvideo.us-west-2.amazonaws.com"),
            ("user-agent", "AWS-SDK-KVS/1.0.0"),
            ("content-type", "application/json"),
            ("content-length", "184"),
            ("X-Amz-Date", "20240101T120000Z"),
            ("x-amz-security-token", TOKEN),
            ("Authorization", &auth),
        ]);
        let creds = [cred(AKID, SECRET, Some(TOKEN))];
        let req = SignedRequest {
            method: "POST",
            path: "/getSignalingChannelEndpoint",
            query: "",
            headers: &headers,
            body: BODY.as_bytes(),
        };
        assert!(cp_verifier(&creds).verify_header(&req).is_ok());
        let unknown = [cred("AKIAOTHER", SECRET, Some(TOKEN))];
        assert_eq!(
            cp_verifier(&unknown).verify_header(&req),
            Err(AuthError::UnknownAccessKey)
        );
    }

    #[test]
    fn host_without_port_is_optional() {
        let (sig, _) = presign_sig(
            "127.0.0.1",
            "/",
            &viewer_pairs(None, "299"),
            SECRET,
            "20240101T120000Z",
            "us-west-2",
            "kinesisvideo",
        );
        let mut pairs: Vec<(String, String)> = viewer_pairs(None, "299")
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        pairs.push(("X-Amz-Signature".into(), sig));
        let query = canonical_query(&pairs, false);
        let creds = [cred(AKID, SECRET, None)];
        let strict = Verifier {
            now: parse_amz_date("20240101T120000Z").unwrap(),
            ..cp_verifier(&creds)
        };
        let headers = hdrs(&[("Host", "127.0.0.1:8443")]);
        let req = SignedRequest {
            method: "GET",
            path: "/",
            query: &query,
            headers: &headers,
            body: b"",
        };
        assert_eq!(
            strict.verify_presigned(&req),
            Err(AuthError::SignatureMismatch)
        );
        let lenient = Verifier {
            accept_host_without_port: true,
            ..strict
        };
        assert!(lenient.verify_presigned(&req).is_ok());
    }

    #[test]
    fn expires_bounds() {
        let creds = [cred(AKID, SECRET, None)];
        let v = cp_verifier(&creds);
        for bad in ["0", "604801", "-1", "abc"] {
            let q = format!(
                "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20240101%2Fus-west-2%2Fkinesisvideo%2Faws4_request&X-Amz-Date=20240101T120000Z&X-Amz-Expires={bad}&X-Amz-SignedHeaders=host&X-Amz-Signature=00"
            );
            let headers = hdrs(&[("Host", "h")]);
            let req = SignedRequest {
                method: "GET",
                path: "/",
                query: &q,
                headers: &headers,
                body: b"",
            };
            assert!(
                matches!(v.verify_presigned(&req), Err(AuthError::BadExpires(_))),
                "{bad}"
            );
        }
    }
}
