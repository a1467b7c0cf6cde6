//! Channel management calls CI scripts use, shaped as the `kinesisvideo` 2017-09-30 service model
//! says: ListSignalingChannels (ChannelNameCondition, pagination), DeleteSignalingChannel,
//! UpdateSignalingChannel (MessageTtlSeconds), TagResource / UntagResource /
//! ListTagsForResource. A channel is usable the moment CreateSignalingChannel answers, and gone
//! the moment DeleteSignalingChannel answers (the service goes through `DELETING`; a client
//! cannot tell the difference except by timing).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Map, Value, json};

use crate::control::{channel_json, check_arn, str_field, validation};
use crate::events::Event;
use crate::server::{ApiError, Cmd, Shared, lock};

/// Most tags one resource may carry (TagList / ResourceTags max).
const MAX_TAGS: usize = 50;
/// ListSignalingChannels' MaxResults bound (ListStreamsInputLimit); also the default.
const MAX_RESULTS: u64 = 10_000;

fn serialization(msg: impl Into<String>) -> ApiError {
    ApiError::new(400, "SerializationException", msg)
}

/// `NextToken` of a list: base64 of the offset (matches the model's `[a-zA-Z0-9+/=]*`).
fn encode_token(offset: usize) -> String {
    B64.encode(format!("offset:{offset}"))
}

fn decode_token(t: &str) -> Result<usize, ApiError> {
    let bad = || ApiError::invalid(format!("The NextToken '{t}' is not valid."));
    if t.len() > 1024 {
        return Err(bad());
    }
    let raw = B64.decode(t).map_err(|_| bad())?;
    let s = String::from_utf8(raw).map_err(|_| bad())?;
    s.strip_prefix("offset:")
        .and_then(|n| n.parse().ok())
        .ok_or_else(bad)
}

pub(crate) fn list(shared: &Shared, body: &Map<String, Value>) -> Result<Value, ApiError> {
    let max = match body.get("MaxResults") {
        None | Some(Value::Null) => MAX_RESULTS,
        Some(Value::Number(n)) => match n.as_u64() {
            Some(m) if (1..=MAX_RESULTS).contains(&m) => m,
            _ => {
                return Err(validation(
                    "maxResults",
                    &n.to_string(),
                    "Member must have value between 1 and 10000",
                ));
            }
        },
        Some(_) => return Err(serialization("MaxResults must be an integer")),
    } as usize;
    let offset = match str_field(body, "NextToken")? {
        None | Some("") => 0,
        Some(t) => decode_token(t)?,
    };
    let prefix = match body.get("ChannelNameCondition") {
        None | Some(Value::Null) => None,
        Some(Value::Object(c)) => {
            let op = str_field(c, "ComparisonOperator")?;
            if let Some(op) = op
                && op != "BEGINS_WITH"
            {
                return Err(validation(
                    "channelNameCondition.comparisonOperator",
                    op,
                    "Member must satisfy enum value set: [BEGINS_WITH]",
                ));
            }
            let v = str_field(c, "ComparisonValue")?.unwrap_or("");
            if !v.is_empty() && !crate::control::valid_name(v) {
                return Err(validation(
                    "channelNameCondition.comparisonValue",
                    v,
                    "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+",
                ));
            }
            Some(v.to_string())
        }
        Some(_) => return Err(serialization("ChannelNameCondition must be a structure")),
    };
    let matching: Vec<Value> = lock(&shared.channels)
        .iter()
        .filter(|c| prefix.as_deref().is_none_or(|p| c.name.starts_with(p)))
        .map(channel_json)
        .collect();
    let page: Vec<Value> = matching.iter().skip(offset).take(max).cloned().collect();
    let mut out = json!({ "ChannelInfoList": page });
    if offset + max < matching.len() {
        out["NextToken"] = json!(encode_token(offset + max));
    }
    Ok(out)
}

/// Checks `CurrentVersion` against the channel's version, when given.
fn check_version(current: Option<&str>, version: &str, arn: &str) -> Result<(), ApiError> {
    match current {
        Some(v) if v != version => Err(ApiError::new(
            400,
            "VersionMismatchException",
            format!(
                "The version {v} of the signaling channel {arn} does not match the current version."
            ),
        )),
        _ => Ok(()),
    }
}

pub(crate) fn delete(shared: &Shared, body: &Map<String, Value>) -> Result<Value, ApiError> {
    let arn = check_arn(str_field(body, "ChannelARN")?, "channelARN")?;
    let current = str_field(body, "CurrentVersion")?;
    let removed = {
        let mut channels = lock(&shared.channels);
        let idx = channels
            .iter()
            .position(|c| c.arn == arn)
            .ok_or_else(ApiError::not_found)?;
        check_version(current, &channels[idx].version, &arn)?;
        channels.remove(idx)
    };
    // Its connections end; the service's close code for this is undocumented: 1001.
    {
        let mut hub = lock(&shared.hub);
        for (_, _, c) in hub.viewers.iter().filter(|(a, _, _)| *a == arn) {
            let _ =
                c.tx.send(Cmd::Close(1001, "Signaling channel deleted".into()));
        }
        if let Some(m) = hub.masters.get(&arn) {
            let _ =
                m.tx.send(Cmd::Close(1001, "Signaling channel deleted".into()));
        }
        hub.pending.remove(&arn);
    }
    shared.emit(Event::ChannelDeleted {
        channel_name: removed.name,
        channel_arn: arn,
    });
    Ok(json!({}))
}

pub(crate) fn update(shared: &Shared, body: &Map<String, Value>) -> Result<Value, ApiError> {
    let arn = check_arn(str_field(body, "ChannelARN")?, "channelARN")?;
    let Some(current) = str_field(body, "CurrentVersion")? else {
        return Err(ApiError::invalid("CurrentVersion is required"));
    };
    let ttl = match body
        .get("SingleMasterConfiguration")
        .and_then(|c| c.get("MessageTtlSeconds"))
    {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64() {
            Some(t) if (5..=120).contains(&t) => Some(t),
            _ => {
                return Err(validation(
                    "singleMasterConfiguration.messageTtlSeconds",
                    &v.to_string(),
                    "Member must have value between 5 and 120",
                ));
            }
        },
    };
    let (message_ttl_secs, version) = {
        let mut channels = lock(&shared.channels);
        let c = channels
            .iter_mut()
            .find(|c| c.arn == arn)
            .ok_or_else(ApiError::not_found)?;
        check_version(Some(current), &c.version, &arn)?;
        if let Some(t) = ttl {
            c.message_ttl = t;
        }
        c.version = Shared::new_version();
        (c.message_ttl, c.version.clone())
    };
    shared.emit(Event::ChannelUpdated {
        channel_arn: arn,
        message_ttl_secs,
        version,
    });
    Ok(json!({}))
}

/// TagKey / TagValue pattern `[\p{L}\p{Z}\p{N}_.:/=+\-@]*`.
fn tag_chars_ok(s: &str) -> bool {
    s.chars().all(|ch| {
        ch.is_alphabetic() || ch.is_numeric() || ch.is_whitespace() || "_.:/=+-@".contains(ch)
    })
}

fn check_tag(key: &str, value: &str) -> Result<(), ApiError> {
    let klen = key.chars().count();
    if !(1..=128).contains(&klen) || !tag_chars_ok(key) {
        return Err(validation(
            "tags.member.key",
            key,
            "Member must have length between 1 and 128 and satisfy regular expression pattern: ^([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*)$",
        ));
    }
    if value.chars().count() > 256 || !tag_chars_ok(value) {
        return Err(validation(
            "tags.member.value",
            value,
            "Member must have length less than or equal to 256 and satisfy regular expression pattern: [\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*",
        ));
    }
    Ok(())
}

/// A `TagList`: `[{"Key": …, "Value": …}]`, 1..50.
pub(crate) fn parse_tags(v: &Value) -> Result<Vec<(String, String)>, ApiError> {
    let Value::Array(list) = v else {
        return Err(serialization("Tags must be a list"));
    };
    if list.is_empty() || list.len() > MAX_TAGS {
        return Err(validation(
            "tags",
            &format!("{} tags", list.len()),
            "Member must have length between 1 and 50",
        ));
    }
    list.iter()
        .map(|t| {
            let Value::Object(o) = t else {
                return Err(serialization("Each tag must be a structure"));
            };
            let key =
                str_field(o, "Key")?.ok_or_else(|| ApiError::invalid("Tag Key is required"))?;
            let value =
                str_field(o, "Value")?.ok_or_else(|| ApiError::invalid("Tag Value is required"))?;
            check_tag(key, value)?;
            Ok((key.to_string(), value.to_string()))
        })
        .collect()
}

/// Adds or overwrites `new` in `tags`; refuses to go past 50.
pub(crate) fn merge_tags(
    tags: &mut Vec<(String, String)>,
    new: Vec<(String, String)>,
) -> Result<(), ApiError> {
    let mut merged = tags.clone();
    for (k, v) in new {
        match merged.iter_mut().find(|(mk, _)| *mk == k) {
            Some(slot) => slot.1 = v,
            None => merged.push((k, v)),
        }
    }
    if merged.len() > MAX_TAGS {
        return Err(ApiError::new(
            400,
            "TagsPerResourceExceededLimitException",
            format!("A resource can have at most {MAX_TAGS} tags."),
        ));
    }
    *tags = merged;
    Ok(())
}

fn resource_arn(body: &Map<String, Value>) -> Result<String, ApiError> {
    check_arn(str_field(body, "ResourceARN")?, "resourceARN")
}

fn tags_changed(shared: &Shared, arn: String, tag_count: usize) {
    shared.emit(Event::TagsChanged {
        channel_arn: arn,
        tag_count,
    });
}

pub(crate) fn tag(shared: &Shared, body: &Map<String, Value>) -> Result<Value, ApiError> {
    let arn = resource_arn(body)?;
    let new = match body.get("Tags") {
        None | Some(Value::Null) => return Err(ApiError::invalid("Tags is required")),
        Some(t) => parse_tags(t)?,
    };
    let count = {
        let mut channels = lock(&shared.channels);
        let c = channels
            .iter_mut()
            .find(|c| c.arn == arn)
            .ok_or_else(ApiError::not_found)?;
        merge_tags(&mut c.tags, new)?;
        c.tags.len()
    };
    tags_changed(shared, arn, count);
    Ok(json!({}))
}

pub(crate) fn untag(shared: &Shared, body: &Map<String, Value>) -> Result<Value, ApiError> {
    let arn = resource_arn(body)?;
    let keys: Vec<String> = match body.get("TagKeyList") {
        Some(Value::Array(a)) if (1..=MAX_TAGS).contains(&a.len()) => a
            .iter()
            .map(|k| {
                k.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| serialization("TagKeyList must hold strings"))
            })
            .collect::<Result<_, _>>()?,
        Some(Value::Array(a)) => {
            return Err(validation(
                "tagKeyList",
                &format!("{} keys", a.len()),
                "Member must have length between 1 and 50",
            ));
        }
        None | Some(Value::Null) => return Err(ApiError::invalid("TagKeyList is required")),
        Some(_) => return Err(serialization("TagKeyList must be a list")),
    };
    let count = {
        let mut channels = lock(&shared.channels);
        let c = channels
            .iter_mut()
            .find(|c| c.arn == arn)
            .ok_or_else(ApiError::not_found)?;
        c.tags.retain(|(k, _)| !keys.contains(k));
        c.tags.len()
    };
    tags_changed(shared, arn, count);
    Ok(json!({}))
}

pub(crate) fn list_tags(shared: &Shared, body: &Map<String, Value>) -> Result<Value, ApiError> {
    let arn = resource_arn(body)?;
    // At most 50 tags: one page; a NextToken must still be one we could have issued.
    if let Some(t) = str_field(body, "NextToken")?
        && !t.is_empty()
    {
        decode_token(t)?;
    }
    let channels = lock(&shared.channels);
    let c = channels
        .iter()
        .find(|c| c.arn == arn)
        .ok_or_else(ApiError::not_found)?;
    let tags: Map<String, Value> = c.tags.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    Ok(json!({ "Tags": tags }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_match_the_model_pattern() {
        for n in [0, 1, 99, 10_000] {
            let t = encode_token(n);
            assert!(
                t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
            );
            assert_eq!(decode_token(&t).unwrap(), n);
        }
        assert!(decode_token("bm9wZQ==").is_err());
        assert!(decode_token("%%").is_err());
    }

    #[test]
    fn tag_patterns() {
        assert!(check_tag("env", "ci run 1").is_ok());
        assert!(check_tag("ключ", "значение").is_ok());
        assert!(check_tag("a:b/c=d+e-f@g_h.i", "").is_ok());
        assert!(check_tag("", "x").is_err());
        assert!(check_tag("bad#key", "x").is_err());
        assert!(check_tag(&"k".repeat(129), "x").is_err());
        assert!(check_tag("k", &"v".repeat(257)).is_err());
    }

    #[test]
    fn merge_overwrites_and_caps_at_fifty() {
        let mut tags = vec![("a".to_string(), "1".to_string())];
        merge_tags(
            &mut tags,
            vec![("a".into(), "2".into()), ("b".into(), "3".into())],
        )
        .unwrap();
        assert_eq!(
            tags,
            vec![("a".into(), "2".into()), ("b".into(), "3".into())]
        );
        let many: Vec<(String, String)> =
            (0..49).map(|i| (format!("k{i}"), String::new())).collect();
        let err = merge_tags(&mut tags, many).unwrap_err();
        assert_eq!(err.error_type, "TagsPerResourceExceededLimitException");
        assert_eq!(tags.len(), 2, "a refused merge changes nothing");
    }
}
