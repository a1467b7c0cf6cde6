//! Control plane and GetIceServerConfig over HTTPS, with header SigV4.

mod common;

use base64::Engine;
use common::*;
use kvs_signaling_emulator::{Credential, Fault, Operation};
use serde_json::json;

fn describe_body(name: &str) -> String {
    json!({ "ChannelName": name }).to_string()
}

#[test]
fn describe_by_name_and_by_arn() {
    let emu = start();
    let env = emu.env().clone();
    let r = post_cp(
        &env,
        "/describeSignalingChannel",
        &describe_body(&env.channel_name),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.header("x-amzn-requestid").is_some());
    let info = &r.json()["ChannelInfo"];
    assert_eq!(info["ChannelARN"], env.channel_arn.as_str());
    assert_eq!(info["ChannelName"], env.channel_name.as_str());
    assert_eq!(info["ChannelStatus"], "ACTIVE");
    assert_eq!(info["ChannelType"], "SINGLE_MASTER");
    assert!(info["CreationTime"].is_number(), "epoch seconds");
    assert_eq!(info["SingleMasterConfiguration"]["MessageTtlSeconds"], 60);
    assert!(
        info["Version"]
            .as_str()
            .unwrap()
            .chars()
            .all(|c| c.is_ascii_alphanumeric())
    );
    assert!(
        env.channel_arn
            .starts_with("arn:aws:kinesisvideo:us-west-2:123456789012:channel/demo-channel/")
    );
    assert_eq!(env.channel_arn.rsplit('/').next().unwrap().len(), 13);
    let r = post_cp(
        &env,
        "/describeSignalingChannel",
        &json!({"ChannelARN": env.channel_arn}).to_string(),
    );
    assert_eq!(r.status, 200);
    let r = post_cp(&env, "/describeSignalingChannel", &describe_body("missing"));
    r.assert_error(404, "ResourceNotFoundException");
    assert!(r.json()["Message"].is_string());
    let r = post_cp(&env, "/describeSignalingChannel", "{}");
    r.assert_error(400, "InvalidArgumentException");
}

#[test]
fn get_endpoint_returns_own_endpoints() {
    let emu = start();
    let env = emu.env().clone();
    let body = json!({"ChannelARN": env.channel_arn, "SingleMasterChannelEndpointConfiguration": {"Protocols": ["WSS", "HTTPS"], "Role": "VIEWER"}});
    let r = post_cp(&env, "/getSignalingChannelEndpoint", &body.to_string());
    assert_eq!(r.status, 200, "{}", r.body);
    let list = r.json()["ResourceEndpointList"].as_array().unwrap().clone();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["Protocol"], "WSS");
    assert_eq!(list[0]["ResourceEndpoint"], env.wss_endpoint.as_str());
    assert_eq!(list[1]["Protocol"], "HTTPS");
    assert_eq!(list[1]["ResourceEndpoint"], env.https_endpoint.as_str());
    assert!(env.wss_endpoint.starts_with("wss://127.0.0.1:"));
    let bad = json!({"ChannelARN": env.channel_arn, "SingleMasterChannelEndpointConfiguration": {"Protocols": ["WEBRTC"], "Role": "VIEWER"}});
    let r = post_cp(&env, "/getSignalingChannelEndpoint", &bad.to_string());
    assert_eq!(r.status, 400);
    let bad_role = json!({"ChannelARN": env.channel_arn, "SingleMasterChannelEndpointConfiguration": {"Protocols": ["WSS"], "Role": "ADMIN"}});
    let r = post_cp(&env, "/getSignalingChannelEndpoint", &bad_role.to_string());
    assert_eq!(
        r.header("x-amzn-errortype"),
        Some("InvalidArgumentException")
    );
    let r = post_cp(
        &env,
        "/getSignalingChannelEndpoint",
        &json!({"ChannelARN": "bad"}).to_string(),
    );
    assert_eq!(r.status, 400);
}

#[test]
fn ice_server_config_is_realistic() {
    let emu = start();
    let env = emu.env().clone();
    let body = json!({"ChannelARN": env.channel_arn, "ClientId": env.client_id, "Service": "TURN"});
    let r = post(
        &env,
        &env.https_endpoint,
        "/v1/get-ice-server-config",
        &body.to_string(),
        &PostOpts::default(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let list = r.json()["IceServerList"].as_array().unwrap().clone();
    assert_eq!(list.len(), 2);
    for s in &list {
        let uris = s["Uris"].as_array().unwrap();
        assert_eq!(uris.len(), 3);
        assert!(uris[0].as_str().unwrap().starts_with("turn:"));
        assert!(uris[2].as_str().unwrap().ends_with("?transport=tcp"));
        assert_eq!(s["Ttl"], 300);
        let user = s["Username"].as_str().unwrap();
        let (exp, tail) = user.split_once(':').unwrap();
        let exp: i64 = exp.parse().unwrap();
        assert!((exp - now() - 300).abs() <= 5);
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(tail)
            .unwrap();
        assert_eq!(
            String::from_utf8(decoded).unwrap(),
            format!("v1:{}", env.channel_arn)
        );
        let pw = base64::engine::general_purpose::STANDARD
            .decode(s["Password"].as_str().unwrap())
            .unwrap();
        assert_eq!(pw.len(), 32);
    }
    // Field order as the service: Password, Ttl, Uris, Username.
    let p = r.body.find("\"Password\"").unwrap();
    let t = r.body.find("\"Ttl\"").unwrap();
    let u = r.body.find("\"Uris\"").unwrap();
    assert!(p < t && t < u);
    let r = post(
        &env,
        &env.https_endpoint,
        "/v1/get-ice-server-config",
        &json!({"ChannelARN": env.channel_arn, "Service": "STUN"}).to_string(),
        &PostOpts::default(),
    );
    assert_eq!(r.status, 400);
}

#[test]
fn create_channel_then_use_it() {
    let emu = start();
    let env = emu.env().clone();
    let body = json!({"ChannelName": "created", "ChannelType": "SINGLE_MASTER", "SingleMasterConfiguration": {"MessageTtlSeconds": 60}});
    let r = post_cp(&env, "/createSignalingChannel", &body.to_string());
    assert_eq!(r.status, 200, "{}", r.body);
    let arn = r.json()["ChannelARN"].as_str().unwrap().to_string();
    assert!(arn.contains(":channel/created/"));
    let r = post_cp(&env, "/createSignalingChannel", &body.to_string());
    r.assert_error(400, "ResourceInUseException");
    let r = post_cp(&env, "/describeSignalingChannel", &describe_body("created"));
    assert_eq!(r.json()["ChannelInfo"]["ChannelARN"], arn.as_str());
    let o = Opts {
        arn: Some(arn),
        ..Default::default()
    };
    assert!(ws_connect(&env, &presign(&env, &o)).is_ok());
}

#[test]
fn header_auth_failures_carry_the_auth_layers_error_types() {
    let emu = start_with(|c| {
        // A second, already expired credential for the ExpiredTokenException case.
        let mut expired = Credential::random_session();
        expired.expires_at = Some(now() - 10);
        c.credentials.push(expired);
    });
    let env = emu.env().clone();
    let expired = emu.config().credentials[1].clone();
    let body = describe_body(&env.channel_name);
    let mismatch = "The request signature we calculated does not match";
    let cases = [
        (
            PostOpts {
                tamper: true,
                ..Default::default()
            },
            "InvalidSignatureException",
            mismatch,
        ),
        (
            PostOpts {
                secret: Some("s".repeat(40)),
                ..Default::default()
            },
            "InvalidSignatureException",
            mismatch,
        ),
        (
            PostOpts {
                date: Some(now() - 600),
                ..Default::default()
            },
            "InvalidSignatureException",
            "Signature expired: ",
        ),
        (
            PostOpts {
                date: Some(now() + 600),
                ..Default::default()
            },
            "InvalidSignatureException",
            "Signature not yet current: ",
        ),
        (
            PostOpts {
                access_key_id: Some("AKIAUNKNOWNUNKNOWN00".into()),
                ..Default::default()
            },
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        ),
        (
            PostOpts {
                access_key_id: Some(expired.access_key_id.clone()),
                secret: Some(expired.secret_access_key.clone()),
                token: Some(expired.session_token.clone()),
                ..Default::default()
            },
            "ExpiredTokenException",
            "The security token included in the request is expired",
        ),
        (
            PostOpts {
                unsigned: true,
                ..Default::default()
            },
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        ),
    ];
    for (o, error_type, prefix) in cases {
        let r = post(
            &env,
            &env.control_plane_url,
            "/describeSignalingChannel",
            &body,
            &o,
        );
        r.assert_error(403, error_type);
        assert!(r.header("date").is_some());
        let msg = r.json()["message"].as_str().unwrap().to_string();
        assert!(msg.starts_with(prefix), "{o:?}: {msg}");
    }
    // The service's exact skew wording: "<request> is now earlier than <now - 5 min> (<now> - 5 min.)".
    let r = post(
        &env,
        &env.control_plane_url,
        "/describeSignalingChannel",
        &body,
        &PostOpts {
            date: Some(now() - 600),
            ..Default::default()
        },
    );
    let msg = r.json()["message"].as_str().unwrap().to_string();
    let words: Vec<&str> = msg.split(' ').collect();
    assert_eq!(words[..2], ["Signature", "expired:"], "{msg}");
    assert_eq!(words[3..6], ["is", "now", "earlier"], "{msg}");
    assert!(msg.ends_with(" - 5 min.)"), "{msg}");
    // The same failures on the WebSocket upgrade stay AccessDeniedException.
    let o = Opts {
        tamper: true,
        ..Default::default()
    };
    let rej = ws_connect(&env, &presign(&env, &o)).unwrap_err();
    assert_eq!(
        (rej.status, rej.error_type.as_deref()),
        (403, Some("AccessDeniedException"))
    );
}

#[test]
fn fail_next_on_control_plane_operations() {
    let emu = start();
    let env = emu.env().clone();
    emu.inject(Fault::FailNext {
        operation: Operation::Describe,
        status: 500,
        error_type: "InternalFailure".into(),
        message: "injected".into(),
        count: 1,
    })
    .unwrap();
    emu.inject(Fault::FailNext {
        operation: Operation::Any,
        status: 503,
        error_type: "ServiceUnavailable".into(),
        message: "later".into(),
        count: 1,
    })
    .unwrap();
    let body = describe_body(&env.channel_name);
    let r = post_cp(&env, "/describeSignalingChannel", &body);
    r.assert_error(500, "InternalFailure");
    let r = post(
        &env,
        &env.https_endpoint,
        "/v1/get-ice-server-config",
        &json!({"ChannelARN": env.channel_arn}).to_string(),
        &PostOpts::default(),
    );
    assert_eq!(r.status, 503);
    let r = post_cp(&env, "/describeSignalingChannel", &body);
    assert_eq!(r.status, 200);
    let ev = emu
        .wait_for_event(|e| e["type"] == "fault_applied", WAIT)
        .unwrap();
    assert_eq!(ev["operation"], "DescribeSignalingChannel");
}

#[test]
fn error_type_suffix_is_configurable() {
    let emu = start_with(|c| {
        c.error_type_suffix =
            Some("http://internal.amazon.com/coral/com.amazonaws.kinesisvideo.v20170930/".into())
    });
    let env = emu.env().clone();
    let r = post_cp(&env, "/describeSignalingChannel", &describe_body("nope"));
    assert_eq!(
        r.header("x-amzn-errortype"),
        Some(
            "ResourceNotFoundException:http://internal.amazon.com/coral/com.amazonaws.kinesisvideo.v20170930/"
        )
    );
}

#[test]
fn unknown_path_is_unknown_operation() {
    let emu = start();
    let env = emu.env().clone();
    let r = post_cp(&env, "/deleteStream", "{}");
    r.assert_error(404, "UnknownOperationException");
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    use std::io::Write;
    let emu = start();
    let env = emu.env().clone();
    let mut s = tls_connect(&env);
    for _ in 0..3 {
        let req = signed_request(
            &env,
            &env.control_plane_url,
            "/describeSignalingChannel",
            &describe_body(&env.channel_name),
            &PostOpts::default(),
            false,
        );
        s.write_all(req.as_bytes()).unwrap();
        let r = read_one_response(&mut s);
        assert_eq!(r.status, 200, "{}", r.body);
    }
}

#[test]
fn tamper_next_changes_one_answer() {
    use kvs_signaling_emulator::Tamper;
    let emu = start();
    let env = emu.env().clone();
    let ep_body = json!({"ChannelARN": env.channel_arn, "SingleMasterChannelEndpointConfiguration": {"Protocols": ["WSS", "HTTPS"], "Role": "VIEWER"}}).to_string();
    let ice_body = json!({"ChannelARN": env.channel_arn}).to_string();
    emu.inject(Fault::TamperNext(Tamper::DropWssEndpoint))
        .unwrap();
    emu.inject(Fault::TamperNext(Tamper::IceTtl(29))).unwrap();
    emu.inject(Fault::TamperNext(Tamper::IceUriCount(5)))
        .unwrap();
    emu.inject(Fault::TamperNext(Tamper::ChannelStatus("DELETING".into())))
        .unwrap();
    let r = post_cp(&env, "/getSignalingChannelEndpoint", &ep_body);
    let list = r.json()["ResourceEndpointList"].as_array().unwrap().clone();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["Protocol"], "HTTPS");
    let r = post(
        &env,
        &env.https_endpoint,
        "/v1/get-ice-server-config",
        &ice_body,
        &PostOpts::default(),
    );
    assert_eq!(r.json()["IceServerList"][0]["Ttl"], 29);
    let r = post(
        &env,
        &env.https_endpoint,
        "/v1/get-ice-server-config",
        &ice_body,
        &PostOpts::default(),
    );
    assert_eq!(
        r.json()["IceServerList"][1]["Uris"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    let r = post(
        &env,
        &env.https_endpoint,
        "/v1/get-ice-server-config",
        &ice_body,
        &PostOpts::default(),
    );
    assert_eq!(r.json()["IceServerList"][0]["Ttl"], 300, "one-shot");
    let r = post_cp(
        &env,
        "/describeSignalingChannel",
        &describe_body(&env.channel_name),
    );
    assert_eq!(r.json()["ChannelInfo"]["ChannelStatus"], "DELETING");
    emu.inject(Fault::TamperNext(Tamper::IceServerCount(6)))
        .unwrap();
    let r = post(
        &env,
        &env.https_endpoint,
        "/v1/get-ice-server-config",
        &ice_body,
        &PostOpts::default(),
    );
    assert_eq!(r.json()["IceServerList"].as_array().unwrap().len(), 6);
    // Also through the admin listener.
    let a = admin(&env, "POST", "/v1/fault", r#"{"TamperNext":{"IceTtl":31}}"#);
    assert_eq!(a.status, 200, "{}", a.body);
    let r = post(
        &env,
        &env.https_endpoint,
        "/v1/get-ice-server-config",
        &ice_body,
        &PostOpts::default(),
    );
    assert_eq!(r.json()["IceServerList"][0]["Ttl"], 31);
}

#[test]
fn management_calls_validate_and_delete_ends_connections() {
    let emu = start();
    let env = emu.env().clone();
    let list = |body: serde_json::Value| post_cp(&env, "/listSignalingChannels", &body.to_string());
    list(json!({"MaxResults": 0})).assert_error(400, "InvalidArgumentException");
    list(json!({"NextToken": "bm9wZQ=="})).assert_error(400, "InvalidArgumentException");
    list(json!({"ChannelNameCondition": {"ComparisonOperator": "ENDS_WITH", "ComparisonValue": "x"}}))
        .assert_error(400, "InvalidArgumentException");
    let r = list(json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json()["ChannelInfoList"][0]["ChannelARN"],
        env.channel_arn.as_str()
    );

    let missing = "arn:aws:kinesisvideo:us-west-2:123456789012:channel/none/1";
    for (path, body) in [
        ("/deleteSignalingChannel", json!({"ChannelARN": missing})),
        (
            "/updateSignalingChannel",
            json!({"ChannelARN": missing, "CurrentVersion": "v1"}),
        ),
        ("/ListTagsForResource", json!({"ResourceARN": missing})),
    ] {
        post_cp(&env, path, &body.to_string()).assert_error(404, "ResourceNotFoundException");
    }
    let fifty: Vec<serde_json::Value> = (0..50)
        .map(|i| json!({"Key": format!("k{i}"), "Value": ""}))
        .collect();
    let r = post_cp(
        &env,
        "/TagResource",
        &json!({"ResourceARN": env.channel_arn, "Tags": fifty}).to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    post_cp(
        &env,
        "/TagResource",
        &json!({"ResourceARN": env.channel_arn, "Tags": [{"Key": "one-more", "Value": "x"}]})
            .to_string(),
    )
    .assert_error(400, "TagsPerResourceExceededLimitException");
    post_cp(
        &env,
        "/TagResource",
        &json!({"ResourceARN": env.channel_arn, "Tags": [{"Key": "bad#key", "Value": "x"}]})
            .to_string(),
    )
    .assert_error(400, "InvalidArgumentException");

    // Deleting a channel with a viewer and a master on it closes both, and its ARN is gone.
    let mut v = viewer(&emu, "doomed-viewer");
    let mut m = master(&emu);
    let info = post_cp(
        &env,
        "/describeSignalingChannel",
        &describe_body(&env.channel_name),
    )
    .json();
    let version = info["ChannelInfo"]["Version"].as_str().unwrap().to_string();
    post_cp(
        &env,
        "/deleteSignalingChannel",
        &json!({"ChannelARN": env.channel_arn, "CurrentVersion": "stale"}).to_string(),
    )
    .assert_error(400, "VersionMismatchException");
    let r = post_cp(
        &env,
        "/deleteSignalingChannel",
        &json!({"ChannelARN": env.channel_arn, "CurrentVersion": version}).to_string(),
    );
    assert_eq!((r.status, r.body.as_str()), (200, "{}"));
    assert_eq!(wait_closed(&mut v), Ok(Some(1001)));
    assert_eq!(wait_closed(&mut m), Ok(Some(1001)));
    let rej = ws_connect(&env, &presign(&env, &Opts::default())).unwrap_err();
    assert_eq!(rej.status, 404);
    assert!(
        emu.wait_for_event(|e| e["type"] == "channel_deleted", WAIT)
            .is_some()
    );
}
